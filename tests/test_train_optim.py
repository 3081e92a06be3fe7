"""Optimizer, precision and early stopping of the training loop (assets/train/device_defaults.py,
assets/train/early_stopping.py): auto choices follow the device, meaningless combinations are named,
and early stopping keeps the adapter of the lowest validation loss, across a resume too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from assets.shared.chat import pad_batch
from assets.shared.errors import InputError
from assets.shared.training_record import read_training_record
from assets.train import device_defaults
from assets.train.device_defaults import resolve_optimizer, resolve_precision
from assets.train.settings import TrainSettings
from assets.train.training import train_adapter
from assets.train.truncation import fit_rows
from resources.model_loading import load_causal_lm, load_tokenizer

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# On the tiny model with these rows, LoRA at learning rate 0.1 lowers the validation loss for a few steps
# and then raises it (6.93, 6.63, 6.63, 6.56, 7.02 on the 2-core CPU): patience 1 stops one step after
# the best. Saves only at step 12, so the best step's checkpoint exists only because a new best is saved
# when evaluated.
EARLY_STOPPING = {
    "method": "lora",
    "quantization": None,
    "batch_size": 8,
    "max_seq_length": 48,
    "learning_rate": 0.1,
    "max_steps": 12,
    "warmup_ratio": 0.0,
    "eval_steps": 1,
    "save_steps": 12,
    "early_stopping_patience": 1,
    "log_every_steps": 1,
}


def _settings(**overrides: Any) -> TrainSettings:
    values = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["train"]
    values.pop("base_model")
    values.update(overrides)
    return TrainSettings.from_mapping(values)


def _rows(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."},
            ]
        }
        for i in range(start, start + count)
    ]


@pytest.fixture
def devices(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set what the probes report: ``devices(bf16=..., bnb=...)``."""

    def set_probes(*, bf16: bool = True, bnb: bool = True) -> None:
        monkeypatch.setattr(device_defaults, "cuda_supports_bfloat16", lambda: bf16)
        monkeypatch.setattr(device_defaults, "bitsandbytes_8bit_optimizers", lambda: bnb)

    return set_probes


@pytest.mark.parametrize(
    ("setting", "device", "bnb", "expected"),
    [
        ("auto", "cuda", True, "paged_adamw_8bit"),
        ("auto", "cuda", False, "adamw_torch"),
        ("auto", "cpu", True, "adamw_torch"),
        ("adafactor", "cuda", True, "adafactor"),
        ("paged_adamw_8bit", "cpu", True, "paged_adamw_8bit"),
    ],
)
def test_auto_optimizer_follows_the_device(
    devices: Any, setting: str, device: str, bnb: bool, expected: str
) -> None:
    devices(bnb=bnb)
    assert resolve_optimizer(setting, device) == expected


@pytest.mark.parametrize(
    ("setting", "device", "bf16", "expected"),
    [
        ("auto", "cuda", True, "bfloat16"),
        ("auto", "cuda", False, "float16"),
        ("auto", "cpu", True, "float32"),
        ("bfloat16", "cpu", False, "bfloat16"),
        ("float16", "cuda", True, "float16"),
        ("float32", "cuda", True, "float32"),
    ],
)
def test_auto_precision_follows_the_device(
    devices: Any, setting: str, device: str, bf16: bool, expected: str
) -> None:
    devices(bf16=bf16)
    assert resolve_precision(setting, device) == expected


@pytest.mark.parametrize(
    ("setting", "device", "bf16", "message"),
    [
        ("float16", "cpu", True, r"train\.precision float16 needs a CUDA device.*auto or float32"),
        ("bfloat16", "cuda", False, r"train\.precision bfloat16 needs a GPU with bfloat16 support"),
    ],
)
def test_a_precision_the_device_cannot_run_is_named(
    devices: Any, setting: str, device: str, bf16: bool, message: str
) -> None:
    devices(bf16=bf16)
    with pytest.raises(InputError, match=message):
        resolve_precision(setting, device)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"precision": "fp8"}, r"precision must be one of \('auto', 'float32', 'bfloat16', 'float16'\)"),
        ({"early_stopping_patience": -1}, r"early_stopping_patience must be 0 \(off\) or a positive"),
        (
            {"early_stopping_patience": 2, "eval_steps": 3, "save_steps": 4},
            r"early_stopping_patience 2 needs save_steps to be a multiple of eval_steps; got save_steps 4, "
            r"eval_steps 3",
        ),
        ({"early_stopping_threshold": -0.1}, r"early_stopping_threshold must be >= 0"),
    ],
)
def test_meaningless_settings_are_named(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _settings(**overrides)


def test_the_default_is_auto_and_patience_off() -> None:
    settings = _settings()
    assert (settings.optimizer, settings.precision, settings.early_stopping_patience) == ("auto", "auto", 0)


def test_float16_on_cpu_and_patience_without_validation_fail_before_training(
    base_dir: Path, tmp_path: Path
) -> None:
    model = load_causal_lm(base_dir, quantization=None, dtype="float32", device="cpu")
    tokenizer = load_tokenizer(base_dir)
    common = {"method": "lora", "quantization": None, "max_steps": 2}
    cases = [
        (_settings(precision="float16", **common), _rows(2, 50), r"train\.precision float16"),
        (
            _settings(early_stopping_patience=2, **common),
            [],
            r"train\.early_stopping_patience is 2, but no validation row.*Set "
            r"train\.early_stopping_patience to 0",
        ),
    ]
    for settings, validation, message in cases:
        with pytest.raises(InputError, match=message):
            train_adapter(
                model,
                tokenizer,
                _rows(4),
                validation,
                settings,
                tmp_path / "out",
                base_model_source="embedded",
            )
    assert not (tmp_path / "out").exists()


def _validation_loss(base_dir: Path, adapter: Path, rows: list[dict[str, Any]], max_seq_length: int) -> float:
    """The saved adapter's validation loss, as the Trainer measures it (one batch: mean over the
    batch's assistant tokens)."""
    import torch
    from peft import PeftModel

    tokenizer = load_tokenizer(base_dir)
    features, _ = fit_rows(tokenizer, rows, max_seq_length=max_seq_length, rule="trim")
    base = load_causal_lm(base_dir, quantization=None, dtype="float32", device="cpu")
    model = PeftModel.from_pretrained(base, adapter).eval()
    batch = pad_batch(features, pad_token_id=tokenizer.pad_token_id)
    with torch.no_grad():
        return float(model(**batch).loss)


def _train(base_dir: Path, out: Path, work: Path, log: Any = None) -> Any:
    model = load_causal_lm(base_dir, quantization=None, dtype="float32", device="cpu")
    return train_adapter(
        model,
        load_tokenizer(base_dir),
        _rows(8),
        _rows(4, 50),
        _settings(**EARLY_STOPPING),
        out,
        base_model_source="embedded",
        work_dir=work,
        log=log,
    )


@pytest.mark.slow
def test_early_stopping_keeps_the_best_adapter_across_a_resume(base_dir: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    result = _train(base_dir, tmp_path / "out", tmp_path / "work", log=lines.append)
    steps = [h["step"] for h in result.validation_history]
    losses = [h["eval_loss"] for h in result.validation_history]
    best = steps[losses.index(min(losses))]
    # Patience 1: training stops at the first evaluation after the best that does not improve on it.
    assert result.stopped_early_at_step == result.steps == best + 1 < EARLY_STOPPING["max_steps"], losses
    assert steps == list(range(1, result.steps + 1)) and losses[-1] > losses[best - 1], losses
    assert result.best_step == best
    assert lines[-1].startswith(f"early stopping: stopped early at step {best + 1}; keeping step {best} (")
    assert result.best_eval_loss == pytest.approx(losses[best - 1]) == pytest.approx(result.eval_loss)
    # The adapter on disk is the best step's, not the last step's.
    saved = _validation_loss(base_dir, tmp_path / "out", _rows(4, 50), EARLY_STOPPING["max_seq_length"])
    assert saved == pytest.approx(losses[best - 1], abs=1e-4) and abs(saved - losses[-1]) > 1e-2
    record = read_training_record(tmp_path / "out")
    assert (record.best_step, record.stopped_early_at_step) == (best, best + 1)
    assert (record.settings["optimizer"], record.settings["precision"]) == ("adamw_torch", "float32")

    # Interrupted once the step after the best is logged (before it is evaluated; the best step's
    # checkpoint is on disk although it is no save step), then resumed: the same best step, stopping
    # step and adapter weights.
    def interrupt(line: str) -> None:
        if line.startswith(f"step {best + 1}/") and "validation" not in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(base_dir, tmp_path / "again", tmp_path / "work2", log=interrupt)
    assert (tmp_path / "work2" / f"checkpoint-{best}" / "COMPLETE").is_file()
    resumed = _train(base_dir, tmp_path / "again", tmp_path / "work2")
    assert resumed.resumed_from_step == best
    assert (resumed.best_step, resumed.stopped_early_at_step) == (best, best + 1)
    again = _validation_loss(base_dir, tmp_path / "again", _rows(4, 50), EARLY_STOPPING["max_seq_length"])
    assert again == pytest.approx(saved, abs=1e-5)
    history = json.loads((tmp_path / "again" / "validation_history.json").read_text())
    assert [h["step"] for h in history] == steps


def test_a_diverging_run_fails_instead_of_saving_a_nan_adapter(base_dir: Path, tmp_path: Path) -> None:
    """At a learning rate of 1e30 the weights overflow within two steps; transformers' default
    ``logging_nan_inf_filter`` would log such a step's loss as the running mean and the run would end
    with a NaN adapter written as if it were fine."""
    settings = _settings(
        method="lora", quantization=None, learning_rate=1.0e30, max_steps=3, warmup_ratio=0.0, batch_size=4
    )
    out = tmp_path / "adapter"
    with pytest.raises(InputError, match="NaN or infinite"):
        train_adapter(
            load_causal_lm(base_dir, quantization=None, dtype="float32", device="cpu"),
            load_tokenizer(base_dir),
            _rows(8),
            _rows(4, 100),
            settings,
            out,
            base_model_source="embedded",
        )
    assert not out.exists()
