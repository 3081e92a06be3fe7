"""The hyperparameter search (assets/tune/): a real Optuna search on the tiny model writes best settings a
user can adopt, shows its trials in the run's metadata, never touches params.yaml, and refuses a bad
search space or an empty validation split before anything trains."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from assets.shared.errors import InputError
from assets.tune.space import DEFAULT_SPACE, TUNABLE, check_against, parse_space
from tests.test_failures import example_rows, write_base, write_examples
from tests.test_failures import tiny_base as tiny_base  # a fixture

pytest.importorskip("optuna", reason="the tune extra (pip install '.[tune]') is not installed")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SPACE = {
    "learning_rate": {"low": 1.0e-3, "high": 5.0e-2, "log": True},
    "lora_r": {"choices": [2, 4]},
}


def _base_settings(**overrides: Any) -> Any:
    from assets.train.settings import TrainSettings

    values = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["train"]
    values.pop("base_model")
    values.update(overrides)
    return TrainSettings.from_mapping(values)


def _project(root: Path, base: Path, validation_rows: int = 3) -> None:
    write_base(root, base)
    write_examples(root, "train_split", example_rows(8))
    later = datetime(2025, 6, 1, tzinfo=UTC)
    write_examples(root, "validation_split", example_rows(validation_rows, start=later))


def _run(root: Path, config: dict[str, Any], instance: Any = None) -> Any:
    """Execute the hyperparameter_search job in ``root`` with ``config`` (its op's run config)."""
    import dagster as dg

    from assets.tune.job import JOB_NAME, OP_NAME, hyperparameter_search
    from resources.models import ModelLoader
    from resources.storage import StorageResource

    defs = dg.Definitions(
        jobs=[hyperparameter_search],
        resources={
            "storage": StorageResource(root=str(root)),
            "models": ModelLoader(embedded_root=str(root / "models" / "embedded")),
        },
    )
    return defs.resolve_job_def(JOB_NAME).execute_in_process(
        run_config={"ops": {OP_NAME: {"config": config}}},
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _failure(result: Any) -> str:
    from tests.test_failures import failure_description

    return failure_description(result, "search_train_settings")


def _fast_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """params.yaml's train settings as the job reads them, made cheaper for a test: LoRA on the
    full-precision tiny base (4-bit on CPU is slow), short sequences, small batches."""
    import assets.tune.job

    real = assets.tune.job.current_config

    def cheaper(stage: str) -> dict[str, Any]:
        values = real(stage)
        values.update(method="lora", quantization=None, batch_size=4, max_seq_length=64)
        return values

    monkeypatch.setattr(assets.tune.job, "current_config", cheaper)


def test_a_search_writes_the_best_trial_for_the_user_to_adopt(
    tmp_path: Path, tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    _fast_training(monkeypatch)
    params_before = (PROJECT_ROOT / "params.yaml").read_bytes()
    _project(tmp_path, tiny_base)
    instance = dg.DagsterInstance.ephemeral()
    config = {"trials": 3, "max_steps": 3, "search_space": SPACE, "sampler_seed": 7}
    result = _run(tmp_path, config, instance)
    assert result.success, result.all_events

    text = (tmp_path / "tuning" / "best_params.yaml").read_text()
    assert "To adopt: copy the keys under `train:` into the train section of params.yaml" in text
    best = yaml.safe_load(text)
    assert set(best) == {"train"} and set(best["train"]) == set(SPACE)
    trials = list(csv.DictReader(io.StringIO((tmp_path / "tuning" / "trials.csv").read_text())))
    assert len(trials) == 3
    completed = [t for t in trials if t["state"] == "complete"]
    assert completed, trials
    losses = [float(t["validation_loss"]) for t in completed]
    lowest = completed[losses.index(min(losses))]
    # The file holds the values of the trial with the lowest validation loss, exactly as tried.
    assert best["train"]["learning_rate"] == float(lowest["learning_rate"])
    assert best["train"]["lora_r"] == int(lowest["lora_r"])
    assert 1.0e-3 <= best["train"]["learning_rate"] <= 5.0e-2
    assert f"lowest {min(losses):.6g} in trial {lowest['trial']} of 3" in text
    assert {t["steps"] for t in completed} == {"3"}
    assert "trials were shortened to 3 steps" in text
    # Adopting is a copy into params.yaml's train section, which then passes TrainSettings' checks.
    _base_settings(**best["train"])
    # Three trials sampled three different settings (a seeded TPE sampler, random at first).
    assert len({(t["learning_rate"], t["lora_r"]) for t in trials}) == 3

    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert metadata["best_validation_loss"].value == pytest.approx(min(losses), abs=1e-6)
    assert metadata["best_trial"].value == int(lowest["trial"])
    table = metadata["trials"].value
    assert table.count("\n| ") == 3 and "| best |" in table and "validation loss" in table
    assert len(table) < 1000, "the trials table should show in the UI without a click"
    assert "data:image/png;base64," in metadata["search_plot"].value
    assert "validation loss" in metadata["validation_loss_by_trial"].value
    # Each trial is logged while the search runs: its settings, its training progress, its loss.
    logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(line.startswith("trial 1/3: learning_rate=") for line in logs), logs
    assert any(line.startswith("trial 2: step 1/3: loss") for line in logs), logs
    assert any("validation loss" in line and "best so far" in line for line in logs), logs
    # The search never edits params.yaml: adopting the settings is the user's step.
    assert (PROJECT_ROOT / "params.yaml").read_bytes() == params_before


@pytest.mark.parametrize(
    ("space", "words"),
    [
        ({"learnign_rate": {"low": 1e-4, "high": 1e-2}}, ("search_space.learnign_rate", "'learning_rate'")),
        ({"batch_size": {"choices": [4, 8]}}, ("search_space.batch_size", "not comparable")),
        ({"lora_r": {"low": 8, "high": 4}}, ("search_space.lora_r", "low (8) must be below high (4)")),
        ({"learning_rate": {"low": 0.0, "high": 1e-2, "log": True}}, ("log range needs low > 0",)),
        ({"lora_r": {"choices": ["big"]}}, ("search_space.lora_r", "'big'")),
        ({"lr_scheduler": {"low": 1, "high": 2}}, ("search_space.lr_scheduler",)),
        ({"warmup_ratio": {"low": 0.0, "high": 1.0}}, ("search_space.warmup_ratio = 1.0", "warmup_ratio")),
        ({}, ("search_space is empty",)),
    ],
    ids=[
        "misspelled",
        "not_tunable",
        "reversed",
        "log_zero",
        "wrong_type",
        "text_range",
        "out_of_range",
        "empty",
    ],
)
def test_a_bad_search_space_is_refused_naming_the_setting(
    space: dict[str, Any], words: tuple[str, ...]
) -> None:
    with pytest.raises(InputError) as caught:
        check_against(_base_settings(), parse_space(space))
    for word in words:
        assert word in str(caught.value), str(caught.value)


def test_a_space_meaningless_for_the_method_is_refused_before_training() -> None:
    with pytest.raises(InputError, match=r"search_space.lora_r = 4 .*method 'ia3'"):
        check_against(_base_settings(method="ia3", quantization=None), parse_space({"lora_r": [4, 8]}))


def test_the_default_space_fits_the_default_settings() -> None:
    dimensions = parse_space(DEFAULT_SPACE)
    check_against(_base_settings(), dimensions)
    assert {d.name for d in dimensions} <= set(TUNABLE)


def test_every_searchable_name_is_a_train_setting() -> None:
    import dataclasses

    from assets.train.settings import TrainSettings

    assert set(TUNABLE) <= {field.name for field in dataclasses.fields(TrainSettings)}


def test_the_job_refuses_an_unknown_setting_before_loading_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resources.models import ModelLoader

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the base model was loaded before the search space was checked")

    monkeypatch.setattr(ModelLoader, "causal_lm", refuse)
    description = _failure(_run(tmp_path, {"trials": 2, "search_space": {"lora_rank": [4, 8]}}))
    assert "search_space.lora_rank" in description and "'lora_r'" in description


def test_an_empty_validation_split_is_refused_before_any_trial(tmp_path: Path, tiny_base: Path) -> None:
    _project(tmp_path, tiny_base, validation_rows=0)
    description = _failure(_run(tmp_path, {"trials": 2, "max_steps": 2, "search_space": SPACE}))
    assert "validation_split is empty" in description and "split.validation_fraction" in description
    assert not (tmp_path / "tuning").exists()


def test_missing_splits_name_the_asset_to_materialize(tmp_path: Path) -> None:
    description = _failure(_run(tmp_path, {"trials": 1, "search_space": SPACE}))
    assert "materialize asset 'train_split' first" in description


@pytest.mark.slow
def test_a_failed_trial_is_recorded_and_a_repeated_one_is_not_trained_again(tiny_base: Path) -> None:
    # Sampler seed 0 proposes 1e-3, 1e30, 1e-3: at 1e30 training diverges (that trial fails with the
    # reason and the search goes on); the third trial repeats the first's settings and reuses its loss.
    from assets.tune.search import COMPLETE, FAILED, run_search
    from resources.model_loading import load_causal_lm, load_tokenizer

    base = _base_settings(
        method="lora", quantization=None, batch_size=4, max_seq_length=64, max_steps=2, warmup_ratio=0.0
    )
    loads: list[int] = []

    def load_model() -> Any:
        loads.append(1)
        return load_causal_lm(tiny_base, quantization=None, dtype="float32", device="cpu")

    lines: list[str] = []
    result = run_search(
        base,
        parse_space({"learning_rate": {"choices": [1.0e30, 1.0e-3]}}),
        trials=3,
        sampler_seed=0,
        load_model=load_model,
        tokenizer=load_tokenizer(tiny_base),
        train_rows=example_rows(8),
        validation_rows=example_rows(2, start=datetime(2025, 6, 1, tzinfo=UTC)),
        base_model_source="embedded",
        log=lines.append,
    )
    first, second, third = result.trials
    assert [t.params["learning_rate"] for t in result.trials] == [1.0e-3, 1.0e30, 1.0e-3]
    assert (first.state, second.state, third.state) == (COMPLETE, FAILED, COMPLETE)
    assert "NaN or infinite" in (second.reason or "") and second.validation_loss is None
    assert third.validation_loss == first.validation_loss and len(loads) == 2
    assert result.best.number == 1
    assert any(line.startswith("trial 2/3 failed:") and "NaN" in line for line in lines), lines
    assert any("trial 3/3 repeats the settings of an earlier trial" in line for line in lines), lines


def test_the_command_line_reports_a_bad_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.tune import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    assert main(["--trials", "1", "--space", "{lora_rank: [4, 8]}"]) == 1
    err = capsys.readouterr().err
    assert "step search_train_settings failed" in err and "Did you mean 'lora_r'?" in err
    with pytest.raises(SystemExit, match="must be a YAML mapping"):
        main(["--space", "no-such-file.yaml"])


def test_the_job_is_registered_and_only_started_by_hand() -> None:
    import dagster as dg

    from pipelines.definitions import defs

    dg.Definitions.validate_loadable(defs)  # what `dagster definitions validate` (make lint) checks
    assert defs.resolve_job_def("hyperparameter_search") is not None
    automated = [*(defs.schedules or []), *(defs.sensors or [])]
    assert automated and all(target.job_name != "hyperparameter_search" for target in automated)


def test_without_optuna_the_job_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a)
    )
    description = _failure(_run(tmp_path, {"trials": 1}))
    assert "needs optuna" in description and "pip install '.[tune]'" in description
