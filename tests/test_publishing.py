"""What assets do after their logic: DVC records only runs made from params.yaml."""

from __future__ import annotations

import json
from pathlib import Path

from assets.params import section
from tests.conftest import materialize_raw

ROW = {"id": "a", "instruction": "Say hi.", "output": "Hi!", "created_at": "2025-01-01T00:00:00Z"}


def test_a_launchpad_override_is_not_recorded_in_dvc(tmp_path: Path) -> None:
    raw = tmp_path / "other.jsonl"
    raw.write_text(json.dumps(ROW) + "\n")
    # tmp_path is no DVC repository: recording would fail the run, so success shows it was skipped.
    result = materialize_raw(tmp_path, raw, dvc_enabled=True)
    assert result.success
    assert str(raw) != section("data")["raw_path"]
    [materialization] = result.asset_materializations_for_node("raw_examples")
    assert materialization.metadata["dvc_recorded"].value is False
    assert materialization.metadata["params_overridden"].value == "raw_path"
    assert materialization.tags["dagster/data_version"] == materialization.metadata["dvc_md5"].value
