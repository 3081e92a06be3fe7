"""The promotion gate: does the candidate beat the current champion (or the base model)?"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Which way is better for each metric the gate looks at; other report entries are ignored.
DIRECTIONS = {"perplexity": "lower", "rougeL": "higher", "bleu": "higher", "answer_exact_match": "higher"}
# The full scale of bounded metrics, to express an absolute regression as a fraction of it (BLEU is 0-100).
SCALES = {"rougeL": 1.0, "bleu": 100.0, "answer_exact_match": 1.0}


@dataclass(frozen=True)
class GateSettings:
    primary_metric: str
    min_relative_improvement: float
    max_relative_regression: float
    max_absolute_regression: float

    def __post_init__(self) -> None:
        if self.primary_metric not in DIRECTIONS:
            raise ValueError(
                f"registry.primary_metric is '{self.primary_metric}'; choose one of {sorted(DIRECTIONS)}."
            )
        if self.min_relative_improvement < 0:
            raise ValueError("registry.min_relative_improvement must be >= 0.")
        if not 0 <= self.max_relative_regression < 1:
            raise ValueError("registry.max_relative_regression must be in [0, 1).")
        if not 0 <= self.max_absolute_regression < 1:
            raise ValueError("registry.max_absolute_regression must be in [0, 1) (a fraction of the scale).")


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reference: str  # "champion" or "base": what the candidate was compared with
    reasons: list[str]
    comparisons: list[dict[str, Any]] = field(default_factory=list)


def relative_gain(metric: str, candidate: float, reference: float) -> float | None:
    """How much better the candidate is, as a fraction of the reference (negative = worse).
    None when the reference is zero: no relative change can be measured."""
    if reference == 0:
        return None
    delta = reference - candidate if DIRECTIONS[metric] == "lower" else candidate - reference
    return delta / abs(reference)


def judge(report: dict[str, Any], settings: GateSettings) -> GateDecision:
    """Pass when the primary metric improves by more than ``min_relative_improvement`` (strictly
    better) and no other metric regresses by more than ``max_relative_regression`` relative to the
    reference and, at the same time, more than ``max_absolute_regression`` of its scale: on a small test
    set a near-zero score moving by one token is noise, not a regression."""
    models = report.get("models", {})
    reference = "champion" if "champion" in models else "base"
    candidate, baseline = models.get("candidate"), models.get(reference)
    if not candidate or not baseline:
        return GateDecision(False, reference, ["the evaluation report lacks candidate or reference metrics"])
    if not candidate.get("n_examples"):
        return GateDecision(False, reference, ["the candidate was evaluated on no test example"])

    reasons, comparisons, passed = [], [], True
    for metric in DIRECTIONS:
        if metric not in candidate or metric not in baseline:
            continue
        cand, ref = float(candidate[metric]), float(baseline[metric])
        gain = relative_gain(metric, cand, ref)
        primary = metric == settings.primary_metric
        if primary:
            better = cand < ref if DIRECTIONS[metric] == "lower" else cand > ref
            ok = better and (gain is None or gain >= settings.min_relative_improvement)
            if not ok:
                reasons.append(
                    f"{metric} {cand:.4g} is not better than the {reference}'s {ref:.4g} by "
                    f"{settings.min_relative_improvement:.1%} or more"
                )
        else:
            drop = (ref - cand) / SCALES[metric]
            ok = (
                gain is None
                or gain >= -settings.max_relative_regression
                or drop <= settings.max_absolute_regression
            )
            if not ok:
                reasons.append(
                    f"{metric} regressed {-gain:.1%} ({drop:.3f} of its scale) against the {reference} "
                    f"(tolerances {settings.max_relative_regression:.1%}, {settings.max_absolute_regression})"
                )
        passed = passed and ok
        comparisons.append(
            {
                "metric": metric,
                "candidate": cand,
                reference: ref,
                "relative_gain": gain,
                "primary": primary,
                "ok": ok,
            }
        )
    if settings.primary_metric not in {c["metric"] for c in comparisons}:
        return GateDecision(False, reference, [f"the report has no '{settings.primary_metric}'"], comparisons)
    if passed:
        reasons.append(
            f"better than the {reference} on {settings.primary_metric}, no regression beyond tolerance"
        )
    return GateDecision(passed, reference, reasons, comparisons)
