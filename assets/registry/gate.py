"""The promotion gate: is there evidence that the candidate beats its reference (champion or base)?

The evidence is paired: the evaluation report holds, for each test row, the mean negative log-likelihood
per answer token of every model scored on it (``examples[i].loss``). On the rows both the candidate and
the reference scored, the gate takes the per-row difference ``reference - candidate`` (positive: the
candidate is better) and asks for

- enough rows (``min_scored_rows``);
- a seeded bootstrap confidence interval of the mean difference that lies above zero: the candidate is
  better beyond the noise of the test sample. Paired bootstrap resampling is the standard significance
  test for comparing two systems on one test set (Koehn, 2004, "Statistical Significance Tests for
  Machine Translation Evaluation"); the interval is scipy.stats.bootstrap's BCa interval (Efron &
  Tibshirani, 1993), percentile when BCa is undefined (every difference equal);
- a minimum effect size: the mean difference as a fraction of the reference's mean loss must reach
  ``min_relative_improvement`` (a significant but negligible gain, such as an adapter trained at a
  learning rate of 1e-7, is not worth shipping).

Guardrails, each its own row in the verdict: no category (with at least ``min_category_rows`` rows)
whose own paired interval lies below zero; no generation metric that regresses beyond its noise (a
paired interval below zero when the report has per-row scores, else the aggregate tolerances
``max_relative_regression`` and ``max_absolute_regression``); and an adapter that leaves the model
unchanged (largest |logit difference| against the base, or largest LoRA weight delta |B·A·scaling|, under
its tolerance) is refused with that reason whatever its metrics say.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

# Generation metrics of the report (models.<name>.<metric>): higher is better, and their full scale, to
# express an absolute regression as a fraction of it (BLEU is 0-100).
GENERATION_SCALES = {"rougeL": 1.0, "bleu": 100.0, "answer_exact_match": 1.0}
OLD_REPORT = "evaluation_report predates per-example results; re-materialize evaluation_report"


@dataclass(frozen=True)
class GateSettings:
    """The gate's settings (params.yaml ``registry``); each is validated and named when wrong."""

    min_scored_rows: int
    min_relative_improvement: float
    confidence_level: float
    bootstrap_resamples: int
    seed: int
    min_category_rows: int
    max_relative_regression: float
    max_absolute_regression: float
    noop_max_abs_logit_diff: float
    noop_max_weight_delta: float
    require_approval: bool = False

    def __post_init__(self) -> None:
        if self.min_scored_rows < 2:
            raise ValueError("registry.min_scored_rows must be >= 2 (an interval needs two rows).")
        if not 0 <= self.min_relative_improvement < 1:
            raise ValueError("registry.min_relative_improvement must be in [0, 1).")
        if not 0.5 <= self.confidence_level < 1:
            raise ValueError("registry.confidence_level must be in [0.5, 1), e.g. 0.95.")
        if self.bootstrap_resamples < 100:
            raise ValueError("registry.bootstrap_resamples must be >= 100 (scipy's default is 9999).")
        if self.min_category_rows < 2:
            raise ValueError("registry.min_category_rows must be >= 2.")
        if not 0 <= self.max_relative_regression < 1:
            raise ValueError("registry.max_relative_regression must be in [0, 1).")
        if not 0 <= self.max_absolute_regression < 1:
            raise ValueError("registry.max_absolute_regression must be in [0, 1) (a fraction of the scale).")
        if self.noop_max_abs_logit_diff < 0 or self.noop_max_weight_delta < 0:
            raise ValueError("registry.noop_max_abs_logit_diff and noop_max_weight_delta must be >= 0.")


@dataclass(frozen=True)
class Interval:
    """A bootstrap confidence interval of a mean paired difference (``low``..``high``) over ``n`` rows."""

    mean: float
    low: float
    high: float
    n: int

    def text(self) -> str:
        return f"{self.mean:+.4g} [{self.low:+.4g}, {self.high:+.4g}] (n={self.n})"


@dataclass(frozen=True)
class GateDecision:
    """``passed``: promote (or hold for approval); ``reference``: "champion" or "base"; ``verdict``: one
    line for people; ``checks``: one row per criterion (name, value, threshold, ok) for the table."""

    passed: bool
    reference: str
    verdict: str
    reasons: list[str]
    checks: list[dict[str, Any]] = field(default_factory=list)
    interval: Interval | None = None

    def markdown(self) -> str:
        """The verdict and every criterion as a markdown table (the check's metadata in the UI)."""
        lines = [
            f"**{'PASS' if self.passed else 'FAIL'}** against the {self.reference}: {self.verdict}",
            "",
            "| criterion | value | threshold | ok |",
            "|---|---|---|---|",
        ]
        for row in self.checks:
            ok = {True: "yes", False: "**no**", None: "not judged"}[row["ok"]]
            lines.append(f"| {row['criterion']} | {row['value']} | {row['threshold']} | {ok} |")
        return "\n".join(lines)


def bootstrap_interval(differences: list[float], settings: GateSettings) -> Interval:
    """Seeded bootstrap confidence interval of the mean of ``differences`` (scipy.stats.bootstrap, BCa;
    percentile when BCa is undefined because every value is the same). Needs at least two values."""
    import numpy as np
    from scipy import stats

    data = np.asarray(differences, dtype=np.float64)
    mean = float(data.mean())
    if np.ptp(data) == 0:  # no spread: every resample has the same mean
        return Interval(mean, mean, mean, len(data))
    for method in ("BCa", "percentile"):  # BCa unless its acceleration is undefined (a non-finite bound)
        result = stats.bootstrap(
            (data,),
            np.mean,
            confidence_level=settings.confidence_level,
            n_resamples=settings.bootstrap_resamples,
            method=method,
            rng=np.random.default_rng(settings.seed),
        )
        low, high = result.confidence_interval
        if math.isfinite(low) and math.isfinite(high):
            break
    return Interval(mean, float(low), float(high), len(data))


def paired_losses(report: dict[str, Any], reference: str) -> list[tuple[str | None, float, float]]:
    """(category, reference loss, candidate loss) of every row both models scored."""
    pairs = []
    for example in report["examples"]:
        loss = example.get("loss") or {}
        ref, cand = loss.get(reference), loss.get("candidate")
        if not example.get("scored", True) or ref is None or cand is None:
            continue
        if math.isfinite(ref) and math.isfinite(cand):
            pairs.append((example.get("category"), float(ref), float(cand)))
    return pairs


def noop_evidence(
    report: dict[str, Any], weight_delta: float | None, settings: GateSettings
) -> list[dict[str, Any]]:
    """Rows for the "adapter changes the model" guardrail: the largest |logit difference| between the
    candidate and the base on the test prompts (from the report) and the largest LoRA weight delta
    (measured on the adapter's safetensors). ``ok`` is False when either is within its tolerance."""
    rows = []
    logits = (report.get("candidate_vs_base") or {}).get("max_abs_logit_diff")
    if logits is not None:
        rows.append(
            {
                "criterion": "adapter changes the logits (max |candidate - base|)",
                "value": f"{float(logits):.3g}",
                "threshold": f"> {settings.noop_max_abs_logit_diff:g}",
                "ok": float(logits) > settings.noop_max_abs_logit_diff,
            }
        )
    if weight_delta is not None:
        rows.append(
            {
                "criterion": "adapter changes the weights (max |B·A·scaling|)",
                "value": f"{weight_delta:.3g}",
                "threshold": f"> {settings.noop_max_weight_delta:g}",
                "ok": weight_delta > settings.noop_max_weight_delta,
            }
        )
    return rows


def judge(
    report: dict[str, Any], settings: GateSettings, *, weight_delta: float | None = None
) -> GateDecision:
    """The gate's verdict on ``report`` (the evaluation_report dict; see the module docstring for the
    fields read). ``weight_delta``: the adapter's largest |B·A·scaling| when measured, else None."""
    reference = report.get("reference")
    if reference not in ("champion", "base"):
        reference = "champion" if "champion" in report.get("models", {}) else "base"
    if "examples" not in report:
        return GateDecision(False, reference, OLD_REPORT, [OLD_REPORT])
    checks: list[dict[str, Any]] = []
    reasons: list[str] = []

    noop = noop_evidence(report, weight_delta, settings)
    checks.extend(noop)
    if any(not row["ok"] for row in noop):
        reasons.append("the adapter leaves the model unchanged within tolerance (it did not learn)")

    pairs = paired_losses(report, reference)
    counted = {
        "criterion": f"rows scored by both candidate and {reference}",
        "value": str(len(pairs)),
        "threshold": f">= {settings.min_scored_rows}",
        "ok": len(pairs) >= settings.min_scored_rows,
    }
    checks.append(counted)
    if not counted["ok"]:
        unscored = report.get("unscored") or {}
        why = ", ".join(f"{reason}: {n}" for reason, n in sorted(unscored.items())) or "none reported"
        reasons.append(
            f"only {len(pairs)} test rows were scored by both models (unscored: {why}); the gate needs "
            f"registry.min_scored_rows = {settings.min_scored_rows}"
        )
        return GateDecision(False, reference, reasons[-1], reasons, checks)

    interval = bootstrap_interval([ref - cand for _, ref, cand in pairs], settings)
    reference_mean = sum(ref for _, ref, _ in pairs) / len(pairs)
    effect = interval.mean / reference_mean if reference_mean > 0 else 0.0
    significant = interval.low > 0
    checks.append(
        {
            "criterion": f"loss difference {reference} - candidate, nats/token, "
            f"{settings.confidence_level:.0%} bootstrap CI",
            "value": interval.text(),
            "threshold": "CI above 0",
            "ok": significant,
        }
    )
    checks.append(
        {
            "criterion": f"relative loss improvement over the {reference}",
            "value": f"{effect:.3%}",
            "threshold": f">= {settings.min_relative_improvement:.2%}",
            "ok": effect >= settings.min_relative_improvement,
        }
    )
    if not significant:
        reasons.append(
            f"no evidence the candidate is better than the {reference}: the "
            f"{settings.confidence_level:.0%} interval of the mean loss difference, {interval.text()}, "
            "does not lie above 0"
        )
    if effect < settings.min_relative_improvement:
        reasons.append(
            f"the mean loss improves by {effect:.3%} of the {reference}'s, under "
            f"registry.min_relative_improvement = {settings.min_relative_improvement:.2%}"
        )

    for row in category_guardrails(pairs, settings) + generation_guardrails(report, reference, settings):
        checks.append(row)
        if row["ok"] is False:
            reasons.append(f"{row['criterion']} regressed beyond its noise: {row['value']}")

    passed = not reasons
    verdict = (
        f"better than the {reference} by {effect:.2%} of its loss, interval {interval.text()}, "
        "no guardrail tripped"
        if passed
        else reasons[0]
    )
    return GateDecision(passed, reference, verdict, reasons, checks, interval)


def category_guardrails(
    pairs: list[tuple[str | None, float, float]], settings: GateSettings
) -> list[dict[str, Any]]:
    """One row per category: its paired loss interval must not lie below zero. Categories with fewer
    than ``min_category_rows`` rows are listed but not judged (an interval on a handful is noise)."""
    by_category: dict[str, list[float]] = defaultdict(list)
    for category, ref, cand in pairs:
        if category:
            by_category[category].append(ref - cand)
    rows = []
    for category, diffs in sorted(by_category.items()):
        name = f"category '{category}' loss difference"
        if len(diffs) < settings.min_category_rows:
            rows.append(
                {
                    "criterion": name,
                    "value": f"{len(diffs)} rows",
                    "threshold": f"judged from {settings.min_category_rows} rows",
                    "ok": None,
                }
            )
            continue
        interval = bootstrap_interval(diffs, settings)
        rows.append(
            {
                "criterion": name,
                "value": interval.text(),
                "threshold": "CI not below 0",
                "ok": interval.high >= 0,
            }
        )
    return rows


def generation_guardrails(
    report: dict[str, Any], reference: str, settings: GateSettings
) -> list[dict[str, Any]]:
    """One row per generation metric (ROUGE-L, BLEU, exact match). With per-row scores in
    ``examples[i].generation[model][metric]`` the paired interval of candidate - reference must not lie
    below zero; with aggregates only, the metric fails when it loses more than ``max_relative_regression``
    of the reference's value and more than ``max_absolute_regression`` of its scale."""
    models = report.get("models", {})
    candidate, baseline = models.get("candidate", {}), models.get(reference, {})
    rows = []
    for metric, scale in GENERATION_SCALES.items():
        diffs = []
        for example in report["examples"]:
            generation = example.get("generation") or {}
            cand, ref = generation.get("candidate"), generation.get(reference)
            cand_score, ref_score = _score(cand, metric), _score(ref, metric)
            if cand_score is not None and ref_score is not None:
                diffs.append(cand_score - ref_score)
        name = f"{metric} (generation)"
        if len(diffs) >= 2:
            interval = bootstrap_interval(diffs, settings)
            rows.append(
                {
                    "criterion": f"{name}, candidate - {reference}",
                    "value": interval.text(),
                    "threshold": "CI not below 0",
                    "ok": interval.high >= 0,
                }
            )
        elif metric in candidate and metric in baseline:
            cand, ref = float(candidate[metric]), float(baseline[metric])
            drop = (ref - cand) / scale
            relative = drop * scale / abs(ref) if ref else 0.0
            ok = drop <= settings.max_absolute_regression or relative <= settings.max_relative_regression
            rows.append(
                {
                    "criterion": f"{name}, aggregate candidate vs {reference}",
                    "value": f"{cand:.4g} vs {ref:.4g}",
                    "threshold": f"loss <= {settings.max_relative_regression:.0%} or "
                    f"<= {settings.max_absolute_regression} of scale",
                    "ok": ok,
                }
            )
    return rows


def _score(generation: object, metric: str) -> float | None:
    """A per-row generation score (``{"rougeL": 0.4, ...}``), or None when the row has none."""
    if isinstance(generation, dict) and isinstance(generation.get(metric), (int, float)):
        return float(generation[metric])
    return None
