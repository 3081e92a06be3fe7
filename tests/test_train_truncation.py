"""Answers cut by train.max_seq_length (assets/train/truncation.py): trimmed out of the loss or
dropped, never trained as if complete, and counted."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from assets.shared.chat import IGNORE_INDEX, tokenize_conversation
from assets.train.truncation import fit_rows
from resources.model_loading import load_tokenizer, prepare_base_model

TWO_ANSWERS = [
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! How can I help you today?"},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "It is 4, as anyone can check."},
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("base") / "base"
    prepare_base_model("embedded", out, seed=0)
    return load_tokenizer(Path(out))


def _runs(labels: list[int]) -> list[tuple[int, int]]:
    """(start, end) of each run of trained positions."""
    runs, start = [], None
    for position, label in enumerate([*labels, IGNORE_INDEX]):
        if label != IGNORE_INDEX and start is None:
            start = position
        elif label == IGNORE_INDEX and start is not None:
            runs.append((start, position))
            start = None
    return runs


def test_rows_within_the_limit_are_unchanged(tokenizer: Any) -> None:
    full = tokenize_conversation(tokenizer, TWO_ANSWERS, max_seq_length=sys.maxsize)
    features, counts = fit_rows(tokenizer, [{"messages": TWO_ANSWERS}], max_seq_length=1000, rule="trim")
    assert features == [full] and (counts.rows, counts.longer_than_limit, counts.answers_cut) == (1, 0, 0)


@pytest.mark.parametrize("rule", ["trim", "drop"])
def test_a_cut_answer_is_trimmed_out_of_the_loss_or_its_row_dropped(tokenizer: Any, rule: str) -> None:
    full = tokenize_conversation(tokenizer, TWO_ANSWERS, max_seq_length=sys.maxsize)
    (first_start, first_end), (second_start, _second_end) = _runs(full["labels"])
    limit = second_start + 2  # two tokens into the second answer
    features, counts = fit_rows(tokenizer, [{"messages": TWO_ANSWERS}], max_seq_length=limit, rule=rule)
    assert (counts.longer_than_limit, counts.answers_cut) == (1, 1)
    if rule == "drop":
        assert features == [] and counts.dropped_cut_answer == 1
        return
    [feature] = features
    assert feature["input_ids"] == full["input_ids"][:limit]
    # The first answer still trains; not one token of the cut one does.
    assert _runs(feature["labels"]) == [(first_start, first_end)]


def test_an_answer_ending_at_the_limit_is_complete(tokenizer: Any) -> None:
    full = tokenize_conversation(tokenizer, TWO_ANSWERS, max_seq_length=sys.maxsize)
    (_, first_end), _ = _runs(full["labels"])
    features, counts = fit_rows(tokenizer, [{"messages": TWO_ANSWERS}], max_seq_length=first_end, rule="drop")
    assert counts.answers_cut == 0 and len(features) == 1
    assert features[0]["labels"] == full["labels"][:first_end]


def test_a_row_whose_only_answer_is_cut_is_dropped_and_counted(tokenizer: Any) -> None:
    one = TWO_ANSWERS[:2]
    full = tokenize_conversation(tokenizer, one, max_seq_length=sys.maxsize)
    [(start, _end)] = _runs(full["labels"])
    features, counts = fit_rows(tokenizer, [{"messages": one}], max_seq_length=start + 1, rule="trim")
    assert features == [] and (counts.answers_cut, counts.dropped_no_answer_token) == (1, 1)
    with pytest.raises(ValueError, match=r"train\.truncation must be one of \('trim', 'drop'\)"):
        fit_rows(tokenizer, [], max_seq_length=8, rule="cut")
