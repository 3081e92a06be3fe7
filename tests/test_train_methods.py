"""Training methods (assets/train/methods/): every train.method trains on the tiny model, and its
output saves, reloads and gives the same logits; wrong or meaningless settings fail before loading."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from assets.shared.training_record import read_training_record
from assets.train.methods import METHOD_SETTINGS, METHODS
from assets.train.settings import TrainSettings
from assets.train.training import train_adapter
from resources.model_loading import load_causal_lm, load_tokenizer

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Learning rates that move each method visibly in a few steps on the tiny random model: soft prompts
# and IA3 scales have few parameters and need large steps.
LEARNING_RATES = {"prefix": 0.05, "prompt": 0.3, "p_tuning": 0.05, "ia3": 0.2, "full": 0.002}
# Over about 10 s on the 2-core CPU; the default suite covers qlora and lora in test_train.py.
SLOW = {"qlora", "dora", "lora"}


def _params() -> dict[str, Any]:
    values = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["train"]
    values.pop("base_model")
    return values


def _settings(**overrides: Any) -> TrainSettings:
    values = _params()
    values.update(batch_size=4, max_seq_length=48, learning_rate=0.02, max_steps=6, warmup_ratio=0.0)
    values.update(overrides)
    return TrainSettings.from_mapping(values)


def _rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."},
            ]
        }
        for i in range(count)
    ]


def _method_overrides(name: str) -> dict[str, Any]:
    overrides: dict[str, Any] = {"method": name, "learning_rate": LEARNING_RATES.get(name, 0.02)}
    if METHODS[name].quantization != "required":
        overrides["quantization"] = None  # faster on CPU; qlora is the 4-bit one
    if name == "adalora":
        overrides.update(adalora_tinit=1, adalora_tfinal=2, adalora_init_r=6, adalora_target_r=4)
    if name in ("prefix", "prompt", "p_tuning"):
        overrides["num_virtual_tokens"] = 4
    return overrides


def _reload(base_dir: Path, out: Path, quantization: str | None) -> Any:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if read_training_record(out).method == "full":
        return AutoModelForCausalLM.from_pretrained(out, dtype="float32")
    base = load_causal_lm(base_dir, quantization=quantization, dtype="float32", device="cpu")
    return PeftModel.from_pretrained(base, out)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(METHODS)]
)
def test_each_method_learns_saves_and_reloads_to_the_same_logits(
    name: str, base_dir: Path, tmp_path: Path
) -> None:
    import torch

    settings = _settings(**_method_overrides(name))
    model = load_causal_lm(base_dir, quantization=settings.quantization, dtype="float32", device="cpu")
    tokenizer = load_tokenizer(base_dir)
    # Four rows and a batch of four: every step sees the same batch, so the loss must fall.
    result = train_adapter(
        model, tokenizer, _rows(4), [], settings, tmp_path / "out", base_model_source="embedded"
    )
    losses = [h["loss"] for h in result.loss_history]
    assert len(losses) == 6 and losses[-1] < losses[0], losses
    record = read_training_record(tmp_path / "out")
    assert (record.method, record.mergeable) == (name, METHODS[name].mergeable)
    assert 0 < result.trainable_params <= result.total_params

    batch = tokenizer(["What is 3 plus 3?"], return_tensors="pt")
    trained = result.model.eval()
    reloaded = _reload(base_dir, tmp_path / "out", settings.quantization).eval()
    with torch.no_grad():
        expected = trained(**batch).logits
        actual = reloaded(**batch).logits
    assert torch.allclose(expected, actual, atol=1e-5), (expected - actual).abs().max()


def test_the_method_table_and_params_yaml_agree() -> None:
    params = _params()
    assert params["method"] == "qlora" and params["method"] in METHODS
    for key, (default, _users) in METHOD_SETTINGS.items():
        value = params[key]
        assert (list(value) if isinstance(value, list) else value) == default, key
    assert set(METHOD_SETTINGS) <= {f.name for f in dataclasses.fields(TrainSettings)}
    assert {m for m, entry in METHODS.items() if not entry.mergeable} == {
        "prefix",
        "prompt",
        "p_tuning",
        "full",
    }
    for entry in METHODS.values():
        for f in dataclasses.fields(entry.settings_class):
            assert f.metadata["help"].startswith(f"train.{f.name}:"), f.name


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"method": "loraa"}, r"train\.method must be one of \['adalora', 'dora', 'full', 'ia3', 'lora'"),
        (
            {"method": "ia3", "lora_r": 16},
            r"train\.lora_r = 16 means nothing for method 'ia3'.*set it back to 8",
        ),
        ({"method": "prompt", "adalora_init_r": 4}, r"adalora_init_r = 4 means nothing for method 'prompt'"),
        ({"num_virtual_tokens": 8}, r"num_virtual_tokens = 8 means nothing for method 'qlora'"),
        ({"method": "lora"}, r"method 'lora' trains a full-precision base: set quantization to null"),
        ({"method": "full"}, r"method 'full' trains a full-precision base"),
        ({"quantization": None}, r"method 'qlora' trains on a quantized base"),
        (
            {"method": "prefix", "gradient_checkpointing": "always"},
            r"cannot train with gradient checkpointing",
        ),
        ({"lora_r": 0}, r"train\.lora_r must be a positive integer"),
        ({"target_modules": "everything"}, r"train\.target_modules must be 'all-linear' or a list"),
        ({"method": "adalora", "adalora_target_r": 20}, r"adalora_target_r \(20\) must not exceed"),
        ({"method": "ia3", "ia3_target_modules": ["k_proj"]}, r"must be given together"),
        (
            {"method": "ia3", "ia3_target_modules": ["k_proj"], "ia3_feedforward_modules": ["down_proj"]},
            r"must be a subset of train\.ia3_target_modules",
        ),
        ({"method": "prompt", "num_virtual_tokens": 0}, r"num_virtual_tokens must be a positive integer"),
        (
            {"gradient_checkpointing": "yes"},
            r"gradient_checkpointing must be one of \('auto', 'always', 'never'\)",
        ),
        ({"lr_scheduler": "cosine_restarts"}, r"lr_scheduler must be one of"),
    ],
)
def test_wrong_or_meaningless_settings_are_named(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _settings(**overrides)


def test_adalora_refuses_a_schedule_without_a_budgeting_phase() -> None:
    settings = _settings(method="adalora", adalora_tinit=4, adalora_tfinal=2)
    assert settings.total_steps(100) == 6
    with pytest.raises(
        ValueError, match=r"adalora_tinit \(4\) \+ train\.adalora_tfinal \(2\) leave no steps"
    ):
        settings.method_config.check_schedule(settings.total_steps(100))


def test_total_steps_count_as_the_trainer_does() -> None:
    settings = _settings(max_steps=-1, epochs=2, batch_size=4, gradient_accumulation_steps=2)
    assert settings.total_steps(17) == 2 * 3  # 5 batches -> 3 optimizer steps per epoch
    assert _settings(max_steps=7).total_steps(17) == 7


def test_the_record_of_an_old_adapter_still_reads_as_mergeable_qlora(tmp_path: Path) -> None:
    (tmp_path / "training_config.json").write_text(
        json.dumps({"settings": {"quantization": "nf4", "max_seq_length": 64}, "base_model": {}})
    )
    record = read_training_record(tmp_path)
    assert (record.method, record.mergeable) == ("qlora", True)


def test_cosine_schedule_length_grouping_and_checkpointing_train_together(
    base_dir: Path, tmp_path: Path
) -> None:
    lines: list[str] = []
    settings = _settings(
        method="lora",
        quantization=None,
        max_steps=8,
        batch_size=2,
        warmup_ratio=0.25,
        lr_scheduler="cosine",
        batching="group_by_length",
        gradient_checkpointing="always",
        log_every_steps=1,
    )
    model = load_causal_lm(base_dir, quantization=None, dtype="float32", device="cpu")
    rows = _rows(4) + [
        {
            "messages": [
                {"role": "user", "content": "Say " + "many words " * n},
                {"role": "assistant", "content": "ok"},
            ]
        }
        for n in (3, 9, 15, 21)
    ]
    result = train_adapter(
        model,
        load_tokenizer(base_dir),
        rows,
        [],
        settings,
        tmp_path / "out",
        base_model_source="embedded",
        log=lines.append,
    )
    assert result.gradient_checkpointing and result.steps == 8
    rates = [
        float(line.split("learning rate ")[1].split(",")[0]) for line in lines if "learning rate" in line
    ]
    # Warmup (two steps) up to the peak learning rate, then a cosine decay towards 0.
    peak = rates.index(max(rates))
    assert 1 <= peak <= 2 and rates[peak] == pytest.approx(0.02, rel=0.01)
    assert all(a < b for a, b in itertools.pairwise(rates[: peak + 1]))
    assert all(a > b for a, b in itertools.pairwise(rates[peak:])) and rates[-1] < 0.1 * rates[peak]
