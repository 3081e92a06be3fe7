"""dvc.yaml mirrors the Dagster asset graph: same stages, outputs, upstream edges and params."""

from __future__ import annotations

import dagster as dg
import pytest
import yaml

from assets.publishing import STAGE_SOURCES
from pipelines.definitions import defs
from resources.artifacts import ARTIFACTS
from tests.conftest import PROJECT_ROOT

STAGES = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
STAGE_NAMES = sorted({a.stage for a in ARTIFACTS.values()})


def test_every_asset_has_an_artifact_and_every_stage_exists() -> None:
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert keys == set(ARTIFACTS)
    assert sorted(STAGES) == STAGE_NAMES


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_stage_outs_and_cmd(stage: str) -> None:
    expected = sorted(a.path for a in ARTIFACTS.values() if a.stage == stage)
    assert sorted(STAGES[stage]["outs"]) == expected
    assert STAGES[stage]["cmd"] == f"python -m pipelines.materialize {stage}"


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_stage_deps_are_the_upstream_assets(stage: str) -> None:
    graph = defs.resolve_asset_graph()
    own = [key for key, a in ARTIFACTS.items() if a.stage == stage]
    upstream = {
        parent.to_user_string()
        for key in own
        for parent in graph.get(dg.AssetKey(key)).parent_keys
        if parent.to_user_string() not in own
    }
    artifact_paths = {a.path: key for key, a in ARTIFACTS.items()}
    declared = {artifact_paths[d] for d in STAGES[stage]["deps"] if d in artifact_paths}
    assert declared == upstream


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_stage_code_and_params_match_the_dagster_code_version(stage: str) -> None:
    # Both tools must see the same code and params edits, or they disagree about what is stale.
    paths, sections = STAGE_SOURCES[stage]
    artifact_paths = {a.path for a in ARTIFACTS.values()}
    code_deps = [d for d in STAGES[stage]["deps"] if d not in artifact_paths and not d.startswith("${")]
    assert sorted(code_deps) == sorted(paths)
    assert sorted(STAGES[stage]["params"]) == sorted(sections)
    for dep in code_deps:
        assert (PROJECT_ROOT / dep).exists(), f"dvc.yaml stage {stage} depends on missing {dep}"
