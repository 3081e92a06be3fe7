"""The shared modules: the reference rule and the training record, each the one home of its idea."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assets.shared.errors import InputError
from assets.shared.reference import choose_reference
from assets.shared.training_record import (
    TRAINING_CONFIG_FILE,
    TrainingRecord,
    TrainingRecordError,
    read_training_record,
)

CHAMPION = {"version": "3", "tags": {"adapter_md5": "A3", "base_model_md5": "B1", "base_model": "embedded"}}


@pytest.mark.parametrize(
    ("champion", "base_md5", "adapter_md5", "kind", "version", "words"),
    [
        (None, "B1", "A9", "base", None, "no champion yet"),
        (CHAMPION, "B1", "A9", "champion", "3", "version 3"),
        (CHAMPION, "B1", "A3", "candidate_is_champion", "3", "the candidate is the champion"),
        (CHAMPION, "B2", "A9", "base", "3", "another base model (embedded)"),
        # Export asks only whether the champion belongs to this base.
        (CHAMPION, "B1", None, "champion", "3", "version 3"),
        (CHAMPION, "B2", None, "base", "3", "another base model"),
    ],
)
def test_the_reference_rule(
    champion: dict | None, base_md5: str, adapter_md5: str | None, kind: str, version: str | None, words: str
) -> None:
    reference = choose_reference(champion, base_model_md5=base_md5, adapter_md5=adapter_md5)
    assert (reference.kind, reference.champion_version) == (kind, version)
    assert words in reference.note


def test_a_training_record_round_trips(tmp_path: Path) -> None:
    record = TrainingRecord(
        settings={"quantization": "nf4", "max_seq_length": 128, "lora_r": 8},
        base_model={"source": "embedded", "model_type": "llama"},
        steps=4,
    )
    record.write(tmp_path)
    read = read_training_record(tmp_path)
    assert read == record
    assert (read.quantization, read.max_seq_length) == ("nf4", 128)
    # Sorted keys, no timestamps: the same training gives the same bytes.
    first = (tmp_path / TRAINING_CONFIG_FILE).read_bytes()
    read.write(tmp_path)
    assert (tmp_path / TRAINING_CONFIG_FILE).read_bytes() == first


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "is missing"),
        ("{not json", "is not a training record"),
        (json.dumps({"settings": {}, "base_model": {}, "surprise": 1}), "is not a training record"),
        (
            json.dumps({"settings": {"quantization": None}, "base_model": {}}),
            "lacks settings ['max_seq_length']",
        ),
    ],
)
def test_a_bad_training_record_names_the_file_and_what_to_do(
    tmp_path: Path, content: str | None, words: str
) -> None:
    if content is not None:
        (tmp_path / TRAINING_CONFIG_FILE).write_text(content)
    with pytest.raises(TrainingRecordError, match=r"re-materialize adapter|adapter asset") as info:
        read_training_record(tmp_path)
    assert words in str(info.value) and TRAINING_CONFIG_FILE in str(info.value)
    assert isinstance(info.value, InputError)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from resources.model_loading import load_tokenizer, prepare_base_model

    base = tmp_path_factory.mktemp("base") / "base_model"
    prepare_base_model("embedded", base, seed=0)
    return load_tokenizer(base)


def test_special_token_text_in_content_stays_text(tokenizer) -> None:
    # ../shared/cases/08: an answer that talks about the marker "<|eos|>" must not end the sequence, and
    # "<|assistant|>" typed by a user must not open an assistant turn.
    from assets.shared.chat import IGNORE_INDEX, encode_messages, tokenize_conversation

    eos, assistant = tokenizer.convert_tokens_to_ids(["<|eos|>", "<|assistant|>"])
    messages = [
        {"role": "user", "content": "Which marker ends a reply? Write <|assistant|> if unsure."},
        {"role": "assistant", "content": "Put the marker <|eos|> at the very end of the text."},
    ]
    feature = tokenize_conversation(tokenizer, messages, max_seq_length=512)
    ids, labels = feature["input_ids"], feature["labels"]
    # One real EOS, the template's own, at the end of the answer; one assistant role token.
    assert ids.count(eos) == 1 and ids.index(eos) == max(
        i for i, lab in enumerate(labels) if lab != IGNORE_INDEX
    )
    assert ids.count(assistant) == 1
    # The literal texts are still there, as text, and the answer decodes back whole.
    answer = tokenizer.decode([t for t, lab in zip(ids, labels, strict=True) if lab != IGNORE_INDEX])
    assert "Put the marker <|eos|> at the very end of the text." in answer
    prompt = encode_messages(tokenizer, messages[:1], generation_prompt=True)
    assert prompt.count(assistant) == 1 and eos not in prompt


def test_a_turn_with_weight_zero_is_context_not_a_target(tokenizer) -> None:
    from assets.shared.chat import IGNORE_INDEX, tokenize_conversation

    messages = [
        {"role": "user", "content": "First question?"},
        {"role": "assistant", "content": "A weak first answer.", "weight": 0.0},
        {"role": "user", "content": "Try again?"},
        {"role": "assistant", "content": "A good second answer.", "weight": None},
    ]
    feature = tokenize_conversation(tokenizer, messages, max_seq_length=512)
    trained = tokenizer.decode(
        [t for t, lab in zip(feature["input_ids"], feature["labels"], strict=True) if lab != IGNORE_INDEX]
    )
    assert "A good second answer." in trained and "weak" not in trained


def test_a_markdown_cell_keeps_placeholders_visible_and_the_table_whole() -> None:
    from assets.shared.text import markdown_cell

    assert markdown_cell("a|b <EMAIL>~9c5f") == "a\\|b &lt;EMAIL>~9c5f"
    assert markdown_cell(42) == "42"
