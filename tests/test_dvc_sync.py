"""The stage table is the only place a stage is declared: dvc.yaml, the Dagster definitions and the code
versions all follow it, and code dependencies are the imports the stage actually makes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from assets import stages
from assets.publishing import code_version
from pipelines.definitions import defs
from pipelines.dvc_yaml import render, upstream_keys
from tests.conftest import PROJECT_ROOT

STAGE_NAMES = [stage.name for stage in stages.STAGES]


def test_dvc_yaml_is_generated_from_the_stage_table() -> None:
    assert (PROJECT_ROOT / "dvc.yaml").read_text() == render(), "dvc.yaml is stale: run `make dvc-yaml`"


def test_every_dagster_node_is_one_stage_with_its_outputs() -> None:
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert keys == set(stages.ARTIFACTS)
    nodes = {
        assets_def.node_def.name: {k.to_user_string() for k in assets_def.keys} for assets_def in defs.assets
    }
    assert nodes == {stage.name: set(stage.keys) for stage in stages.STAGES}


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_dvc_stage_matches_the_table(name: str) -> None:
    stage = stages.stage(name)
    entry = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"][name]
    assert entry["cmd"] == f"python -m pipelines.materialize {name}"
    assert entry["outs"] == [output.path for output in stage.outputs]
    assert entry["params"] == list(stage.params)
    upstream = [stages.ARTIFACTS[key].path for key in upstream_keys(stage)]
    assert entry["deps"] == [*upstream, *stage.extra_deps, *stages.code_deps(name)]
    for dep in stages.code_deps(name):
        assert (PROJECT_ROOT / dep).exists(), f"stage {name} depends on missing {dep}"


def _project_imports(path: Path) -> set[str]:
    """Project modules a file imports (top of file or inside functions), as dotted names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {name for name in names if name.split(".")[0] in ("assets", "resources")}


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_code_files_cover_every_module_a_stage_imports(name: str) -> None:
    files = set(stages.code_files(name))
    for relative in files:
        for module in _project_imports(PROJECT_ROOT / relative):
            path = module.replace(".", "/")
            candidates = {f"{path}.py", f"{path}/__init__.py"}
            if candidates & stages.RECORDING_MODULES or module in ("assets", "resources"):
                continue
            if not any((PROJECT_ROOT / c).is_file() for c in candidates):
                continue  # `from package import name`: the module is the package itself
            assert candidates & files, f"{relative} imports {module}, which stage {name}'s code misses"


def test_split_depends_on_the_shared_groups_module() -> None:
    # The old hand-kept table missed split's import of the group logic: an edit there left split
    # "up to date" in both tools.
    assert "assets/shared/groups.py" in stages.code_files("split")
    assert "assets/shared/chat.py" in stages.code_files("evaluation_report")


def test_no_stage_folder_imports_another_stage_folder() -> None:
    folders = {Path(stage.folder).name for stage in stages.STAGES}
    for stage in stages.STAGES:
        own = Path(stage.folder).name
        for path in sorted((PROJECT_ROOT / stage.folder).rglob("*.py")):
            for module in _project_imports(path):
                parts = module.split(".")
                if parts[0] == "assets" and len(parts) > 1 and parts[1] in folders - {own}:
                    pytest.fail(f"{path.relative_to(PROJECT_ROOT)} imports {module} from another stage")


def test_code_files_follow_lazy_and_transitive_imports(tmp_path: Path) -> None:
    (tmp_path / "assets" / "demo").mkdir(parents=True)
    (tmp_path / "assets" / "shared").mkdir()
    (tmp_path / "resources").mkdir()
    (tmp_path / "assets" / "demo" / "asset.py").write_text(
        "from assets.publishing import record_stage\n\ndef f():\n    from assets.shared.a import x\n"
    )
    (tmp_path / "assets" / "shared" / "a.py").write_text("import resources.b\nx = 1\n")
    (tmp_path / "resources" / "b.py").write_text("import numpy\n")
    (tmp_path / "assets" / "publishing.py").write_text("import resources.c\n")
    (tmp_path / "resources" / "c.py").write_text("")
    demo = stages.Stage("demo", "assets/demo", (), ())
    original = stages.STAGE_BY_NAME.copy()
    stages.STAGE_BY_NAME["demo"] = demo
    try:
        found = stages.code_files.__wrapped__("demo", tmp_path)
    finally:
        stages.STAGE_BY_NAME.clear()
        stages.STAGE_BY_NAME.update(original)
    # The lazy import and what it imports count; the recording module and its own imports do not.
    assert found == ("assets/demo/asset.py", "assets/shared/a.py", "resources/b.py")


def test_every_asset_carries_its_stage_code_version() -> None:
    for assets_def in defs.assets:
        stage = assets_def.node_def.name
        for key in assets_def.keys:
            assert assets_def.code_versions_by_key[key] == code_version(stage), key


def test_a_code_version_changes_with_its_params() -> None:
    assert len({code_version(name) for name in STAGE_NAMES}) == len(STAGE_NAMES)
