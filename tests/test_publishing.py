"""What assets do after their logic: DVC records only runs made from params.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from assets.ingest.asset import raw_examples
from assets.params import section
from pipelines.io_manager import ArtifactIOManager
from resources.dvc import DvcResource
from resources.storage import StorageResource

ROW = {"id": "a", "instruction": "Say hi.", "output": "Hi!", "created_at": "2025-01-01T00:00:00Z"}


def test_a_launchpad_override_is_not_recorded_in_dvc(tmp_path: Path) -> None:
    raw = tmp_path / "other.jsonl"
    raw.write_text(json.dumps(ROW) + "\n")
    storage = StorageResource(root=str(tmp_path))
    # tmp_path is no DVC repository: recording would fail the run, so success shows it was skipped.
    result = dg.materialize(
        [raw_examples],
        resources={
            "storage": storage,
            "io_manager": ArtifactIOManager(storage=storage),
            "dvc": DvcResource(root=str(tmp_path), enabled=True),
        },
        run_config={"ops": {"raw_examples": {"config": {"raw_path": str(raw)}}}},
    )
    assert str(raw) != section("data")["raw_path"]
    [materialization] = result.asset_materializations_for_node("raw_examples")
    assert materialization.metadata["dvc_recorded"].value is False
    assert materialization.metadata["params_overridden"].value == "raw_path"
    assert materialization.tags["dagster/data_version"] == materialization.metadata["dvc_md5"].value
