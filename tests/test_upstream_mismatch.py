"""An asset refuses an upstream that does not match its own settings, naming the stage to re-run, and
a stage records in dvc.lock the settings it ran with, not params.yaml as it is when DVC commits.

The issue's cases: changing `train.base_model` and re-running only `adapter` trained on the old base
under the new setting (and DVC called it up to date); `learning_rate` edited from 0.002 to 0.004 during
training recorded an adapter trained at 0.002 under 0.004.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

import assets.publishing
from resources.dvc import DvcResource
from resources.project import PROJECT_ROOT
from tests.test_failures import (
    assert_says,
    example_rows,
    failure_description,
    materialize,
    store_at,
    tiny_base,  # noqa: F401  (a fixture)
    write_adapter,
    write_base,
    write_examples,
)

OTHER_BASE = "owner/another-model"


@pytest.fixture
def base_setting_changed(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """params.yaml with train.base_model edited after base_model was materialized (from `embedded`)."""
    import pipelines.definitions  # noqa: F401  (code versions are hashed from the real project at import)

    project = tmp_path_factory.mktemp("params")
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["train"]["base_model"] = OTHER_BASE
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.setattr(assets.publishing, "PROJECT_ROOT", project)
    return OTHER_BASE


def _says_rematerialize_base(description: str) -> None:
    assert_says(
        description,
        "base_model was materialized from 'embedded'",
        f"train.base_model is '{OTHER_BASE}'",
        "python -m pipelines.materialize base_model",
    )


def test_adapter_refuses_a_base_materialized_from_another_setting(
    tmp_path: Path,
    tiny_base: Path,  # noqa: F811
    base_setting_changed: str,
) -> None:
    write_base(tmp_path, tiny_base)
    write_examples(tmp_path, "train_split", example_rows(4))
    write_examples(tmp_path, "validation_split", example_rows(2, start=datetime(2025, 6, 1, tzinfo=UTC)))
    description = failure_description(materialize(tmp_path, ["adapter"]), "adapter")
    _says_rematerialize_base(description)
    assert not store_at(tmp_path).path("adapter").exists()


def test_evaluation_refuses_a_base_materialized_from_another_setting(
    tmp_path: Path,
    tiny_base: Path,  # noqa: F811
    base_setting_changed: str,
) -> None:
    write_base(tmp_path, tiny_base)
    write_adapter(tmp_path)
    write_examples(tmp_path, "test_split", example_rows(3))
    result = materialize(tmp_path, ["evaluation_report"])
    _says_rematerialize_base(failure_description(result, "evaluation_report"))
    assert not store_at(tmp_path).path("evaluation_report").exists()


def test_export_refuses_a_base_materialized_from_another_setting(
    tmp_path: Path,
    tiny_base: Path,  # noqa: F811
    base_setting_changed: str,
) -> None:
    write_base(tmp_path, tiny_base)
    write_examples(tmp_path, "test_split", example_rows(2))
    store_at(tmp_path).write_json("registered_adapter", {"name": "finetuned-adapter", "version": "1"})
    result = materialize(tmp_path, ["merged_model"])
    _says_rematerialize_base(failure_description(result, "merged_model"))
    assert not store_at(tmp_path).path("merged_model").exists()


def test_the_same_base_passes_the_check(tmp_path: Path, tiny_base: Path) -> None:  # noqa: F811
    # params.yaml says `embedded`, as the base on disk does: the run gets past the check (and fails
    # later, on the test split this test leaves empty).
    write_base(tmp_path, tiny_base)
    write_adapter(tmp_path)
    write_examples(tmp_path, "test_split", [])
    description = failure_description(materialize(tmp_path, ["evaluation_report"]), "evaluation_report")
    assert "train.base_model is" not in description
    assert_says(description, "test_split is empty")


def _split_after_clean_made_with(root: Path, clean_settings: dict[str, Any] | None) -> Any:
    """Materialize the split in ``root`` on an instance where the clean_examples on disk were written
    by a run with ``clean_settings`` (None: no such run in the event log, e.g. after `dvc checkout`)."""
    import dagster as dg

    from assets.publishing import DATA_VERSION_TAG
    from pipelines.definitions import ASSETS
    from pipelines.io_manager import ArtifactIOManager
    from resources.models import ModelLoader
    from resources.registry import ModelRegistry
    from resources.storage import StorageResource

    write_examples(root, "clean_examples", example_rows(6))
    write_examples(root, "augmented_examples", example_rows(6))
    instance = dg.DagsterInstance.ephemeral()
    if clean_settings is not None:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "clean_examples",
                metadata={"settings": dg.MetadataValue.json(clean_settings)},
                tags={DATA_VERSION_TAG: store_at(root).md5("clean_examples")},
            )
        )
    storage = StorageResource(root=str(root))
    return dg.materialize(
        ASSETS,
        selection=["train_split", "validation_split", "test_split"],
        resources={
            "storage": storage,
            "io_manager": ArtifactIOManager(storage=storage),
            "dvc": DvcResource(root=str(root), enabled=False),
            "models": ModelLoader(embedded_root=str(root / "models" / "embedded")),
            "registry": ModelRegistry(tracking_uri=f"sqlite:///{root / 'mlflow.db'}"),
        },
        instance=instance,
        raise_on_error=False,
    )


def test_split_refuses_clean_examples_made_with_other_near_duplicate_settings(tmp_path: Path) -> None:
    clean = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["clean"]
    made_with = {**clean, "near_dup_threshold": clean["near_dup_threshold"] + 0.1}
    description = failure_description(_split_after_clean_made_with(tmp_path, made_with), "split")
    assert_says(
        description,
        f"clean.near_dup_threshold is {clean['near_dup_threshold']!r} in this run",
        f"clean_examples was made with {made_with['near_dup_threshold']!r}",
        "python -m pipelines.materialize clean",
    )
    assert not store_at(tmp_path).path("train_split").exists()


def test_split_accepts_clean_examples_made_with_its_settings_or_unrecorded(tmp_path: Path) -> None:
    clean = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["clean"]
    # The split then gets past the check (and fails later, on six rows too few for its defaults).
    for name, made_with in (("same", clean), ("unrecorded", None)):
        description = failure_description(_split_after_clean_made_with(tmp_path / name, made_with), "split")
        assert "was made with" not in description
        assert_says(description, "split.")


# ------------------------------------------------------------------------------------------------------
# Settings edited while a stage runs.


def _repo(root: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True, timeout=120)
    (root / "params.yaml").write_text("train:\n  learning_rate: 0.002\n  epochs: 2\nclean:\n  t: 1\n")
    (root / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: echo\n    params:\n    - train\n    - clean.t\n    outs:\n    - out.txt\n"
    )
    (root / "out.txt").write_text("x\n")


def _status(root: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_dvc_lock_keeps_the_settings_the_stage_ran_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _repo(tmp_path)
    ran_with = {"train.learning_rate": 0.002, "train.epochs": 2, "clean.t": 1}
    dvc = DvcResource(root=str(tmp_path))
    assert dvc.record("s", params=ran_with)
    assert _status(tmp_path) == {}  # nothing edited: recorded as usual

    commit = DvcResource._commit

    def edited_before_dvc_reads(self: DvcResource, root: Path, stage: str) -> None:
        # The user edits params.yaml after the stage read its settings, before DVC reads the file.
        params = (root / "params.yaml").read_text()
        (root / "params.yaml").write_text(params.replace("0.002", "0.004").replace("t: 1", "t: 5"))
        commit(self, root, stage)

    monkeypatch.setattr(DvcResource, "_commit", edited_before_dvc_reads)
    assert dvc.record("s", params=ran_with)
    locked = yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"]["s"]["params"]["params.yaml"]
    assert locked == {"train": {"learning_rate": 0.002, "epochs": 2}, "clean.t": 1}
    changed = _status(tmp_path)["s"][0]["changed deps"]
    # DVC names a whole-section entry by its section.
    assert changed == {"params.yaml": {"train": "modified", "clean.t": "modified"}}, changed


def test_a_stage_hands_dvc_the_settings_it_ran_with(tmp_path: Path) -> None:
    """record_stage passes the run's config values, by their params.yaml names, to DvcResource.record."""
    import dagster as dg

    from assets.publishing import Stopwatch, artifact_store, record_stage, stage_config
    from assets.shared.schema import example_features, to_dataset
    from assets.stages import ARTIFACTS
    from resources.artifacts import ArtifactStore
    from resources.storage import StorageResource

    class RecordingDvc(DvcResource):
        def record(self, stage, read=None, params=None):  # DVC itself is tested above
            calls.append((stage, dict(params or {})))
            return True

    calls: list[tuple[str, dict[str, Any]]] = []
    rows = to_dataset(example_rows(2), example_features())
    ArtifactStore(tmp_path, ARTIFACTS).write_dataset("clean_examples", rows)
    augment_config = stage_config("augmented_examples")

    @dg.asset(name="augmented_examples", required_resource_keys={"storage", "dvc"})
    def copy_of_clean(context):  # no annotations: this module postpones them
        config = augment_config()  # params.yaml's values, so the stage is recorded
        storage = context.resources.storage
        artifact_store(storage).write_dataset("augmented_examples", rows)
        metadata = {"augmented_examples": {"dagster/row_count": len(rows)}}
        yield from record_stage(context, config, storage, context.resources.dvc, metadata, Stopwatch())

    result = dg.materialize(
        [copy_of_clean],
        resources={"storage": StorageResource(root=str(tmp_path)), "dvc": RecordingDvc(root=str(tmp_path))},
    )
    assert result.success
    augment = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["augment"]
    [(stage, params)] = calls
    assert stage == "augmented_examples"
    assert params == {f"augment.{key}": value for key, value in augment.items()}


def test_the_projects_own_lock_format_is_pinned(tmp_path: Path) -> None:
    """dvc.yaml lists whole sections (`train`) and single keys (`train.max_seq_length`); both forms
    are kept at the values the stage ran with."""
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    _repo_with_project_params(tmp_path)
    dvc = DvcResource(root=str(tmp_path))
    ran_with = {"train.max_seq_length": 128, "clean.near_dup_threshold": 0.5}
    assert dvc.record("s", params=ran_with)
    locked = yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"]["s"]["params"]["params.yaml"]
    assert locked["train.max_seq_length"] == 128 and locked["clean"]["near_dup_threshold"] == 0.5


def _repo_with_project_params(root: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True, timeout=120)
    (root / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: echo\n    params:\n    - clean\n    - train.max_seq_length\n"
        "    outs:\n    - out.txt\n"
    )
    (root / "out.txt").write_text("x\n")
