"""The promotion gate's decision, table-driven."""

from __future__ import annotations

import pytest

from assets.registry.gate import GateSettings, judge, relative_gain

SETTINGS = GateSettings(
    primary_metric="perplexity",
    min_relative_improvement=0.0,
    max_relative_regression=0.05,
    max_absolute_regression=0.01,
)


def _report(candidate: dict, reference: dict, reference_name: str = "base") -> dict:
    base = {"n_examples": 10, **candidate}
    return {"models": {"candidate": base, reference_name: {"n_examples": 10, **reference}}}


@pytest.mark.parametrize(
    ("candidate", "reference", "passed"),
    [
        ({"perplexity": 9.0, "rougeL": 0.30}, {"perplexity": 10.0, "rougeL": 0.30}, True),
        ({"perplexity": 10.0, "rougeL": 0.30}, {"perplexity": 10.0, "rougeL": 0.30}, False),  # not better
        ({"perplexity": 11.0, "rougeL": 0.40}, {"perplexity": 10.0, "rougeL": 0.30}, False),  # worse primary
        (
            {"perplexity": 9.0, "rougeL": 0.20},
            {"perplexity": 10.0, "rougeL": 0.30},
            False,
        ),  # rouge regressed 33%
        ({"perplexity": 9.0, "rougeL": 0.29}, {"perplexity": 10.0, "rougeL": 0.30}, True),  # 3.3% within 5%
        (
            {"perplexity": 9.0, "bleu": 0.0},
            {"perplexity": 10.0, "bleu": 0.0},
            True,
        ),  # zero reference: no ratio
    ],
)
def test_judge_against_base(candidate: dict, reference: dict, passed: bool) -> None:
    decision = judge(_report(candidate, reference), SETTINGS)
    assert decision.passed is passed
    assert decision.reference == "base"
    assert decision.reasons


def test_champion_is_preferred_over_base_as_reference() -> None:
    report = _report({"perplexity": 9.0}, {"perplexity": 8.0}, "champion")
    report["models"]["base"] = {"perplexity": 100.0, "n_examples": 10}
    decision = judge(report, SETTINGS)
    assert decision.reference == "champion"
    assert not decision.passed


def test_min_relative_improvement_is_enforced() -> None:
    strict = GateSettings(
        primary_metric="perplexity",
        min_relative_improvement=0.2,
        max_relative_regression=0.05,
        max_absolute_regression=0.0,
    )
    assert not judge(_report({"perplexity": 9.0}, {"perplexity": 10.0}), strict).passed
    assert judge(_report({"perplexity": 7.0}, {"perplexity": 10.0}), strict).passed


def test_no_examples_never_passes() -> None:
    report = _report({"perplexity": 1.0}, {"perplexity": 10.0})
    report["models"]["candidate"]["n_examples"] = 0
    assert not judge(report, SETTINGS).passed


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("primary_metric", "accuracy", "registry.primary_metric"),
        ("min_relative_improvement", -0.1, "registry.min_relative_improvement"),
        ("max_relative_regression", 1.5, "registry.max_relative_regression"),
        ("max_absolute_regression", -0.1, "registry.max_absolute_regression"),
    ],
)
def test_bad_settings_name_the_field(field: str, value: object, message: str) -> None:
    values = {
        "primary_metric": "perplexity",
        "min_relative_improvement": 0.0,
        "max_relative_regression": 0.05,
        "max_absolute_regression": 0.01,
    }
    values[field] = value
    with pytest.raises(ValueError, match=message):
        GateSettings(**values)


def test_relative_gain_direction() -> None:
    assert relative_gain("perplexity", 8.0, 10.0) == pytest.approx(0.2)
    assert relative_gain("rougeL", 0.2, 0.4) == pytest.approx(-0.5)
    assert relative_gain("bleu", 0.1, 0.0) is None


def test_gate_check_refuses_a_report_made_for_another_adapter(tmp_path) -> None:
    from assets.registry.asset import promotion_gate
    from resources.registry import ModelRegistry

    registry = ModelRegistry(
        tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", artifact_location=str(tmp_path / "a")
    )
    record = {
        "name": "m",
        "version": "1",
        "tags": {"adapter_md5": "new.dir", "base_model_md5": "b"},
        "gate": {
            "primary_metric": "perplexity",
            "min_relative_improvement": 0.0,
            "max_relative_regression": 0.05,
            "max_absolute_regression": 0.01,
        },
    }
    report = _report({"perplexity": 1.0}, {"perplexity": 10.0})
    report.update(adapter_md5="old.dir", base_model_md5="b")
    result = promotion_gate(registered_adapter=record, evaluation_report=report, registry=registry)
    assert not result.passed
    assert "another adapter" in result.metadata["reasons"].value
    assert registry.champion("m") is None
