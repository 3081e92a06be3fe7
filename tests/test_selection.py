"""A multi-asset can be selected by any of its outputs, from the CLI as from the UI
(../shared/cases/18-dagster-select-one-output): the stage still writes every output together, and each
write is a materialization with its data version, so lineage, staleness and DVC stay right."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipelines.workspace import copy_project, run_in
from resources.artifacts import dvc_md5

# Augmentation and cleanlab are off: this is about selection, not about those stages' work.
OVERRIDES = {"augment": {"enabled": False}, "clean": {"cleanlab_enabled": False}}
PATHS = {
    "clean_examples": "data/clean_examples.parquet",
    "rejected_examples": "data/rejected_examples.parquet",
    "train_split": "data/splits/train.parquet",
    "validation_split": "data/splits/validation.parquet",
    "test_split": "data/splits/test.parquet",
}
LATEST = """
import json, sys
import dagster as dg
instance = dg.DagsterInstance.get()
out = {}
for key in sys.argv[1:]:
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    out[key] = None if event is None else {
        "run_id": event.run_id, "data_version": event.asset_materialization.tags.get("dagster/data_version")
    }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("selection") / "project", overrides=OVERRIDES)


def _materialize(project: Path, selection: str) -> None:
    dagster = str(Path(sys.executable).parent / "dagster")
    result = run_in(
        project, [dagster, "asset", "materialize", "-m", "pipelines.definitions", "--select", selection]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DagsterInvalidSubsetError" not in result.stderr


def _latest(project: Path, keys: list[str]) -> dict[str, dict[str, str] | None]:
    import json

    result = run_in(project, [sys.executable, "-c", LATEST, *keys])
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_an_upstream_selection_through_one_output_runs(project: Path) -> None:
    _materialize(project, "*test_split")
    latest = _latest(project, list(PATHS))
    # rejected_examples, train_split and validation_split were not selected but were written: each has a
    # materialization in the same run, whose data version is the md5 of its bytes.
    runs = {event["run_id"] for event in latest.values() if event}
    assert len(runs) == 1 and all(latest.values())
    for key, path in PATHS.items():
        assert latest[key]["data_version"] == dvc_md5(project / path), key


@pytest.mark.parametrize(
    ("selection", "siblings"),
    [("test_split", ["train_split", "validation_split"]), ("rejected_examples", ["clean_examples"])],
)
def test_one_output_of_a_multi_asset_runs_its_whole_stage(
    project: Path, selection: str, siblings: list[str]
) -> None:
    before = _latest(project, [selection, *siblings])
    _materialize(project, selection)
    after = _latest(project, [selection, *siblings])
    run_id = after[selection]["run_id"]
    assert run_id != before[selection]["run_id"]
    for key in siblings:
        assert after[key]["run_id"] == run_id, f"{key} was written but not reported"
        assert after[key]["data_version"] == dvc_md5(project / PATHS[key])
    # Recorded in DVC as well: the stage is up to date.
    stage = "split" if selection == "test_split" else "clean"
    status = run_in(project, [str(Path(sys.executable).parent / "dvc"), "status", stage])
    assert status.returncode == 0 and "changed" not in status.stdout, status.stdout
