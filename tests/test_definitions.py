"""The Dagster definitions load quickly and expose the contract other tooling relies on."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg

from pipelines.definitions import defs
from tests.conftest import PROJECT_ROOT

CONTRACT_KEYS = {
    "base_model",
    "raw_examples",
    "clean_examples",
    "rejected_examples",
    "augmented_examples",
    "train_split",
    "validation_split",
    "test_split",
    "adapter",
    "evaluation_report",
    "registered_adapter",
    "merged_model",
}


def test_asset_keys_are_the_contract() -> None:
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert keys == CONTRACT_KEYS


def test_graph_edges_follow_the_design() -> None:
    graph = defs.resolve_asset_graph()

    def parents(key: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(dg.AssetKey(key)).parent_keys}

    # The base model's tokenizer and chat template decide which rows can be trained on.
    assert parents("clean_examples") == {"raw_examples", "base_model"}
    assert parents("rejected_examples") == {"raw_examples", "base_model"}
    assert parents("augmented_examples") == {"clean_examples"}
    assert parents("test_split") == {"augmented_examples"}
    assert {"base_model", "train_split", "validation_split"} <= parents("adapter")
    assert {"adapter", "test_split", "base_model"} <= parents("evaluation_report")
    assert {"adapter", "evaluation_report"} <= parents("registered_adapter")
    assert {"registered_adapter", "base_model"} <= parents("merged_model")


def test_blocking_checks_cover_schema_accounting_leakage_and_promotion() -> None:
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert ("clean_examples", "row_accounting") in checks
    assert ("train_split", "split_leakage") in checks
    assert ("registered_adapter", "promotion_gate") in checks
    for key in ("raw_examples", "clean_examples", "rejected_examples", "augmented_examples", "test_split"):
        assert (key, "schema") in checks
    for check in defs.asset_checks or []:
        for spec in check.check_specs:
            assert spec.blocking, f"{spec.key} should be blocking"


def test_job_schedule_and_sensor_exist() -> None:
    assert defs.resolve_job_def("full_pipeline") is not None
    assert defs.resolve_schedule_def("weekly_retrain").cron_schedule == "0 3 * * 1"
    assert defs.resolve_sensor_def("raw_data_changed") is not None


def test_loading_definitions_does_not_import_heavy_libraries() -> None:
    # The UI imports the definitions at start; torch & co must stay lazy (the issue asks < 3 s).
    heavy = ("torch", "transformers", "peft", "bitsandbytes", "datasets", "cleanlab", "mlflow")
    code = f"import sys, pipelines.definitions\nprint(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == "", f"imported at load: {out.stdout.strip()}"
