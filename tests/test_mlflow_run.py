"""The MLflow run behind a registry version: training curves as step metrics, settings as params, the
evaluation metrics of every model, the loss-curve PNG; the version's run_id links to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assets.shared.errors import InputError
from assets.shared.training_curves import (
    LOSS_HISTORY_FILE,
    VALIDATION_HISTORY_FILE,
    read_histories,
    step_series,
)
from tests.test_failures import store_at
from tests.test_promotion import _inputs, _metadata, _registry, _run, empty_db, tiny_base, tmp_path

__all__ = ["empty_db", "tiny_base", "tmp_path"]  # fixtures shared with test_promotion

TRAIN = [
    {"step": 1, "loss": 3.2, "epoch": 0.25, "learning_rate": 2e-4, "num_input_tokens_seen": 512},
    {"step": 2, "loss": 2.9, "epoch": 0.5, "learning_rate": 1.5e-4, "num_input_tokens_seen": 1024},
    {"step": 3, "loss": 2.5, "epoch": 0.75, "learning_rate": 1e-4, "num_input_tokens_seen": 1536},
    {"step": 4, "loss": 2.4, "epoch": 1.0, "learning_rate": 5e-5, "num_input_tokens_seen": 2048},
]
VALIDATION = [{"step": 2, "eval_loss": 3.0}, {"step": 4, "eval_loss": 2.7}]


def test_histories_become_step_series_named_by_what_they_hold() -> None:
    series = step_series(list(reversed(TRAIN)), VALIDATION)
    assert series["train/loss"] == [(1, 3.2), (2, 2.9), (3, 2.5), (4, 2.4)]
    assert series["train/learning_rate"][0] == (1, 2e-4)
    assert series["train/tokens_seen"][-1] == (4, 2048.0)
    assert series["train/epoch"][-1] == (4, 1.0)
    assert series["validation/loss"] == [(2, 3.0), (4, 2.7)]
    # Only numbers are metrics; a non-finite value is left out rather than charted.
    assert step_series([{"step": 1, "loss": float("nan"), "note": "x", "flag": True}], []) == {}


def test_a_history_that_is_not_a_list_of_steps_names_the_file(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp_path = tmp_path_factory.mktemp("histories")  # not the registry-copying tmp_path of this module
    assert read_histories(tmp_path) == ([], [])  # adapters written before histories existed
    (tmp_path / LOSS_HISTORY_FILE).write_text('{"loss": 1}')
    with pytest.raises(InputError, match=f"{LOSS_HISTORY_FILE} is not a list"):
        read_histories(tmp_path)
    (tmp_path / LOSS_HISTORY_FILE).write_text("[{")
    with pytest.raises(InputError, match="is not JSON"):
        read_histories(tmp_path)


def test_training_writes_the_files_the_registry_reads() -> None:
    from assets.train import training

    assert (training.LOSS_HISTORY_FILE, training.VALIDATION_HISTORY_FILE) == (
        LOSS_HISTORY_FILE,
        VALIDATION_HISTORY_FILE,
    )


def test_the_version_links_to_a_run_with_curves_params_metrics_and_the_plot(
    tmp_path: Path, tiny_base: Path
) -> None:
    report = _inputs(tmp_path, tiny_base)
    store = store_at(tmp_path)
    adapter = store.path("adapter")
    (adapter / LOSS_HISTORY_FILE).write_text(json.dumps(TRAIN))
    (adapter / VALIDATION_HISTORY_FILE).write_text(json.dumps(VALIDATION))
    report["adapter_md5"] = store.md5("adapter")  # the histories are part of the adapter's bytes
    store.write_json("evaluation_report", report)

    result = _run(tmp_path)
    assert result.success
    registry = _registry(tmp_path)
    version = registry.version("finetuned-adapter", "1")
    client = registry.client()
    run = client.get_run(version["run_id"])  # the version page's "source run"

    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in losses] == [(h["step"], h["loss"]) for h in TRAIN]
    validation = client.get_metric_history(run.info.run_id, "validation/loss")
    assert [(m.step, m.value) for m in validation] == [(2, 3.0), (4, 2.7)]
    rates = client.get_metric_history(run.info.run_id, "train/learning_rate")
    assert [m.value for m in rates] == [h["learning_rate"] for h in TRAIN]

    metrics = run.data.metrics
    assert metrics["perplexity"] == pytest.approx(report["models"]["candidate"]["perplexity"])
    assert metrics["base/perplexity"] == pytest.approx(report["models"]["base"]["perplexity"])
    params = run.data.params
    assert params["train.max_seq_length"] == "64" and params["train.quantization"] == "nf4"
    assert params["trained.method"] == "qlora" and "registry.confidence_level" in params

    png = Path(client.download_artifacts(run.info.run_id, "plots/loss_curve.png", str(tmp_path / "dl")))
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "train/loss (4 steps)" in _metadata(result)["mlflow_run_curves"]
