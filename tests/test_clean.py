"""Tests for the cleaning stage: filters, exact, prefix and near dedup, embeddings, cleanlab, pipeline."""

from __future__ import annotations

import dataclasses
import itertools
import re
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from assets.clean.dedup import find_exact_duplicates, find_prefix_duplicates, normalize_text
from assets.clean.embed import embed_texts, make_embedder
from assets.clean.filters import row_filters, validate_row
from assets.clean.pipeline import CleanResult, CleanSettings, clean_rows
from assets.clean.quality import cosine_knn_graph
from assets.shared.schema import EXAMPLE_COLUMNS, PROVENANCE_COLUMNS, REJECTION_COLUMNS
from tests.conftest import make_row

START = datetime(2025, 1, 1, tzinfo=UTC)

SETTINGS = CleanSettings(
    min_response_chars=2,
    near_dup_threshold=0.8,
    minhash_permutations=128,
    shingle_size=5,
    cleanlab_enabled=False,
    embedder="embedded",
    embedding_dim=16,
    outlier_score_threshold=0.02,
    cleanlab_near_duplicates=True,
)


# Two topics with one distinct pair of filler phrases per row: all rows are alike in embedding space but
# no two are the same, and their word 5-gram Jaccard stays below 0.95.
TOPICS = (
    (
        "how do I boil pasta so it stays firm and does not stick together in the pot",
        "Boil it in plenty of salted water, stir it in the first minute and taste it a minute early.",
    ),
    (
        "how do I reverse a list in Python without changing the original list object",
        "Use reversed() for an iterator or the slice [::-1] for a new reversed copy of the list.",
    ),
)
FILLERS = list(
    itertools.combinations(
        [
            *("please", "quickly", "today", "for my class", "in simple words", "step by step"),
            *("briefly", "again", "for a friend", "thanks", "at home", "for work"),
        ],
        2,
    )
)


def synthetic_rows(count: int) -> list[dict[str, Any]]:
    rows = []
    for index in range(count):
        question, answer = TOPICS[index % 2]
        first, second = FILLERS[index]
        rows.append(make_row(f"r{index}", f"{first} {second} {question}?", answer, line=index + 1))
    return rows


# ---------------------------------------------------------------------------------------------- filters


def _with(**changes: Any) -> dict[str, Any]:
    row = make_row("a", "What is two plus two?", "Four.")
    row.update(changes)
    return row


def _turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in pairs]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (_with(), None),
        (_with(messages=_turns(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello"))), None),
        (_with(messages=_turns(("user", "Tab\tand\nnewline"), ("assistant", "fine"))), None),
        (_with(id=""), "missing_id"),
        (_with(id=None), "missing_id"),
        (_with(created_at=None), "missing_created_at"),
        (_with(created_at=datetime(2025, 1, 1)), "naive_created_at"),
        (_with(messages=None), "missing_messages"),
        (_with(messages=[]), "missing_messages"),
        (_with(messages=["hello"]), "malformed_message"),
        (_with(messages=[{"role": "user", "content": 3}]), "malformed_message"),
        (_with(messages=_turns(("human", "Hi"), ("assistant", "Hello"))), "invalid_role"),
        (_with(messages=_turns(("user", "Hi"), ("system", "x"), ("assistant", "Hello"))), "misplaced_system"),
        (_with(messages=_turns(("system", "Be brief."), ("assistant", "Hello"))), "missing_user_turn"),
        (
            _with(messages=_turns(("user", "Hi"), ("assistant", "Hello"), ("user", "And?"))),
            "missing_assistant_turn",
        ),
        (_with(messages=_turns(("user", "   "), ("assistant", "Hello"))), "empty_content"),
        (_with(messages=_turns(("user", "Hi\x00there"), ("assistant", "Hello"))), "control_characters"),
        (_with(messages=_turns(("user", "Hi"), ("assistant", "Hel\x7flo"))), "control_characters"),
        (_with(messages=_turns(("user", "Caf\ufffd"), ("assistant", "Hello"))), "replacement_character"),
        (_with(messages=_turns(("user", "Hi"), ("assistant", " A "))), "short_response"),
        (_with(messages=_turns(("user", "Hi"), ("assistant", "Ok"))), None),
    ],
)
def test_filters(row: dict[str, Any], reason: str | None) -> None:
    verdict = validate_row(row, row_filters(min_response_chars=2))
    assert (verdict.reason if verdict else None) == reason
    if verdict is not None:
        assert verdict.detail


def test_short_response_detail_names_the_setting() -> None:
    row = _with(messages=_turns(("user", "Hi"), ("assistant", "A")))
    verdict = validate_row(row, row_filters(min_response_chars=5))
    assert verdict is not None
    assert "clean.min_response_chars is 5" in verdict.detail


# ---------------------------------------------------------------------------------------------- dedup


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello   World", "hello world"),
        ("  tabs\tand\nnewlines ", "tabs and newlines"),
        ("\uff26\uff35\uff2c\uff2c width", "full width"),
        ("Straße", "strasse"),
        ("ﬁne", "fine"),
    ],
)
def test_normalize_text(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


def test_exact_duplicates_map_to_first_occurrence() -> None:
    texts = ["Hello world", "other", "HELLO   world", "hello world", "Other "]
    assert find_exact_duplicates(texts) == {2: 0, 3: 0, 4: 1}


def _conversation(*texts: str) -> list[dict[str, str]]:
    """Alternating user and assistant turns, starting with the user."""
    return [{"role": ("user", "assistant")[n % 2], "content": text} for n, text in enumerate(texts)]


@pytest.mark.parametrize(
    ("conversations", "expected"),
    [
        ([_conversation("q", "a"), _conversation("q", "a", "q2", "a2")], {0: 1}),
        # the longer conversation may come first; file order does not matter
        ([_conversation("q", "a", "q2", "a2"), _conversation("q", "a")], {1: 0}),
        # compared after the exact-dedup normalization
        (
            [_conversation("  What IS it?", "A  cat."), _conversation("what is it?", "a cat.", "q2", "a2")],
            {0: 1},
        ),
        # the longest container wins, and every shorter prefix points at it
        (
            [
                _conversation("q", "a"),
                _conversation("q", "a", "q2", "a2"),
                _conversation("q", "a", "q2", "a2", "q3", "a3"),
            ],
            {0: 2, 1: 2},
        ),
        # two containers of the same length: the earliest
        (
            [
                _conversation("q", "a", "q2", "a2"),
                _conversation("q", "a", "q3", "a3"),
                _conversation("q", "a"),
            ],
            {2: 0},
        ),
        # message by message, not text: "yes" is not the message "yes and more"
        ([_conversation("hi", "yes"), _conversation("hi", "yes and more", "q2", "a2")], {}),
        # a prefix must end at an assistant turn
        ([_conversation("q", "a", "q2"), _conversation("q", "a", "q2", "a2")], {}),
        # roles count: the same words from the other speaker are another conversation
        ([[{"role": "assistant", "content": "q"}], _conversation("q", "a")], {}),
        # identical conversations are exact duplicates, not prefixes
        ([_conversation("q", "a"), _conversation("q", "a")], {}),
        ([_conversation("q", "a"), _conversation("other", "a", "q2", "a2")], {}),
        ([[], _conversation("q", "a")], {}),
        ([], {}),
    ],
)
def test_prefix_duplicates(conversations: list[list[dict[str, str]]], expected: dict[int, int]) -> None:
    assert find_prefix_duplicates(conversations) == expected


# ---------------------------------------------------------------------------------------------- embed


def test_embed_texts_is_deterministic_and_unit_length() -> None:
    texts = [f"text number {i} about {topic}" for i, topic in enumerate(["cats", "dogs", "cars"] * 10)]
    first = embed_texts(texts, dim=8, seed=0)
    assert first.shape == (30, 8)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0)
    assert np.array_equal(first, embed_texts(texts, dim=8, seed=0))


@pytest.mark.parametrize("count", [1, 2, 3])
def test_embed_texts_handles_tiny_inputs(count: int) -> None:
    embeddings = embed_texts([f"short text {i}" for i in range(count)], dim=64, seed=0)
    assert embeddings.shape[0] == count
    assert 1 <= embeddings.shape[1] <= 64


def test_unknown_embedder_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"clean\.embedder"):
        make_embedder("sentence-transformers/all-MiniLM-L6-v2", dim=8, seed=0)


# ---------------------------------------------------------------------------------------------- quality


def test_cosine_knn_graph_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(30, 5))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    graph = cosine_knn_graph(vectors, k=4)
    distances = 1 - vectors @ vectors.T
    np.fill_diagonal(distances, np.inf)
    expected = np.argsort(distances, axis=1, kind="stable")[:, :4]
    assert np.array_equal(graph.indices.reshape(30, 4), expected)
    assert np.allclose(graph.data.reshape(30, 4), np.take_along_axis(distances, expected, axis=1))


# ---------------------------------------------------------------------------------------------- pipeline


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_response_chars", -1),
        ("min_response_chars", True),
        ("near_dup_threshold", 0.0),
        ("near_dup_threshold", 1.5),
        ("minhash_permutations", 0),
        ("shingle_size", 0),
        ("embedding_dim", 0),
        ("outlier_score_threshold", 2),
        ("embedder", "bert"),
        ("cleanlab_enabled", "yes"),
        ("cleanlab_drop_outliers", "no"),
        ("cleanlab_near_dup_similarity", 0.0),
        ("cleanlab_near_dup_similarity", 1.5),
    ],
)
def test_settings_name_the_wrong_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=re.escape(f"clean.{field}")):
        dataclasses.replace(SETTINGS, **{field: value})


def _check_accounting(rows: list[dict[str, Any]], result: CleanResult) -> None:
    assert len(result.kept) + len(result.rejected) == len(rows)
    kept_ids = {row["id"] for row in result.kept}
    rejected_ids = {row["id"] for row in result.rejected}
    assert not kept_ids & rejected_ids
    assert kept_ids | rejected_ids == {row["id"] for row in rows}
    assert all(list(row) == list(EXAMPLE_COLUMNS) for row in result.kept)
    rejected_columns = list(EXAMPLE_COLUMNS + PROVENANCE_COLUMNS + REJECTION_COLUMNS)
    assert all(list(row) == rejected_columns for row in result.rejected)
    assert result.counts["input"] == len(rows) and result.counts["kept"] == len(result.kept)


def test_clean_rows_every_stage() -> None:
    long_answer = "Paris is the capital and largest city of France, on the river Seine in the north."
    rows = [
        make_row("ok1", "What is the capital of France?", long_answer, line=1),
        make_row("bad-json", "", "", line=2, messages=None, error="malformed_json: line 2: Expecting value"),
        make_row("short", "Say yes", "y", line=3),
        make_row("dup-exact", "what is the  CAPITAL of France?", long_answer, line=4),
        make_row(
            "ok2", "Name three primary colours.", "Red, yellow and blue are the traditional ones.", line=5
        ),
        make_row(
            "dup-near", "What is the capital of France?", long_answer.replace("north.", "north!!"), line=6
        ),
    ]
    result = clean_rows(rows, SETTINGS)
    _check_accounting(rows, result)
    assert [row["id"] for row in result.kept] == ["ok1", "ok2"]
    rejected = {row["source_line"]: row for row in result.rejected}
    assert list(rejected) == [2, 3, 4, 6]
    assert (rejected[2]["stage"], rejected[2]["reason"]) == ("ingest", "malformed_json")
    assert (rejected[3]["stage"], rejected[3]["reason"]) == ("validate", "short_response")
    assert (rejected[4]["stage"], rejected[4]["reason"], rejected[4]["duplicate_of"]) == (
        "dedup_exact",
        "duplicate_exact",
        "ok1",
    )
    assert (rejected[6]["stage"], rejected[6]["reason"], rejected[6]["duplicate_of"]) == (
        "dedup_near",
        "near_duplicate",
        "ok1",
    )
    for row in result.rejected:
        assert "data/raw.jsonl line" in row["detail"] and repr(row["id"]) in row["detail"]
    assert "Jaccard" in rejected[6]["detail"]
    assert result.counts["duplicate_exact"] == 1 and result.counts["cleanlab_skipped"] == 1
    assert result.notes == ["cleanlab pass skipped: clean.cleanlab_enabled is false"]


LONG_PROMPT = "Explain how a hash map resolves collisions and what that means for the cost of a lookup"
ANSWER = (
    "Two keys can land in the same bucket, so each bucket holds a short list or the map probes the next "
    "free slot; a lookup hashes the key, goes to its bucket and compares keys there, which stays cheap "
    "while the load factor is kept low"
)


def _chat(row_id: str, line: int, group: str | None, *texts: str) -> dict[str, Any]:
    row = make_row(row_id, texts[0], texts[1], line=line, group_id=group)
    row["messages"] = _conversation(*texts)
    return row


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            [
                _chat("short", 1, None, "Hi there", "Hello, how can I help?"),
                _chat("long", 2, None, "Hi there", "Hello, how can I help?", "What is 2 + 2?", "It is 4."),
            ],
            {"short": ("dedup_prefix", "prefix_of_longer", "long")},
        ),
        # across groups too, and whichever comes first in the file; normalized like exact duplicates
        (
            [
                _chat("long", 1, "t1", "Hi there", "Hello, how can I help?", "What is 2 + 2?", "It is 4."),
                _chat("short", 2, "t2", "hi  THERE", "Hello, how can I help?"),
            ],
            {"short": ("dedup_prefix", "prefix_of_longer", "long")},
        ),
        # inside a tree every prefix points at the longest conversation
        (
            [
                _chat("a1", 1, "t", "Hi there", "Hello!"),
                _chat("a2", 2, "t", "Hi there", "Hello!", "What is 2 + 2?", "4."),
                _chat("a3", 3, "t", "Hi there", "Hello!", "What is 2 + 2?", "4.", "And 3 + 3?", "6."),
                _chat("b2", 4, "t", "Hi there", "Hello!", "What is 5 + 5?", "10."),
            ],
            {
                "a1": ("dedup_prefix", "prefix_of_longer", "a3"),
                "a2": ("dedup_prefix", "prefix_of_longer", "a3"),
            },
        ),
        # sibling answers to one prompt in one tree are alternatives, kept however alike
        (
            [
                _chat("sib1", 1, "t", LONG_PROMPT, ANSWER + "."),
                _chat("sib2", 2, "t", LONG_PROMPT, ANSWER + " enough."),
            ],
            {},
        ),
        # the same pair in two groups, or in none, is a near duplicate
        (
            [
                _chat("sib1", 1, "t", LONG_PROMPT, ANSWER + "."),
                _chat("sib2", 2, "u", LONG_PROMPT, ANSWER + " enough."),
            ],
            {"sib2": ("dedup_near", "near_duplicate", "sib1")},
        ),
        (
            [
                _chat("sib1", 1, None, LONG_PROMPT, ANSWER + "."),
                _chat("sib2", 2, None, LONG_PROMPT, ANSWER + " enough."),
            ],
            {"sib2": ("dedup_near", "near_duplicate", "sib1")},
        ),
        # an exact copy is a duplicate even within its group
        (
            [_chat("orig", 1, "t", LONG_PROMPT, ANSWER), _chat("copy", 2, "t", LONG_PROMPT, ANSWER)],
            {"copy": ("dedup_exact", "duplicate_exact", "orig")},
        ),
    ],
    ids=[
        "prefix",
        "prefix-across-groups",
        "prefixes-in-a-tree",
        "siblings-in-a-group",
        "near-across-groups",
        "near-without-groups",
        "exact-in-a-group",
    ],
)
def test_clean_rows_prefixes_groups_and_duplicates(
    rows: list[dict[str, Any]], expected: dict[str, tuple[str, str, str]]
) -> None:
    result = clean_rows(rows, SETTINGS)
    _check_accounting(rows, result)
    found = {row["id"]: (row["stage"], row["reason"], row["duplicate_of"]) for row in result.rejected}
    assert found == expected
    by_id = {row["id"]: row for row in rows}
    for row in result.rejected:
        if row["reason"] == "prefix_of_longer":
            longer = by_id[row["duplicate_of"]]
            assert f"first of the {len(longer['messages'])} of row {longer['id']!r}" in row["detail"]
    assert result.counts.get("prefix_of_longer", 0) == sum(
        reason == "prefix_of_longer" for _, reason, _ in expected.values()
    )


def test_clean_rows_rejects_a_reused_id() -> None:
    rows = [
        make_row("same", "What is the boiling point of water?", "100 degrees Celsius at sea level.", line=1),
        make_row("same", "Name a prime number.", "Seven is a prime number.", line=2),
    ]
    result = clean_rows(rows, SETTINGS)
    assert [row["source_line"] for row in result.rejected] == [2]
    assert (result.rejected[0]["reason"], result.rejected[0]["duplicate_of"]) == ("duplicate_id", "same")
    assert "line 1" in result.rejected[0]["detail"]


@pytest.mark.parametrize("drop_outliers", [False, True])
def test_clean_rows_with_cleanlab_is_deterministic(drop_outliers: bool) -> None:
    rows = synthetic_rows(40)
    rows.append(make_row("odd", "qzx vbn", "0x7f 0x3e ~~ ^^ zzzz", line=41))
    first, second = FILLERS[7]
    question, answer = TOPICS[1]
    rows.append(make_row("swapped", f"{second} {first} {question}?", answer, line=42))
    # Rows share long templates; raise the MinHash threshold so that the cleanlab pass is what is tested.
    settings = dataclasses.replace(
        SETTINGS, cleanlab_enabled=True, near_dup_threshold=0.95, cleanlab_drop_outliers=drop_outliers
    )
    result = clean_rows(rows, settings)
    _check_accounting(rows, result)
    reasons = {row["id"]: (row["stage"], row["reason"], row["duplicate_of"]) for row in result.rejected}
    # The outlier is always found; it is dropped only when clean.cleanlab_drop_outliers says so (it was
    # dropped whatever the setting before: outliers are reported by default now).
    expected = {"swapped": ("cleanlab", "cleanlab_near_duplicate", "r7")}
    if drop_outliers:
        expected["odd"] = ("cleanlab", "cleanlab_outlier", None)
        assert "outlier score" in result.rejected[0]["detail"]
    else:
        assert any("1 outliers" in note and "'odd'" in note for note in result.notes), result.notes
    assert reasons == expected
    detail = next(row["detail"] for row in result.rejected if row["id"] == "swapped")
    assert "cosine similarity 1.000 and 1.000 with row 'r7'" in detail and "cluster 'r7' (2 rows)" in detail
    assert [score["id"] for score in result.quality_scores] == [row["id"] for row in rows]
    assert result.counts["cleanlab_outliers"] == 1 and "cleanlab_skipped" not in result.counts
    again = clean_rows(rows, settings)
    assert again == result


def test_clean_rows_cleanlab_keeps_a_group_together() -> None:
    rows = synthetic_rows(40)
    first, second = FILLERS[7]
    question, answer = TOPICS[1]
    rows.append(make_row("swapped", f"{second} {first} {question}?", answer, line=41))
    rows[7]["group_id"] = rows[-1]["group_id"] = "thread"
    settings = dataclasses.replace(SETTINGS, cleanlab_enabled=True, near_dup_threshold=0.95)
    result = clean_rows(rows, settings)
    _check_accounting(rows, result)
    assert result.rejected == []


def test_clean_rows_skips_cleanlab_on_tiny_data() -> None:
    rows = synthetic_rows(5)
    result = clean_rows(rows, dataclasses.replace(SETTINGS, cleanlab_enabled=True, near_dup_threshold=0.95))
    _check_accounting(rows, result)
    assert len(result.kept) == 5
    assert result.counts["cleanlab_skipped"] == 1
    assert "needs at least" in result.notes[0]


def test_clean_rows_on_empty_input() -> None:
    result = clean_rows([], dataclasses.replace(SETTINGS, cleanlab_enabled=True))
    assert (result.kept, result.rejected) == ([], [])
    assert result.counts == {"input": 0, "kept": 0, "cleanlab_skipped": 1}
