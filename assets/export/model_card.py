"""The model card (README.md) of a merged export: what the model is, how it scored, why it was promoted,
and which data and code made it, from what the pipeline recorded (the registry version's tags, the
registration record, the evaluation report, the merge verification). Framework-free.

The front matter follows the Hugging Face model card metadata (``library_name``, ``base_model``, ``tags``)
so the directory can be pushed to a hub as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# A hub id ("org/name"); anything else (the embedded model, a local directory) is no base_model entry.
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
HEADLINE_METRICS = ("perplexity", "rougeL", "bleu", "answer_exact_match", "n_scored", "n_unscored")
# Registration keys that may hold the gate's decision, written by the promotion gate's owner.
_VERDICT_KEYS = ("gate_verdict", "verdict", "decision", "promotion")


def report_for(champion: Mapping[str, Any], report: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """``report`` when it evaluated the champion's adapter (same adapter md5), else None."""
    adapter_md5 = champion.get("tags", {}).get("adapter_md5")
    if report is None or not adapter_md5 or report.get("adapter_md5") != adapter_md5:
        return None
    return report


def model_card(
    champion: Mapping[str, Any],
    verification: Mapping[str, Any],
    *,
    report: Mapping[str, Any] | None = None,
    registration: Mapping[str, Any] | None = None,
) -> str:
    """README.md text for the export of ``champion`` (the registry's version dict: name, version,
    run_id, tags). ``report`` (evaluation_report.json) is used only when it evaluated this adapter;
    ``registration`` (registered_adapter.json) only when it is this version. Absent facts are said to
    be absent, never invented."""
    tags = dict(champion.get("tags", {}))
    name, version = champion.get("name", "?"), str(champion.get("version", "?"))
    report = report_for(champion, report)
    if registration is not None and str(registration.get("version")) != version:
        registration = None
    front = ["---", "library_name: transformers", "pipeline_tag: text-generation"]
    base = str(tags.get("base_model", ""))
    if _HUB_ID.match(base):
        front += [f"base_model: {base}", "base_model_relation: merge"]
    method = str(verification.get("method", "qlora"))
    copied = verification.get("export") == "copied"
    front += ["tags:", f"  - {method.replace('_', '-')}", "  - fine-tuned" if copied else "  - merged"]
    front += ["---", ""]
    what = (
        f"A fully fine-tuned model (train.method `full`; registry model `{name}`, version {version}, "
        f"MLflow run `{champion.get('run_id')}`) of base model `{base or '?'}`, saved as a plain "
        "transformers model"
        if copied
        else f"A {method} adapter (registry model `{name}`, version {version}, MLflow run "
        f"`{champion.get('run_id')}`) merged into its base model `{base or '?'}` and saved as a plain "
        "transformers model"
    )
    lines = [
        *front,
        f"# {name}, version {version}",
        "",
        f"{what} in {verification.get('dtype', '?')}.",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        'model = AutoModelForCausalLM.from_pretrained("path/to/this/directory")',
        'tokenizer = AutoTokenizer.from_pretrained("path/to/this/directory")  # with its chat template',
        "```",
        "",
        *_evaluation(report, registration),
        *_gate(tags, registration),
        *_lineage(tags, champion),
        *_verification(verification),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _evaluation(report: Mapping[str, Any] | None, registration: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Evaluation", ""]
    if report is None:
        metrics = (registration or {}).get("candidate_metrics")
        if not metrics:
            return [
                *lines,
                "No evaluation report of this adapter is at hand (it was evaluated in an earlier run).",
                "",
            ]
        lines += [
            "This model's metrics on the test split, as registered:",
            "",
            "| metric | value |",
            "|---|---|",
        ]
        lines += [f"| {key} | {_number(value)} |" for key, value in sorted(metrics.items())]
        return [*lines, ""]
    models = report.get("models", {})
    lines += [
        f"On the test split (DVC md5 `{report.get('test_split_md5', '?')}`, "
        f"{report.get('test_rows', '?')} rows); `candidate` is this model.",
        "",
        "| model | " + " | ".join(HEADLINE_METRICS) + " |",
        "|---" * (len(HEADLINE_METRICS) + 1) + "|",
    ]
    for model, metrics in models.items():
        lines.append(
            f"| {model} | " + " | ".join(_number(metrics.get(key)) for key in HEADLINE_METRICS) + " |"
        )
    unscored = report.get("unscored") or {}
    if unscored:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in unscored.items())
        lines += ["", f"Rows not scored: {reasons}."]
    if report.get("champion_note"):
        lines += ["", f"Reference: {report['champion_note']}."]
    return [*lines, ""]


def _gate(tags: Mapping[str, Any], registration: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Promotion gate", ""]
    verdict = next((registration[key] for key in _VERDICT_KEYS if registration and key in registration), None)
    if tags.get("promotion"):
        lines.append(f"Verdict: **{tags['promotion']}**.")
    if tags.get("promotion_reason"):
        lines.append(f"Reasons: {tags['promotion_reason']}")
    if tags.get("gate_interval"):
        lines.append(_interval(tags, registration))
    if verdict is not None and not isinstance(verdict, (dict, list)):
        lines.append(f"Recorded verdict: {verdict}")
    elif isinstance(verdict, dict):
        lines += [
            f"- {key}: {_number(value)}"
            for key, value in sorted(verdict.items())
            if not isinstance(value, (dict, list))
        ]
    gate = (registration or {}).get("gate")
    if gate:
        lines += [
            "",
            "Gate settings: " + ", ".join(f"`{key}` = {value}" for key, value in sorted(gate.items())),
        ]
    if len(lines) == 2:
        lines.append("The registry holds no verdict for this version.")
    return [*lines, ""]


def _interval(tags: Mapping[str, Any], registration: Mapping[str, Any] | None) -> str:
    """The gate's evidence in words: the paired loss difference against the reference it was judged
    with and its bootstrap confidence interval, at the confidence level it was computed with."""
    against = tags.get("gate_champion_version")
    reference = f"champion (version {against})" if against and against != "none" else "base model"
    level = ((registration or {}).get("gate") or {}).get("confidence_level")
    confidence = (
        f"{float(level):.0%} confidence interval"
        if isinstance(level, (int, float))
        else "confidence interval (its level was not recorded with this version)"
    )
    return (
        f"Evidence: the mean loss (nats per answer token) of the {reference} minus this model's, over the "
        f"test rows both scored, is {tags['gate_interval']}: the mean, then its {confidence} in brackets "
        "(seeded paired "
        "bootstrap, BCa; scipy.stats.bootstrap). The gate requires the interval to lie above 0."
    )


def _lineage(tags: Mapping[str, Any], champion: Mapping[str, Any]) -> list[str]:
    lines = ["## Lineage", "", "| what | value |", "|---|---|"]
    for key in sorted(tags):
        if key in ("promotion", "promotion_reason") or key.startswith("gate_"):
            continue  # the gate's decision, in its own section
        lines.append(f"| {key} | `{tags[key]}` |")
    lines.append(f"| mlflow_run_id | `{champion.get('run_id')}` |")
    return [
        *lines,
        "",
        "The `*_md5` values are DVC md5s: `dvc.lock` at the recorded git commit names the same data.",
        "",
    ]


def _verification(verification: Mapping[str, Any]) -> list[str]:
    v = {key: _number(value) for key, value in verification.items()}
    if verification.get("export") == "copied":
        how, reference = "The trained model, nothing merged, saved", "the trained model"
    else:
        how = (
            "Merged into the base as trained (quantization "
            f"`{v.get('trained_quantization') or 'none'}`, de-quantized first when set) and saved"
        )
        reference = "adapter-on-base"
    return [
        "## Export check",
        "",
        f"{how} in {v.get('dtype')}. On {v.get('verify_prompts')} test prompts its logits differ from "
        f"{reference} by at most {v.get('max_abs_logit_diff')} in memory and "
        f"{v.get('reloaded_max_abs_logit_diff')} reloaded from disk (allowed "
        f"{v.get('allowed_max_abs_logit_diff')}); top-1 token agreement {v.get('top1_agreement')}. "
        "Details: `merge_verification.json`.",
        "",
    ]


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
