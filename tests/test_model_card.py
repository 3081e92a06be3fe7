"""The export's model card (assets/export/model_card.py): metrics, verdict and lineage from the records."""

from __future__ import annotations

from typing import Any

from assets.export.model_card import model_card, report_for

TAGS = {
    "adapter_md5": "a" * 32,
    "base_model": "Qwen/Qwen2.5-0.5B-Instruct",
    "base_model_md5": "b" * 32,
    "test_md5": "c" * 32,
    "train_md5": "d" * 32,
    "git_commit": "0123abc",
    "params_hash": "feed",
    "promotion": "champion",
    "promotion_reason": "better than the base on perplexity, no regression beyond tolerance",
}
CHAMPION = {"name": "finetuned-adapter", "version": "3", "run_id": "run-3", "tags": TAGS}
VERIFICATION = {
    "dtype": "bfloat16",
    "max_abs_logit_diff": 0.0039,
    "reloaded_max_abs_logit_diff": 0.0039,
    "allowed_max_abs_logit_diff": 0.03125,
    "top1_agreement": 1.0,
    "trained_quantization": "nf4",
    "verify_prompts": 4,
}


def _report(adapter_md5: str) -> dict[str, Any]:
    metrics = {"perplexity": 12.5, "rougeL": 0.31, "bleu": 9.0, "answer_exact_match": 0.1}
    return {
        "adapter_md5": adapter_md5,
        "test_split_md5": "c" * 32,
        "test_rows": 33,
        "champion_note": "no champion yet: compared with the base model",
        "unscored": {"answer_too_long": 2},
        "models": {
            "base": {**metrics, "perplexity": 20.25, "n_scored": 31, "n_unscored": 2},
            "candidate": {**metrics, "n_scored": 31, "n_unscored": 2},
        },
    }


def test_the_card_carries_metrics_verdict_lineage_and_the_export_check() -> None:
    registration = {"version": "3", "gate": {"primary_metric": "perplexity"}, "candidate_metrics": {}}
    card = model_card(CHAMPION, VERIFICATION, report=_report("a" * 32), registration=registration)
    assert card.startswith("---\nlibrary_name: transformers\n")
    assert "base_model: Qwen/Qwen2.5-0.5B-Instruct" in card
    assert "| candidate | 12.5 | 0.31 | 9 | 0.1 | 31 | 2 |" in card
    assert "| base | 20.25 |" in card and "Rows not scored: answer_too_long: 2." in card
    assert "Verdict: **champion**." in card and "no regression beyond tolerance" in card
    assert "`primary_metric` = perplexity" in card
    for key in ("adapter_md5", "base_model_md5", "test_md5", "train_md5", "git_commit", "params_hash"):
        assert f"| {key} | `{TAGS[key]}` |" in card
    assert "| mlflow_run_id | `run-3` |" in card
    assert "saved in bfloat16" in card and "at most 0.0039 in memory" in card and "allowed 0.03125" in card


def test_records_about_another_adapter_or_version_are_not_used() -> None:
    assert report_for(CHAMPION, _report("e" * 32)) is None
    registration = {"version": "4", "candidate_metrics": {"perplexity": 1.0}, "gate": {"x": 1}}
    card = model_card(CHAMPION, VERIFICATION, report=_report("e" * 32), registration=registration)
    assert "12.5" not in card and "perplexity | 1.0" not in card and "`x`" not in card
    assert "No evaluation report of this adapter is at hand" in card


def test_registered_metrics_stand_in_when_the_report_is_for_another_adapter() -> None:
    registration = {"version": "3", "candidate_metrics": {"perplexity": 12.5, "n_scored": 31}}
    card = model_card(CHAMPION, VERIFICATION, report=None, registration=registration)
    assert "| perplexity | 12.5 |" in card and "| n_scored | 31 |" in card


def test_a_base_that_is_no_hub_id_is_not_claimed_as_one() -> None:
    tags = {key: value for key, value in TAGS.items() if not key.startswith("promotion")}
    local = {**CHAMPION, "tags": {**tags, "base_model": "embedded"}}
    card = model_card(local, VERIFICATION)
    assert "base_model:" not in card.split("---")[1]
    assert "into its base model `embedded`" in card
    assert "The registry holds no verdict for this version." in card


def test_the_gate_section_states_the_interval_its_level_and_the_reference() -> None:
    tags = {**TAGS, "gate_interval": "+0.08315 [+0.0746, +0.09241] (n=29)", "gate_champion_version": "2"}
    registration = {"version": "3", "gate": {"confidence_level": 0.95}}
    card = model_card({**CHAMPION, "tags": tags}, VERIFICATION, registration=registration)
    gate = card.split("## Promotion gate")[1].split("## Lineage")[0]
    assert "champion (version 2) minus this model's" in gate
    assert "+0.08315 [+0.0746, +0.09241] (n=29)" in gate and "95% confidence interval" in gate
    assert "gate_interval" not in card.split("## Lineage")[1]  # the verdict is not lineage
    # Against the base, and with no registration record of this version at hand.
    card = model_card({**CHAMPION, "tags": {**tags, "gate_champion_version": "none"}}, VERIFICATION)
    assert "of the base model minus" in card and "its level was not recorded" in card
