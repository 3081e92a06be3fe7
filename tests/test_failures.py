"""Every user mistake, in every asset, ends in a ``dg.Failure`` that says what, where and what to do.

One test (or a few) per Dagster node: it materializes the node alone in a temporary project root, its
upstream assets provided as files where the stage table puts them, with one mistake a user makes (a
launchpad-style setting, a missing file, a report made for something else), and checks that the step
failed with a Failure (not a traceback of our internals) whose description names the setting, file or
row and says what to do. Real tiny inputs: a handful of rows and the embedded tiny model; nothing trains.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from assets.stages import ARTIFACTS
from resources.artifacts import ArtifactStore

# The op (node) name of each asset key; multi-assets are named after their stage.
OP_OF_KEY = {key: artifact.stage for key, artifact in ARTIFACTS.items()}


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded base model as the base_model asset writes it, built once for the module."""
    from resources.model_loading import prepare_base_model

    out = tmp_path_factory.mktemp("tiny-base") / "base_model"
    prepare_base_model("embedded", out, seed=0)
    return out


def store_at(root: Path) -> ArtifactStore:
    from resources.storage import StorageResource

    return StorageResource(root=str(root)).store(ARTIFACTS)


def example_rows(count: int, *, start: datetime | None = None) -> list[dict[str, Any]]:
    """``count`` one-turn conversations a day apart, each its own group."""
    start = start or datetime(2025, 1, 1, tzinfo=UTC)
    return [
        {
            "id": f"r{i}",
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}? Please show the sum."},
                {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."},
            ],
            "created_at": start + timedelta(days=i),
            "lang": "en",
            "source": "test",
        }
        for i in range(count)
    ]


def write_examples(root: Path, key: str, rows: list[dict[str, Any]]) -> None:
    from assets.shared.schema import example_features, raw_features, to_dataset

    features = raw_features() if key == "raw_examples" else example_features()
    store_at(root).write_dataset(key, to_dataset(rows, features))


def write_base(root: Path, tiny_base: Path) -> Path:
    target = store_at(root).path("base_model")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(tiny_base, target)
    return target


def write_adapter(root: Path, *, record: bool = True, base_source: str = "embedded") -> Path:
    """An adapter directory with a training record (quantization, sequence length, base) and no weights:
    enough for the checks that run before any adapter weights are read."""
    from assets.shared.training_record import TrainingRecord

    path = store_at(root).path("adapter")
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text('{"r": 8}\n')
    if record:
        settings = {"quantization": "nf4", "max_seq_length": 64}
        TrainingRecord(settings=settings, base_model={"source": base_source, "model_type": "llama"}).write(
            path
        )
    return path


def materialize(
    root: Path, keys: list[str], config: dict[str, Any] | None = None
) -> dg.ExecuteInProcessResult:
    """Materialize ``keys`` (one node) in ``root`` with a launchpad-style ``config`` for that node; every
    other asset of the graph is read from its file, as in a real run of a selection."""
    from pipelines.definitions import ASSETS
    from pipelines.io_manager import ArtifactIOManager
    from resources.dvc import DvcResource
    from resources.models import ModelLoader
    from resources.registry import ModelRegistry
    from resources.storage import StorageResource

    [op] = {OP_OF_KEY[key] for key in keys}
    storage = StorageResource(root=str(root))
    resources = {
        "storage": storage,
        "io_manager": ArtifactIOManager(storage=storage),
        "dvc": DvcResource(root=str(root), enabled=False),
        "models": ModelLoader(embedded_root=str(root / "models" / "embedded")),
        "registry": ModelRegistry(
            tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_location=str(root / "mlartifacts")
        ),
    }
    return dg.materialize(
        ASSETS,
        selection=keys,
        resources=resources,
        run_config={"ops": {op: {"config": config or {}}}},
        raise_on_error=False,
    )


def failure_description(result: dg.ExecuteInProcessResult, step: str) -> str:
    """The description of ``step``'s failure, after checking that the run failed there with a
    ``dg.Failure`` (a user-facing message) rather than another exception (a traceback)."""
    assert not result.success, "the run should have failed"
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failures] == [step], [e.step_key for e in failures]
    data = failures[0].event_specific_data
    assert data.error.cls_name == "Failure", f"a traceback, not a Failure:\n{data.error.to_string()}"
    assert data.user_failure_data is not None and data.user_failure_data.description
    return data.user_failure_data.description


def assert_says(description: str, *words: str) -> None:
    for word in words:
        assert word.lower() in description.lower(), f"{word!r} not in: {description}"


# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("file", "config", "words"),
    [
        (
            "no-such-export.jsonl",
            {},
            ("data.raw_path", "no-such-export.jsonl", "does not exist", "check the path"),
        ),
        ("rows.jsonl", {"max_chars": 0}, ("data.max_chars", "positive integer", "got 0", "params.yaml")),
    ],
    ids=["missing_file", "bad_max_chars"],
)
def test_raw_examples(tmp_path: Path, file: str, config: dict[str, Any], words: tuple[str, ...]) -> None:
    (tmp_path / "rows.jsonl").write_text(
        json.dumps({"instruction": "Name a colour.", "output": "Red.", "created_at": "2025-03-01T10:00:00Z"})
        + "\n"
    )
    result = materialize(tmp_path, ["raw_examples"], {"raw_path": str(tmp_path / file), **config})
    description = failure_description(result, "raw_examples")
    assert_says(description, *words)
    assert not store_at(tmp_path).path("raw_examples").exists()


@pytest.mark.parametrize("name", ["", "team/model", "a:b"])
def test_a_model_name_mlflow_cannot_hold_is_refused_before_evaluating(
    tmp_path: Path, tiny_base: Path, name: str
) -> None:
    write_base(tmp_path, tiny_base)
    write_adapter(tmp_path)
    write_examples(tmp_path, "test_split", example_rows(3))
    result = materialize(tmp_path, ["evaluation_report"], {"model_name": name})
    assert_says(failure_description(result, "evaluation_report"), "registry.model_name")


def test_an_empty_raw_path_is_a_clear_failure(tmp_path: Path) -> None:
    result = materialize(tmp_path, ["raw_examples"], {"raw_path": ""})
    assert_says(failure_description(result, "raw_examples"), "data.raw_path is empty")


def test_clean_bad_setting(tmp_path: Path, tiny_base: Path) -> None:
    write_examples(tmp_path, "raw_examples", example_rows(4))
    write_base(tmp_path, tiny_base)
    result = materialize(tmp_path, ["clean_examples", "rejected_examples"], {"near_dup_threshold": 2.0})
    description = failure_description(result, "clean")
    assert_says(description, "near_dup_threshold", "2.0", "params.yaml")


def test_augment_translation_model_that_does_not_exist(tmp_path: Path) -> None:
    write_examples(tmp_path, "clean_examples", example_rows(4))
    result = materialize(tmp_path, ["augmented_examples"], {"forward_model": "/no/such/dir"})
    description = failure_description(result, "augmented_examples")
    assert_says(description, "augment.forward_model", "/no/such/dir", "does not exist", "fix the path")
    assert not store_at(tmp_path).path("augmented_examples").exists()


def test_augment_model_that_is_no_translation_model(tmp_path: Path, tiny_base: Path) -> None:
    write_examples(tmp_path, "clean_examples", example_rows(4))
    result = materialize(tmp_path, ["augmented_examples"], {"forward_model": str(tiny_base)})
    description = failure_description(result, "augmented_examples")
    assert_says(description, "augment.forward_model", "sequence-to-sequence", "fix augment.forward_model")


def test_split_with_an_empty_train_part(tmp_path: Path) -> None:
    write_examples(tmp_path, "augmented_examples", example_rows(6))
    result = materialize(tmp_path, ["train_split"], {"validation_start": "2000-01-01"})
    description = failure_description(result, "split")
    assert_says(description, "train would be empty", "split.validation_start")
    assert not store_at(tmp_path).path("train_split").exists()


def test_split_with_an_upstream_never_materialized(tmp_path: Path) -> None:
    # The IO manager, not the asset, meets the missing input: it says which asset to materialize.
    result = materialize(tmp_path, ["test_split"])
    description = failure_description(result, "split")
    assert_says(
        description, "augmented_examples.parquet does not exist", "materialize asset 'augmented_examples'"
    )


def test_split_with_a_row_without_timestamp(tmp_path: Path) -> None:
    rows = example_rows(6)
    rows[2]["created_at"] = None
    write_examples(tmp_path, "augmented_examples", rows)
    description = failure_description(materialize(tmp_path, ["test_split"]), "split")
    assert_says(description, "row 'r2' has no created_at")


def test_base_model_directory_that_does_not_exist(tmp_path: Path) -> None:
    result = materialize(tmp_path, ["base_model"], {"base_model": "/no/such/model"})
    description = failure_description(result, "base_model")
    assert_says(description, "train.base_model", "/no/such/model", "does not exist", "fix the path")
    assert not store_at(tmp_path).path("base_model").exists()


def test_base_model_directory_without_a_model(tmp_path: Path) -> None:
    (tmp_path / "downloads").mkdir()
    result = materialize(tmp_path, ["base_model"], {"base_model": str(tmp_path / "downloads")})
    description = failure_description(result, "base_model")
    assert_says(description, "train.base_model", "downloads", "config.json", "point train.base_model at")


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"optimizer": "adamw_typo"}, ("train.optimizer", "adamw_typo", "choose one of")),
        # Every answer lies beyond the first 4 tokens: no row has a token to learn from.
        ({"max_seq_length": 4}, ("assistant token", "train.max_seq_length", "train_split")),
    ],
    ids=["unknown_optimizer", "no_assistant_token"],
)
def test_adapter_bad_training_setting(
    tmp_path: Path, tiny_base: Path, config: dict[str, Any], words: tuple[str, ...]
) -> None:
    write_base(tmp_path, tiny_base)
    write_examples(tmp_path, "train_split", example_rows(4))
    write_examples(tmp_path, "validation_split", example_rows(2, start=datetime(2025, 6, 1, tzinfo=UTC)))
    result = materialize(tmp_path, ["adapter"], config)
    description = failure_description(result, "adapter")
    assert_says(description, *words)
    assert not store_at(tmp_path).path("adapter").exists()


def test_evaluation_report_on_an_empty_test_split(tmp_path: Path, tiny_base: Path) -> None:
    write_base(tmp_path, tiny_base)
    write_adapter(tmp_path)
    write_examples(tmp_path, "test_split", [])
    result = materialize(tmp_path, ["evaluation_report"])
    description = failure_description(result, "evaluation_report")
    assert_says(description, "test_split is empty", "split.test_fraction", "materialize split")


def test_evaluation_report_refuses_an_adapter_trained_on_other_data(tmp_path: Path, tiny_base: Path) -> None:
    # The splits were re-made after training: scoring now would use rows the adapter trained on.
    from assets.shared.training_record import read_training_record

    write_base(tmp_path, tiny_base)
    adapter = write_adapter(tmp_path)
    write_examples(tmp_path, "test_split", example_rows(3))
    write_examples(tmp_path, "train_split", example_rows(5))
    record = read_training_record(adapter)
    store = store_at(tmp_path)
    inputs = {"base_model": store.md5("base_model"), "train_split": "0" * 32}
    type(record)(**{**record.__dict__, "inputs": inputs}).write(adapter)
    description = failure_description(materialize(tmp_path, ["evaluation_report"]), "evaluation_report")
    assert_says(description, "out of date", "train_split is now", "materialize adapter first")


def test_evaluation_report_on_a_test_row_without_answer(tmp_path: Path, tiny_base: Path) -> None:
    write_base(tmp_path, tiny_base)
    write_adapter(tmp_path)
    rows = example_rows(3)
    rows[1]["messages"] = rows[1]["messages"][:1]  # the user turn alone
    write_examples(tmp_path, "test_split", rows)
    result = materialize(tmp_path, ["evaluation_report"])
    description = failure_description(result, "evaluation_report")
    assert_says(description, "test_split", "'r1'", "no assistant turn", "materialize clean and split again")


@pytest.mark.parametrize(
    ("adapter", "words"),
    [
        ({"record": False}, ("training_config.json", "is missing", "re-materialize adapter")),
        (
            {"base_source": "acme/other-base"},
            ("acme/other-base", "'embedded'", "train.base_model", "materialize adapter again"),
        ),
    ],
    ids=["no_training_record", "trained_on_another_base"],
)
def test_evaluation_report_for_an_adapter_it_cannot_score(
    tmp_path: Path, tiny_base: Path, adapter: dict[str, Any], words: tuple[str, ...]
) -> None:
    write_base(tmp_path, tiny_base)
    write_adapter(tmp_path, **adapter)
    write_examples(tmp_path, "test_split", example_rows(2))
    result = materialize(tmp_path, ["evaluation_report"])
    description = failure_description(result, "evaluation_report")
    assert_says(description, *words)
    assert not store_at(tmp_path).path("evaluation_report").exists()


def _write_registration_inputs(root: Path, tiny_base: Path) -> str:
    """Every artifact registered_adapter stamps on a version; returns the adapter's md5."""
    for key in ("raw_examples", "clean_examples", "augmented_examples"):
        write_examples(root, key, example_rows(3))
    for key in ("train_split", "validation_split", "test_split"):
        write_examples(root, key, example_rows(1))
    write_base(root, tiny_base)
    write_adapter(root)
    return store_at(root).md5("adapter")


@pytest.mark.parametrize(
    ("report", "config", "missing", "words"),
    [
        (
            {"adapter_md5": "another-adapter"},
            {},
            None,
            ("evaluation_report", "another adapter", "materialize evaluation_report"),
        ),
        (
            {"registry_model_name": "someone-elses-model"},
            {},
            None,
            ("evaluation_report", "someone-elses-model", "registry.model_name", "same value"),
        ),
        ({}, {"confidence_level": 1.5}, None, ("registry.confidence_level", "[0.5, 1)")),
        (
            {},
            {},
            "clean_examples",
            ("clean_examples.parquet", "does not exist", "materialize asset 'clean_examples'"),
        ),
    ],
    ids=["another_adapter", "another_model_name", "bad_gate_setting", "upstream_never_materialized"],
)
def test_registered_adapter(
    tmp_path: Path,
    tiny_base: Path,
    report: dict[str, str],
    config: dict[str, Any],
    missing: str | None,
    words: tuple[str, ...],
) -> None:
    adapter_md5 = _write_registration_inputs(tmp_path, tiny_base)
    if missing:
        store_at(tmp_path).path(missing).unlink()
    metrics = {"perplexity": 10.0, "rougeL": 0.1, "bleu": 1.0, "answer_exact_match": 0.0, "n_examples": 1}
    full = {
        "adapter_md5": adapter_md5,
        "registry_model_name": "finetuned-adapter",
        "reference": "base",
        "models": {"base": metrics, "candidate": metrics},
        **report,
    }
    store_at(tmp_path).write_json("evaluation_report", full)
    result = materialize(tmp_path, ["registered_adapter"], {"model_name": "finetuned-adapter", **config})
    description = failure_description(result, "registered_adapter")
    assert_says(description, *words)
    assert not store_at(tmp_path).path("registered_adapter").exists()
    assert not (tmp_path / "mlflow.db").exists(), "nothing may be registered"


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({}, ("no champion", "'finetuned-adapter'", "promotion_gate", "materialize registered_adapter")),
        # Refused before the registry is asked: it is the setting, whatever the registry holds.
        ({"dtype": "float8"}, ("export.dtype", "'float8'", "float32", "params.yaml")),
    ],
    ids=["no_champion", "bad_dtype"],
)
def test_merged_model(
    tmp_path: Path, tiny_base: Path, config: dict[str, Any], words: tuple[str, ...]
) -> None:
    write_base(tmp_path, tiny_base)
    write_examples(tmp_path, "test_split", example_rows(2))
    store_at(tmp_path).write_json("registered_adapter", {"name": "finetuned-adapter", "version": "1"})
    result = materialize(tmp_path, ["merged_model"], config)
    description = failure_description(result, "merged_model")
    assert_says(description, *words)
    assert not store_at(tmp_path).path("merged_model").exists()


def test_merged_model_with_a_champion_whose_registry_files_were_deleted(
    tmp_path: Path, tiny_base: Path
) -> None:
    """A champion whose artifacts are gone: a Failure naming the version and the repair command, and
    the previous export left as it was."""
    from resources.registry import ModelRegistry

    write_base(tmp_path, tiny_base)
    write_examples(tmp_path, "test_split", example_rows(2))
    registry = ModelRegistry(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_location=str(tmp_path / "mlartifacts")
    )
    adapter = write_adapter(tmp_path)
    tags = {"adapter_md5": "x", "base_model_md5": store_at(tmp_path).md5("base_model")}
    info, _ = registry.register_once("finetuned-adapter", adapter, tags=tags, metrics={}, params={})
    registry.promote("finetuned-adapter", info["version"], expected_champion=None)
    shutil.rmtree(tmp_path / "mlartifacts")
    store_at(tmp_path).write_json(
        "registered_adapter", {"name": "finetuned-adapter", "version": info["version"]}
    )
    result = materialize(tmp_path, ["merged_model"], {})
    description = failure_description(result, "merged_model")
    assert_says(
        description, "champion of 'finetuned-adapter' cannot be loaded", "registry version 1", "rollback"
    )
    assert not store_at(tmp_path).path("merged_model").exists()
