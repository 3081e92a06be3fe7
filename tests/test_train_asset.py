"""The adapter asset (assets/train/asset.py): a wrong method or setting fails before the base model
loads; a run shows its progress in the run log and its curves and method in the metadata."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.test_failures import (
    assert_says,
    example_rows,
    failure_description,
    materialize,
    store_at,
    write_base,
    write_examples,
)
from tests.test_failures import tiny_base as tiny_base  # a fixture


def _inputs(root: Path, base: Path, train_rows: int = 8) -> None:
    write_base(root, base)
    write_examples(root, "train_split", example_rows(train_rows))
    write_examples(root, "validation_split", example_rows(2, start=datetime(2025, 6, 1, tzinfo=UTC)))


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"method": "lorra"}, ("train.method must be one of", "'qlora'", "'p_tuning'", "'lorra'")),
        (
            {"method": "ia3", "lora_r": 16},
            ("train.lora_r = 16", "means nothing for method 'ia3'", "set it back to 8"),
        ),
        ({"method": "full"}, ("method 'full'", "set quantization to null")),
        (
            {"method": "adalora", "adalora_tinit": 5, "max_steps": 4},
            ("train.adalora_tinit (5)", "leave no steps", "4 optimizer steps"),
        ),
        ({"precision": "float16"}, ("train.precision float16 needs a CUDA device", "auto or float32")),
        (
            {"early_stopping_patience": 2, "eval_steps": 3, "save_steps": 4},
            ("early_stopping_patience 2 needs save_steps to be a multiple of eval_steps",),
        ),
    ],
    ids=[
        "unknown_method",
        "meaningless_setting",
        "full_on_a_quantized_base",
        "adalora_schedule",
        "float16_on_cpu",
        "early_stopping_between_saves",
    ],
)
def test_a_wrong_method_or_setting_fails_before_the_base_loads(
    tmp_path: Path,
    tiny_base: Path,
    monkeypatch: pytest.MonkeyPatch,
    config: dict[str, Any],
    words: tuple[str, ...],
) -> None:
    from resources.models import ModelLoader

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the base model was loaded before the settings were checked")

    monkeypatch.setattr(ModelLoader, "causal_lm", refuse)
    _inputs(tmp_path, tiny_base)
    description = failure_description(materialize(tmp_path, ["adapter"], config), "adapter")
    assert_says(description, *words)
    assert not store_at(tmp_path).path("adapter").exists()


def _materialize_with_instance(root: Path, config: dict[str, Any]) -> tuple[Any, Any]:
    """test_failures.materialize, on an instance whose event log the test can read back."""
    import dagster as dg

    from pipelines.definitions import ASSETS
    from pipelines.io_manager import ArtifactIOManager
    from resources.dvc import DvcResource
    from resources.models import ModelLoader
    from resources.registry import ModelRegistry
    from resources.storage import StorageResource

    storage = StorageResource(root=str(root))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        ASSETS,
        selection=["adapter"],
        resources={
            "storage": storage,
            "io_manager": ArtifactIOManager(storage=storage),
            "dvc": DvcResource(root=str(root), enabled=False),
            "models": ModelLoader(embedded_root=str(root / "models" / "embedded")),
            "registry": ModelRegistry(
                tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_location=str(root / "mlartifacts")
            ),
        },
        run_config={"ops": {"adapter": {"config": config}}},
        instance=instance,
    )
    return result, instance


@pytest.mark.slow
def test_the_adapter_shows_progress_curves_and_method(tmp_path: Path, tiny_base: Path) -> None:
    _inputs(tmp_path, tiny_base)
    config = {"max_steps": 4, "batch_size": 4, "eval_steps": 2, "save_steps": 2, "log_every_steps": 2}
    result, instance = _materialize_with_instance(tmp_path, config)
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = {key: value.value for key, value in event.materialization.metadata.items()}
    # The tiny model's activations fit many times over: auto leaves checkpointing off, and says why.
    assert (metadata["method"], metadata["mergeable"], metadata["gradient_checkpointing"]) == (
        "qlora",
        True,
        False,
    )
    assert metadata["gradient_checkpointing_reason"].startswith("auto: activations of a 4 x")
    assert (
        metadata["batching"].startswith("group_by_length (auto:") and 0 < metadata["padding_efficiency"] <= 1
    )
    assert metadata["answers_cut_by_max_seq_length"] == 0 and metadata["truncation"] == "trim"
    # auto, resolved for the CPU; early stopping is off by default.
    assert (metadata["optimizer"], metadata["precision"], metadata["best_step"]) == (
        "adamw_torch",
        "float32",
        None,
    )
    # Sparklines inline (the UI shows markdown under 1000 characters without a click), the PNG beside.
    assert "| training |" in metadata["loss_curve"] and "| validation |" in metadata["loss_curve"]
    assert len(metadata["loss_curve"]) < 1000
    assert metadata["loss_curve_plot"].startswith("![training and validation loss](data:image/png;base64,")
    # What a user reads in the run's log while it trains.
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    progress = [m for m in messages if m.startswith("step ")]
    assert any(m.startswith("step 4/4: loss") and "tokens/s" in m and "ETA" in m for m in progress), progress
    assert any(m.startswith("step 2/4: validation loss") for m in progress), progress
    assert "training: 4 optimizer steps" in messages
    assert not any((tmp_path / ".cache" / "train").glob("*/checkpoint-*")), "checkpoints left behind"
