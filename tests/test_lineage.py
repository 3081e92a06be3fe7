"""A registry version's split files restored from DVC (cache, then remote) with the md5 of its tags."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from assets.registry.lineage import dvc_lock_snapshot, restore_files
from assets.shared.errors import InputError
from resources.artifacts import dvc_md5

SPLITS = {"train_split": "data/splits/train.parquet", "test_split": "data/splits/test.parquet"}


@pytest.fixture
def dvc_project(tmp_path: Path) -> Path:
    """A DVC repository (no git) whose cache and local remote hold two versions of the splits."""
    from dvc.repo import Repo

    root = tmp_path / "project"
    root.mkdir()
    Repo.init(str(root), no_scm=True)
    with Repo(str(root)) as repo:
        with repo.config.edit() as config:
            config["remote"]["store"] = {"url": str(tmp_path / "remote")}
            config["core"]["remote"] = "store"
        for version in ("old", "new"):
            for key, relative in SPLITS.items():
                path = root / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"{key} rows, {version} version\n")
            repo.add([str(root / p) for p in SPLITS.values()])
            repo.push()
    return root


def test_restore_gives_the_files_of_the_tags_without_touching_the_workspace(
    dvc_project: Path, tmp_path: Path
) -> None:
    old = {relative: dvc_md5_of_text(f"{key} rows, old version\n") for key, relative in SPLITS.items()}
    workspace = {p: (dvc_project / p).read_text() for p in SPLITS.values()}
    restored = restore_files(dvc_project, old, tmp_path / "restored")
    for relative, md5 in old.items():
        assert dvc_md5(restored[relative]) == md5
        assert restored[relative] == tmp_path / "restored" / relative
    assert {p: (dvc_project / p).read_text() for p in SPLITS.values()} == workspace  # untouched


def test_restore_falls_back_to_the_remote_and_names_what_is_missing(
    dvc_project: Path, tmp_path: Path
) -> None:
    shutil.rmtree(dvc_project / ".dvc" / "cache")
    old = {relative: dvc_md5_of_text(f"{key} rows, old version\n") for key, relative in SPLITS.items()}
    restored = restore_files(dvc_project, old, tmp_path / "from-remote")
    assert all(dvc_md5(restored[r]) == md5 for r, md5 in old.items())
    with pytest.raises(InputError, match=r"data/splits/test.parquet \(md5 0+\) is neither in the DVC cache"):
        restore_files(dvc_project, {"data/splits/test.parquet": "0" * 32}, tmp_path / "nothing")


def test_the_snapshot_keeps_the_input_stages_and_flags_unrecorded_outputs(tmp_path: Path) -> None:
    lock = {
        "schema": "2.0",
        "stages": {
            "split": {"cmd": "x", "outs": [{"path": "data/splits/train.parquet", "md5": "aaa", "size": 1}]},
            "merged_model": {"cmd": "y", "outs": [{"path": "models/merged_model", "md5": "m.dir"}]},
        },
    }
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    paths = {"train_split": "data/splits/train.parquet", "test_split": "data/splits/test.parquet"}
    snapshot = dvc_lock_snapshot(tmp_path, {"train_split": "aaa", "test_split": "bbb"}, paths)
    assert set(snapshot["dvc_lock"]) == {"split"}  # inputs only, not the export
    assert snapshot["not_in_dvc_lock"] == ["test_split"]
    assert snapshot["outputs"]["train_split"] == {"path": "data/splits/train.parquet", "md5": "aaa"}


@pytest.mark.slow
def test_the_restore_command_reads_a_versions_tags(
    dvc_project: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    import pipelines.registry as cli
    from resources.registry import ModelRegistry

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(cli, "PROJECT_ROOT", dvc_project)
    monkeypatch.setattr(cli, "SPLITS", tuple(SPLITS))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    tags = {f"{key}_md5": dvc_md5_of_text(f"{key} rows, old version\n") for key in SPLITS}
    ModelRegistry(tracking_uri=uri).register_once(
        "m", adapter, tags={"adapter_md5": "a", **tags}, metrics={}, params={}
    )
    assert cli.main(["--name", "m", "restore", "1", "--to", str(tmp_path / "v1")]) == 0
    out = capsys.readouterr().out
    assert "no dvc.lock snapshot" in out  # registered without one: restored from the tags alone
    for key, relative in SPLITS.items():
        assert dvc_md5(tmp_path / "v1" / relative) == tags[f"{key}_md5"]


def dvc_md5_of_text(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()
