"""registered_adapter and promotion_gate through Dagster on tiny real inputs: the gate acts on this run's
registration, the materialization says what happened and who is champion, approval and old reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from assets.params import section
from resources.registry import ModelRegistry
from tests.test_failures import example_rows, store_at, tiny_base, write_adapter, write_base, write_examples
from tests.test_gate import make_report, noisy

__all__ = ["tiny_base"]  # the module-scoped fixture, shared with test_failures

GATE = {k: v for k, v in section("registry").items() if k != "model_name"}


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow database, made once: creating the schema (alembic migrations) takes seconds."""
    root = tmp_path_factory.mktemp("empty-registry")
    _registry(root).client().search_registered_models()
    return root / "mlflow.db"


@pytest.fixture
def tmp_path(tmp_path: Path, empty_db: Path) -> Path:
    shutil.copyfile(empty_db, tmp_path / "mlflow.db")
    return tmp_path


def _inputs(root: Path, tiny_base: Path, *, improvement: float = 0.5) -> dict[str, Any]:
    """Every upstream artifact on disk and an evaluation report of the per-example shape."""
    for key in ("raw_examples", "clean_examples", "augmented_examples"):
        write_examples(root, key, example_rows(3))
    for key in ("train_split", "validation_split", "test_split"):
        write_examples(root, key, example_rows(1))
    write_base(root, tiny_base)
    write_adapter(root)
    store = store_at(root)
    base = noisy(3.0, 30, seed=1)
    report = make_report(base, [x - improvement for x in base])
    report.update(
        adapter_md5=store.md5("adapter"),
        base_model_md5=store.md5("base_model"),
        registry_model_name="finetuned-adapter",
    )
    store.write_json("evaluation_report", report)
    return report


class ShuffledRecordIOManager(dg.ConfigurableIOManager):
    """Reads artifacts from ``root``, except that registered_adapter comes back as another run's record:
    what the check would read if an overlapping run overwrote registered_adapter.json meanwhile."""

    root: str

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        assert obj is None

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.asset_key.to_user_string()
        if key == "registered_adapter":
            return {"name": "finetuned-adapter", "version": "99", "tags": {"adapter_md5": "x"}, "gate": GATE}
        return store_at(Path(self.root)).load(key)


def _run(
    root: Path, config: dict[str, Any] | None = None, io_manager: Any = None
) -> dg.ExecuteInProcessResult:
    from assets.registry.asset import promotion_gate
    from pipelines.definitions import ASSETS
    from pipelines.io_manager import ArtifactIOManager
    from resources.dvc import DvcResource
    from resources.models import ModelLoader
    from resources.storage import StorageResource

    storage = StorageResource(root=str(root))
    return dg.materialize(
        [*ASSETS, promotion_gate],
        selection=["registered_adapter"],
        resources={
            "storage": storage,
            "io_manager": io_manager or ArtifactIOManager(storage=storage),
            "dvc": DvcResource(root=str(root), enabled=False),
            "models": ModelLoader(embedded_root=str(root / "models" / "embedded")),
            "registry": _registry(root),
        },
        run_config={
            "ops": {"registered_adapter": {"config": {"model_name": "finetuned-adapter", **(config or {})}}}
        },
        raise_on_error=False,
    )


def _registry(root: Path) -> ModelRegistry:
    return ModelRegistry(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_the_gate_judges_this_runs_version_and_the_page_says_so(tmp_path: Path, tiny_base: Path) -> None:
    _inputs(tmp_path, tiny_base)
    result = _run(tmp_path, io_manager=ShuffledRecordIOManager(root=str(tmp_path)))
    check = _check(result)
    assert check.passed, check.metadata["reasons"].value
    assert check.metadata["version"].value == "1"  # not the overwritten record's "99"
    assert check.metadata["promotion"].value == "champion"
    assert "| criterion | value | threshold | ok |" in check.metadata["gate"].value
    registry = _registry(tmp_path)
    assert registry.champion("finetuned-adapter")["version"] == "1"

    metadata = _metadata(result)
    assert metadata["promotion"] == "awaiting promotion_gate: passes"
    assert metadata["champion"] == "no champion yet"
    assert "PASS" in metadata["gate_verdict"]
    # The lineage snapshot is an artifact of the version.
    info = registry.champion("finetuned-adapter")
    snapshot = json.loads(
        (registry.download(info, "lineage", tmp_path / "dl") / "dvc_lock_inputs.json").read_text()
    )
    assert snapshot["outputs"]["train_split"]["md5"] == info["tags"]["train_split_md5"]
    assert "train_split" in snapshot["not_in_dvc_lock"]  # this project has no dvc.lock

    # Re-run: the same bytes reuse the version, and the page names the champion with its lineage.
    again = _metadata(_run(tmp_path))
    assert again["promotion"] == "champion" and again["reused_existing_version"] is True
    assert "**version 1**" in again["champion"] and info["tags"]["train_split_md5"] in again["champion"]


def test_with_require_approval_a_passing_candidate_waits_pending(tmp_path: Path, tiny_base: Path) -> None:
    from assets.registry.promotion import approve

    _inputs(tmp_path, tiny_base)
    result = _run(tmp_path, {"require_approval": True})
    check = _check(result)
    assert check.passed and check.metadata["promotion"].value == "pending"
    registry = _registry(tmp_path)
    assert registry.champion("finetuned-adapter") is None
    assert registry.version("finetuned-adapter", "1")["tags"]["promotion"] == "pending"
    assert "approve 1" in _metadata(result)["promotion"]

    assert approve(registry, "finetuned-adapter", "1") is None
    assert registry.champion("finetuned-adapter")["version"] == "1"
    with pytest.raises(ValueError, match="not pending approval"):
        approve(registry, "finetuned-adapter", "1")


def test_a_noise_level_candidate_is_registered_rejected_and_not_promoted(
    tmp_path: Path, tiny_base: Path
) -> None:
    _inputs(tmp_path, tiny_base, improvement=1e-5)
    result = _run(tmp_path)
    check = _check(result)
    assert not check.passed
    assert "min_relative_improvement" in check.metadata["reasons"].value
    registry = _registry(tmp_path)
    assert registry.champion("finetuned-adapter") is None
    assert registry.version("finetuned-adapter", "1")["tags"]["promotion"] == "rejected"


def test_a_report_that_predates_per_example_results_is_refused(tmp_path: Path, tiny_base: Path) -> None:
    report = _inputs(tmp_path, tiny_base)
    del report["examples"]
    store_at(tmp_path).write_json("evaluation_report", report)
    check = _check(_run(tmp_path))
    assert not check.passed
    assert check.metadata["verdict"].value == (
        "evaluation_report predates per-example results; re-materialize evaluation_report"
    )
    assert _registry(tmp_path).champion("finetuned-adapter") is None


def test_an_unreachable_registry_fails_registration_with_what_to_check(
    tmp_path: Path, tiny_base: Path, monkeypatch
) -> None:
    from tests.test_failures import assert_says, failure_description

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setattr(
        "tests.test_promotion._registry", lambda root: ModelRegistry(tracking_uri="http://127.0.0.1:9")
    )
    _inputs(tmp_path, tiny_base)
    result = _run(tmp_path)
    description = failure_description(result, "registered_adapter")
    assert_says(description, "http://127.0.0.1:9", "nothing was promoted", "MLFLOW_TRACKING_URI")
    assert not store_at(tmp_path).path("registered_adapter").exists()
