"""Batching (assets/train/batching.py): a packed batch trains exactly what its rows would alone (no
attention across rows), the per-device choice of ``train.batching``, and the padding it measures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from assets.shared.chat import pad_batch, tokenize_conversation
from assets.shared.training_record import read_training_record
from assets.train.batching import BatchCollator, choose_batching, pack_features
from assets.train.loss import weighted_token_loss
from assets.train.settings import TrainSettings
from assets.train.training import train_adapter
from resources.model_loading import load_causal_lm, load_tokenizer

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _conversation(n: int, weight: float = 1.0) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Tell me " + "more " * n},
        {"role": "assistant", "content": f"Here is answer {n}: " + "word " * (n % 5 + 1), "weight": 1.0},
        {"role": "user", "content": "And then?"},
        {"role": "assistant", "content": "Then " + "again " * (n % 3 + 1), "weight": weight},
    ]


@pytest.fixture(scope="module")
def features(base_dir: Path) -> list[dict[str, list[Any]]]:
    tokenizer = load_tokenizer(base_dir)
    return [
        tokenize_conversation(tokenizer, _conversation(n, weight), max_seq_length=512)
        for n, weight in ((1, 1.0), (9, 0.5), (4, 0.25))
    ]


def test_a_packed_row_restarts_positions_and_never_predicts_across_rows(features: list) -> None:
    packed = pack_features(features)
    assert "attention_mask" not in packed
    lengths = [len(f["input_ids"]) for f in features]
    assert packed["input_ids"].shape == (1, sum(lengths))
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    positions = packed["position_ids"][0].tolist()
    assert [positions[s] for s in starts] == [0, 0, 0]
    assert positions[starts[1] - 1] == lengths[0] - 1
    assert all(
        packed["labels"][0, s].item() == -100 and packed["loss_weights"][0, s].item() == 0 for s in starts
    )


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_the_loss_of_a_packed_batch_equals_that_of_its_rows_alone(
    base_dir: Path, features: list, attention: str
) -> None:
    import torch

    model = load_causal_lm(base_dir, quantization=None, dtype="float32", device="cpu").eval()
    model.set_attn_implementation(attention)
    with torch.no_grad():
        # Each row alone: its weighted loss sum and weight sum.
        sums, weights = 0.0, 0.0
        for feature in features:
            alone = pad_batch([feature], pad_token_id=0)
            logits = model(input_ids=alone["input_ids"], use_cache=False).logits
            row_weights = alone["loss_weights"][:, 1:].sum().item()
            sums += weighted_token_loss(logits, alone["labels"], alone["loss_weights"]).item() * row_weights
            weights += row_weights
        expected = sums / weights
        packed = pack_features(features)
        logits = model(
            input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False
        ).logits
        got = weighted_token_loss(logits, packed["labels"], packed["loss_weights"]).item()
        padded = pad_batch(features, pad_token_id=0)
        logits = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
        padded_loss = weighted_token_loss(logits, padded["labels"], padded["loss_weights"]).item()
    assert got == pytest.approx(expected, rel=1e-5)
    assert padded_loss == pytest.approx(expected, rel=1e-5)


def test_the_collator_measures_padding_and_skips_evaluation_batches(features: list) -> None:
    padded = BatchCollator("padded", pad_token_id=0)
    padded(features)
    real = sum(len(f["input_ids"]) for f in features)
    assert padded.padding_efficiency == pytest.approx(real / (3 * max(len(f["input_ids"]) for f in features)))
    with padded.paused():
        padded(features[:1])
    assert padded.real_tokens == real
    packed = BatchCollator("packed", pad_token_id=0)
    packed(features)
    assert packed.padding_efficiency == 1.0
    with pytest.raises(ValueError, match="resolved batching"):
        BatchCollator("auto", pad_token_id=0)


@pytest.mark.parametrize(
    ("setting", "method", "device", "attention", "expected"),
    [
        ("auto", "qlora", "cpu", "sdpa", "group_by_length"),
        ("auto", "qlora", "cuda", "sdpa", "group_by_length"),
        ("auto", "qlora", "cuda", "flash_attention_2", "packed"),
        ("auto", "prefix", "cuda", "flash_attention_2", "group_by_length"),
        ("padded", "qlora", "cuda", "flash_attention_2", "padded"),
        ("packed", "lora", "cpu", "sdpa", "packed"),
    ],
)
def test_auto_batching_packs_only_where_a_variable_length_kernel_runs(
    setting: str, method: str, device: str, attention: str, expected: str
) -> None:
    choice = choose_batching(setting, method=method, device_type=device, attention=attention)
    assert choice.name == expected and choice.reason


def _settings(**overrides: Any) -> TrainSettings:
    values = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["train"]
    values.pop("base_model")
    values.update(batch_size=4, max_seq_length=64, learning_rate=0.02, max_steps=3, warmup_ratio=0.0)
    values.update(overrides)
    return TrainSettings.from_mapping(values)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batching": "packed", "method": "prefix", "quantization": None}, "batching to 'auto'"),
        ({"batching": "sorted"}, "batching must be one of"),
    ],
)
def test_meaningless_batching_settings_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _settings(**overrides)


def test_packed_training_runs_and_records_its_batching(base_dir: Path, tmp_path: Path) -> None:
    rows = [{"messages": _conversation(n, 0.5 if n % 2 else 1.0)} for n in range(8)]
    lines: list[str] = []
    result = train_adapter(
        load_causal_lm(base_dir, quantization=None, dtype="float32", device="cpu"),
        load_tokenizer(base_dir),
        rows,
        rows[:2],
        _settings(method="lora", quantization=None, batching="packed", eval_steps=2),
        tmp_path / "adapter",
        base_model_source="embedded",
        log=lines.append,
    )
    assert (result.batching, result.padding_efficiency) == ("packed", 1.0)
    assert result.loss_history[-1]["loss"] < result.loss_history[0]["loss"]
    assert result.eval_loss is not None
    record = read_training_record(tmp_path / "adapter")
    assert (record.batching, record.padding_efficiency) == ("packed", 1.0)
    assert any(line.startswith("Batching: packed") for line in lines)
