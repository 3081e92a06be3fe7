"""Assistant-only tokenization (assets/shared/chat.py), train settings and QLoRA training (assets/train/)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from assets.shared.chat import (
    IGNORE_INDEX,
    ChatTemplateError,
    pad_batch,
    split_last_answer,
    tokenize_conversation,
    tokenize_rows,
)
from assets.shared.errors import InputError
from assets.shared.training_record import TRAINING_CONFIG_FILE, read_training_record
from assets.train.settings import TrainSettings
from assets.train.training import LOSS_HISTORY_FILE, VALIDATION_HISTORY_FILE, train_adapter
from resources.model_loading import load_causal_lm, load_tokenizer

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TWO_TURNS = [
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
]
# A ChatML-like template without generation markers that injects a default system prompt, as Qwen2.5's does.
CHATML_LIKE = (
    "{% if messages[0]['role'] != 'system' %}{{ '<|system|>\\nYou are helpful.<|end|>\\n' }}{% endif %}"
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '<|end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
# Renders a header that depends on the whole conversation, so shorter prefixes are not text prefixes.
NOT_PREFIX_CONSISTENT = "Turns: {{ messages | length }}\n" + CHATML_LIKE
# Rewrites assistant content and is not prefix-consistent, so no assistant turn can be located.
REWRITING = (
    "Turns: {{ messages | length }}\n"
    "{% for m in messages %}{{ m['role'] + ': ' + (m['content'] | upper) + '<|eos|>' }}{% endfor %}"
)


@pytest.fixture
def tokenizer(base_dir: Path) -> Any:
    return load_tokenizer(base_dir)


def _labelled_text(tokenizer: Any, feature: dict[str, list[int]]) -> str:
    return tokenizer.decode(
        [t for t, label in zip(feature["input_ids"], feature["labels"], strict=True) if label != -100]
    )


def _settings(**overrides: Any) -> TrainSettings:
    values = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["train"]
    # The base is the base_model asset's setting; training reads it from that asset's record.
    values.pop("base_model")
    values.update(batch_size=4, max_seq_length=64, learning_rate=0.01, epochs=1)
    values.update(overrides)
    return TrainSettings.from_mapping(values)


def _rows(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": str(i),
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."},
            ],
        }
        for i in range(start, start + count)
    ]


def test_labels_match_the_generation_markers_of_the_tiny_template(tokenizer: Any) -> None:
    feature = tokenize_conversation(tokenizer, TWO_TURNS, max_seq_length=256)
    marked = tokenizer.apply_chat_template(TWO_TURNS, return_assistant_tokens_mask=True, return_dict=True)
    assert feature["input_ids"] == marked["input_ids"]
    assert [int(label != IGNORE_INDEX) for label in feature["labels"]] == marked["assistant_masks"]
    assert feature["attention_mask"] == [1] * len(feature["input_ids"])


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (CHATML_LIKE, "Hello!<|end|>4<|end|>"),
        (NOT_PREFIX_CONSISTENT, "Hello!4"),
    ],
)
def test_labels_cover_assistant_turns_in_templates_without_markers(
    tokenizer: Any, template: str, expected: str
) -> None:
    tokenizer.chat_template = template
    feature = tokenize_conversation(tokenizer, TWO_TURNS, max_seq_length=256)
    assert _labelled_text(tokenizer, feature) == expected


def test_a_template_that_rewrites_answers_is_reported(tokenizer: Any) -> None:
    tokenizer.chat_template = REWRITING
    with pytest.raises(ChatTemplateError, match="assistant turn 1"):
        tokenize_conversation(tokenizer, TWO_TURNS, max_seq_length=256)


def test_truncation_and_rows_without_answer_tokens(tokenizer: Any) -> None:
    full = tokenize_conversation(tokenizer, TWO_TURNS, max_seq_length=256)
    cut = tokenize_conversation(tokenizer, TWO_TURNS, max_seq_length=10)
    assert cut["input_ids"] == full["input_ids"][:10] and cut["labels"] == [IGNORE_INDEX] * 10
    rows = [{"messages": TWO_TURNS}, {"messages": [{"role": "user", "content": "x " * 40}, *TWO_TURNS[1:2]]}]
    assert len(tokenize_rows(tokenizer, rows, max_seq_length=20)) == 1


@pytest.mark.parametrize(
    ("side", "ids", "mask", "labels"),
    [
        ("right", [[5, 6, 7], [8, 0, 0]], [[1, 1, 1], [1, 0, 0]], [[-100, 6, 7], [8, -100, -100]]),
        ("left", [[5, 6, 7], [0, 0, 8]], [[1, 1, 1], [0, 0, 1]], [[-100, 6, 7], [-100, -100, 8]]),
    ],
)
def test_pad_batch(side: str, ids: list, mask: list, labels: list) -> None:
    features = [
        {"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [-100, 6, 7]},
        {"input_ids": [8], "attention_mask": [1], "labels": [8]},
    ]
    batch = pad_batch(features, pad_token_id=0, padding_side=side)
    assert batch["input_ids"].tolist() == ids
    assert batch["attention_mask"].tolist() == mask
    assert batch["labels"].tolist() == labels


def test_split_last_answer() -> None:
    prompt, answer = split_last_answer([*TWO_TURNS, {"role": "user", "content": "thanks"}])
    assert prompt == TWO_TURNS[:3] and answer == "4"
    with pytest.raises(ChatTemplateError, match="no assistant turn"):
        split_last_answer(TWO_TURNS[:1])


def test_settings_from_params_yaml_are_valid_and_normalized() -> None:
    settings = _settings(target_modules=["q_proj", "v_proj"], quantization="none", method="lora")
    assert settings.target_modules == ("q_proj", "v_proj") and settings.quantization is None
    with pytest.raises(ValueError, match=r"unknown keys \['lr'\]"):
        TrainSettings.from_mapping({**dataclasses.asdict(settings), "lr": 0.1})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("quantization", "int8"),
        ("lora_r", 0),
        ("batch_size", 2.5),
        ("lora_dropout", 1.0),
        ("warmup_ratio", -0.1),
        ("learning_rate", 0.0),
        ("weight_decay", -1.0),
        ("max_steps", 0),
        ("target_modules", "everything"),
        ("target_modules", []),
    ],
)
def test_settings_name_the_wrong_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        _settings(**{field: value})


def _train(base_dir: Path, out_dir: Path, **overrides: Any) -> Any:
    model = load_causal_lm(base_dir, quantization="nf4", dtype="float32", device="cpu")
    return train_adapter(
        model,
        load_tokenizer(base_dir),
        _rows(16),
        _rows(4, 100),
        _settings(**overrides),
        out_dir,
        base_model_source="embedded",
    )


def test_train_adapter_learns_and_writes_a_reproducible_adapter(base_dir: Path, tmp_path: Path) -> None:
    from peft import PeftConfig

    result = _train(base_dir, tmp_path / "a", epochs=2)
    assert result.steps == 8 and [h["step"] for h in result.loss_history] == list(range(1, 9))
    first, last = result.loss_history[:3], result.loss_history[-3:]
    assert sum(h["loss"] for h in last) < sum(h["loss"] for h in first)
    assert result.eval_loss is not None and result.eval_loss > 0
    assert 0 < result.trainable_params < result.total_params
    assert (result.train_examples, result.validation_examples) == (16, 4)

    out = tmp_path / "a"
    assert {p.name for p in out.iterdir()} >= {
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        TRAINING_CONFIG_FILE,
        LOSS_HISTORY_FILE,
        VALIDATION_HISTORY_FILE,
    }
    assert PeftConfig.from_pretrained(out).r == 8
    record = json.loads((out / TRAINING_CONFIG_FILE).read_text())
    assert record["settings"]["quantization"] == "nf4" and record["steps"] == 8
    assert (record["method"], record["mergeable"]) == ("qlora", True)
    assert record["base_model"]["source"] == "embedded"
    assert read_training_record(out).quantization == "nf4" and read_training_record(out).max_seq_length == 64
    assert "transformers" in record["library_versions"]
    assert json.loads((out / LOSS_HISTORY_FILE).read_text()) == result.loss_history
    # What the registry's MLflow run charts beside the loss.
    assert {"learning_rate", "grad_norm", "num_input_tokens_seen"} <= set(result.loss_history[-1])
    assert [p.name for p in tmp_path.iterdir()] == ["a"], "scratch or staging directories were left behind"

    _train(base_dir, tmp_path / "b", epochs=2)
    for path in out.iterdir():
        assert (tmp_path / "b" / path.name).read_bytes() == path.read_bytes(), path.name


def test_train_adapter_without_usable_rows_writes_nothing(base_dir: Path, tmp_path: Path) -> None:
    model = load_causal_lm(base_dir, quantization="nf4", dtype="float32", device="cpu")
    with pytest.raises(ValueError, match="max_seq_length"):
        train_adapter(
            model,
            load_tokenizer(base_dir),
            _rows(3),
            [],
            _settings(max_seq_length=4),
            tmp_path / "a",
            base_model_source="embedded",
        )
    assert not (tmp_path / "a").exists()


def test_an_unknown_optimizer_is_refused_with_the_settings() -> None:
    # Checked when the settings are built (the preflight builds them before a run's first step).
    with pytest.raises(
        ValueError, match=r"section train\): optimizer 'sgdd' is not a transformers optimizer"
    ):
        _settings(optimizer="sgdd")


def test_full_precision_lora_reports_no_validation_loss_without_validation_rows(
    base_dir: Path, tmp_path: Path
) -> None:
    model = load_causal_lm(base_dir, quantization=None, dtype="float32", device="cpu")
    settings = _settings(method="lora", quantization=None, max_steps=2)
    result = train_adapter(
        model, load_tokenizer(base_dir), _rows(8), [], settings, tmp_path / "a", base_model_source="embedded"
    )
    assert result.steps == 2 and result.eval_loss is None and result.validation_examples == 0


def _never_loaded() -> Any:
    raise AssertionError("the base model was loaded although the rows could not be trained")


def test_rows_that_cannot_be_trained_fail_before_the_base_loads(tokenizer: Any, tmp_path: Path) -> None:
    """An empty train split, or a validation split none of whose rows fits max_seq_length, is named
    before the loader is called (for a 7B base that is minutes and gigabytes saved)."""
    settings = _settings(max_seq_length=8)
    long_rows = [
        {"messages": [{"role": "user", "content": "word " * 40}, {"role": "assistant", "content": "x " * 40}]}
    ]
    with pytest.raises(InputError, match=r"No training row .*train_split is not empty"):
        train_adapter(
            _never_loaded, tokenizer, [], [], settings, tmp_path / "a", base_model_source="embedded"
        )
    with pytest.raises(InputError, match=r"None of the 1 validation_split rows .*split.validation_fraction"):
        train_adapter(
            _never_loaded,
            tokenizer,
            _rows(4),
            long_rows,
            _settings(max_seq_length=24),
            tmp_path / "b",
            base_model_source="embedded",
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
