"""Back-translation augmentation and the paraphrase filter."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from assets.augment.backtranslate import COUNT_KEYS, AugmentSettings, back_translate_rows
from assets.augment.paraphrase_filter import (
    ParaphraseFilterSettings,
    dice_similarity,
    judge_paraphrase,
)
from assets.shared.schema import example_features, to_dataset
from assets.shared.text import normalize_text

BOUNDS = ParaphraseFilterSettings(
    min_similarity=0.3, max_similarity=0.95, min_length_ratio=0.5, max_length_ratio=2.0
)
SETTINGS_FIELDS: dict[str, Any] = {
    "source_lang": "en",
    "pivot_lang": "de",
    "max_new_tokens": 16,
    "num_beams": 1,
    "batch_size": 4,
    "min_similarity": 0.3,
    "max_similarity": 0.95,
    "min_length_ratio": 0.5,
    "max_length_ratio": 2.0,
    "seed": 0,
}
SETTINGS = AugmentSettings(**SETTINGS_FIELDS)
CREATED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


# --- paraphrase filter -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "paraphrase", "expected"),
    [
        ("How can I reverse a list in Python?", "How do I reverse a list in Python?", None),
        ("How can I reverse a list in Python?", "", "empty"),
        ("How can I reverse a list in Python?", "   \n ", "empty"),
        ("", "anything", "empty"),
        ("How can I reverse a list?", "  how CAN i   reverse a list? ", "identical"),
        ("How can I reverse a list in Python?", "Reverse?", "length_ratio"),
        ("Hi there", "Hello there, my dear friend, how have you been?", "length_ratio"),
        ("How can I reverse a list in Python?", "Zebras quietly munch golden wheat.", "too_dissimilar"),
        (
            "Please explain how I can reverse a long list of numbers in Python.",
            "Please explain how I can reverse a long list of numbers in Python!",
            "too_similar",
        ),
    ],
)
def test_judge_paraphrase(source: str, paraphrase: str, expected: str | None) -> None:
    assert judge_paraphrase(source, paraphrase, BOUNDS) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("same text", "same text", 1.0),
        ("Same  TEXT", "same text", 1.0),
        ("abc", "xyz", 0.0),
        ("", "", 1.0),
    ],
)
def test_dice_similarity_extremes(a: str, b: str, expected: float) -> None:
    assert dice_similarity(a, b) == pytest.approx(expected)


def test_dice_similarity_is_symmetric_and_between_bounds() -> None:
    a, b = "the cat sat on the mat", "a cat sat on a mat"
    assert dice_similarity(a, b) == dice_similarity(b, a)
    assert 0.0 < dice_similarity(a, b) < 1.0


def test_normalize_folds_width_case_and_spaces() -> None:
    # Full-width letters, as pasted from East Asian input methods.
    assert normalize_text("  \uff28\uff45\uff4c\uff4c\uff4f\tWORLD \n") == "hello world"


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"min_similarity": -0.1}, "min_similarity"),
        ({"max_similarity": 1.5}, "max_similarity"),
        ({"min_similarity": 0.9, "max_similarity": 0.5}, "min_similarity"),
        ({"min_length_ratio": 0.0}, "min_length_ratio"),
        ({"max_length_ratio": -1.0}, "max_length_ratio"),
        ({"min_length_ratio": 3.0, "max_length_ratio": 2.0}, "min_length_ratio"),
    ],
)
def test_filter_settings_validation_names_the_field(override: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=f"ParaphraseFilterSettings.{field}"):
        dataclasses.replace(BOUNDS, **override)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"source_lang": ""}, "source_lang"),
        ({"pivot_lang": "en"}, "pivot_lang"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"num_beams": 1.5}, "num_beams"),
        ({"batch_size": True}, "batch_size"),
        ({"seed": -1}, "seed"),
        ({"max_similarity": 2.0}, "max_similarity"),
        ({"min_length_ratio": 5.0}, "min_length_ratio"),
    ],
)
def test_augment_settings_validation_names_the_field(override: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"AugmentSettings.{field}"):
        AugmentSettings(**{**SETTINGS_FIELDS, **override})


# --- back-translation with a fake translator ---------------------------------------------------------


class WordSwapTranslator:
    """Stands in for a translation model: swaps words by a fixed table and records its calls."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.calls: list[list[str]] = []

    def translate(
        self, texts: list[str], *, max_new_tokens: int, num_beams: int, batch_size: int
    ) -> list[str]:
        self.calls.append(list(texts))
        return [" ".join(self.table.get(word, word) for word in text.split(" ")) for text in texts]


# The backward direction turns "can" into "could" and "show" into "tell": a mild paraphrase.
SWAPS = {"can": "could", "show": "tell", "garbage": "xq zv wk pj"}


def _row(row_id: str, user: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": row_id,
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": user},
            {"role": "assistant", "content": "Sure, here it is."},
        ],
        "created_at": CREATED,
        "category": "coding",
        "lang": "en",
        "source": "sample",
        "augmented_from": None,
        "group_id": f"g-{row_id}",
    }
    row.update(extra)
    return row


def _run(rows: list[dict[str, Any]]) -> Any:
    return back_translate_rows(
        rows, forward=WordSwapTranslator({}), backward=WordSwapTranslator(SWAPS), settings=SETTINGS
    )


def test_kept_paraphrase_has_lineage_and_verbatim_other_turns() -> None:
    source = _row("r1", "How can I show the list of files in a folder?")
    result = _run([source])
    assert result.counts["kept"] == 1
    (row,) = result.rows
    assert row["id"] == "r1#bt-de"
    assert row["augmented_from"] == "r1"
    assert row["source"] == "back_translation:en->de"
    for column in ("created_at", "category", "lang", "group_id"):
        assert row[column] == source[column]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert row["messages"][0] == source["messages"][0]
    assert row["messages"][2] == source["messages"][2]
    assert row["messages"][1]["content"] == "How could I tell the list of files in a folder?"
    # The source row is not modified.
    assert source["messages"][1]["content"] == "How can I show the list of files in a folder?"


def test_rows_outside_the_source_language_or_already_augmented_are_skipped() -> None:
    rows = [
        _row("en", "How can I show the files?"),
        _row("null-lang", "How can I show the folders?", lang=None),
        _row("de", "Wie kann ich die Dateien zeigen?", lang="de"),
        _row("aug", "How can I show the tables?", augmented_from="x"),
        {**_row("no-user", "unused"), "messages": [{"role": "assistant", "content": "Hi."}]},
    ]
    result = _run(rows)
    assert [r["augmented_from"] for r in result.rows] == ["en", "null-lang"]
    assert result.rows[1]["lang"] is None
    assert result.counts["kept"] == 2
    assert result.counts["skipped_language"] == 1
    assert result.counts["skipped_augmented"] == 1
    assert result.counts["no_user_turn"] == 1


def test_drop_reasons_are_counted() -> None:
    rows = [
        _row("same", "Please summarize this paragraph."),  # no word in the swap table
        _row("bad", "garbage"),
        _row("ok", "Can you show me how?"),
    ]
    result = _run(rows)
    assert [r["id"] for r in result.rows] == ["ok#bt-de"]
    assert result.counts["identical"] == 1
    assert result.counts["too_dissimilar"] == 1
    assert set(result.counts) == set(COUNT_KEYS)
    assert sum(result.counts.values()) == len(rows)


def test_a_row_is_kept_only_when_every_user_turn_passes() -> None:
    messages = [
        {"role": "user", "content": "How can I show my files?"},
        {"role": "assistant", "content": "Use ls."},
        {"role": "user", "content": "Thanks, that is all."},
    ]
    result = _run([{**_row("multi", "unused"), "messages": messages}])
    assert result.rows == []
    assert result.counts["identical"] == 1


def test_user_turns_are_batched_and_translated_once_each() -> None:
    forward, backward = WordSwapTranslator({}), WordSwapTranslator(SWAPS)
    rows = [_row("a", "How can I show it?"), _row("b", "How can I show it?"), _row("c", "Can you show me?")]
    result = back_translate_rows(rows, forward=forward, backward=backward, settings=SETTINGS)
    assert forward.calls == [["How can I show it?", "Can you show me?"]]
    assert len(backward.calls) == 1
    assert [r["id"] for r in result.rows] == ["a#bt-de", "b#bt-de", "c#bt-de"]


def test_no_eligible_rows_calls_no_translator() -> None:
    forward = WordSwapTranslator({})
    result = back_translate_rows(
        [_row("de", "Hallo", lang="de")], forward=forward, backward=forward, settings=SETTINGS
    )
    assert result.rows == []
    assert forward.calls == []


def test_translator_returning_the_wrong_number_of_texts_is_an_error() -> None:
    class Truncating(WordSwapTranslator):
        def translate(self, texts: list[str], **options: int) -> list[str]:
            return super().translate(texts, **options)[:-1]

    with pytest.raises(RuntimeError, match="one output per input"):
        back_translate_rows(
            [_row("a", "How can I show it?")],
            forward=Truncating({}),
            backward=WordSwapTranslator({}),
            settings=SETTINGS,
        )


def test_new_rows_fit_the_example_schema() -> None:
    result = _run([_row("r1", "How can I show the files?"), _row("r2", "Can you show more?", category=None)])
    dataset = to_dataset(result.rows, example_features())
    assert dataset.num_rows == 2
    assert dataset[0]["augmented_from"] == "r1"


# --- end to end with the embedded tiny Marian pair ---------------------------------------------------


@pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")
def test_back_translation_through_the_embedded_marian_pair(tmp_path: Path) -> None:
    from resources.translators import load_translator, resolve_translator

    forward = load_translator(
        resolve_translator("embedded", direction=("en", "de"), embedded_root=tmp_path, seed=0)
    )
    backward = load_translator(
        resolve_translator("embedded", direction=("de", "en"), embedded_root=tmp_path, seed=0)
    )
    rows = [
        _row("a", "How do I reverse a list in Python?"),
        _row("b", "What is the capital city of Canada?", lang=None),
        _row("c", "Explain why the sky looks blue during the day."),
        _row("d", "Erkläre den Himmel.", lang="de"),
    ]
    first = back_translate_rows(rows, forward=forward, backward=backward, settings=SETTINGS)
    second = back_translate_rows(rows, forward=forward, backward=backward, settings=SETTINGS)
    assert first == second
    assert sum(first.counts.values()) == len(rows)
    assert first.counts["skipped_language"] == 1
    assert first.counts["kept"] == len(first.rows)
    sources = {row["id"]: row for row in rows}
    for row in first.rows:
        original = sources[row["augmented_from"]]
        for before, after in zip(original["messages"], row["messages"], strict=True):
            assert isinstance(after["content"], str)
            if before["role"] == "user":
                assert judge_paraphrase(before["content"], after["content"], SETTINGS) is None
            else:
                assert after == before
