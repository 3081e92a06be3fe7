"""The shipped sample: generated deterministically, and holding what the pipeline demo needs to show."""

from __future__ import annotations

import datetime as dt
import difflib
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from assets.ingest.normalize import normalize_file
from assets.shared.text import conversation_text

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "examples.jsonl"
GENERATOR = ROOT / "data" / "sample" / "make_sample.py"
# The rows that are broken on purpose, by the reason ingestion must give.
EXPECTED_ERRORS = {
    "malformed_json": 1,
    "not_an_object": 1,
    "missing_field": 2,
    "wrong_type": 1,
    "bad_timestamp": 1,
    "oversize": 1,
    "bad_role": 1,
}


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return normalize_file(SAMPLE, max_chars=8000)


@pytest.fixture(scope="module")
def good(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row["error"] is None]


def test_generator_reproduces_the_committed_file_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "examples.jsonl"
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out)], check=True, capture_output=True)
    assert out.read_bytes() == SAMPLE.read_bytes(), (
        "run `python data/sample/make_sample.py` and commit the file"
    )


def test_enough_rows_spanning_six_months_with_more_later(rows: list[dict[str, Any]]) -> None:
    assert len(rows) >= 250
    times = [row["created_at"] for row in rows if row["created_at"] is not None]
    assert min(times) >= dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert max(times) <= dt.datetime(2025, 9, 1, tzinfo=dt.UTC)
    assert max(times) - min(times) >= dt.timedelta(days=183)
    months = Counter(t.month for t in times)
    assert sorted(months) == list(range(1, 9))
    assert sum(months[m] for m in (5, 6, 7, 8)) > 1.5 * sum(months[m] for m in (1, 2, 3, 4))
    assert times == sorted(times), "rows are in time order, like an export"


def test_intended_bad_rows_and_nothing_else(rows: list[dict[str, Any]]) -> None:
    reasons = Counter(row["error"].split(":", 1)[0] for row in rows if row["error"])
    assert dict(reasons) == EXPECTED_ERRORS


def test_exact_duplicates_have_different_ids(good: list[dict[str, Any]]) -> None:
    by_text: dict[str, list[str]] = {}
    for row in good:
        by_text.setdefault(conversation_text(row["messages"]), []).append(row["id"])
    repeated = [ids for ids in by_text.values() if len(ids) > 1]
    assert len(repeated) == 6 and all(len(set(ids)) == len(ids) == 2 for ids in repeated)


def test_near_duplicates_differ_slightly(good: list[dict[str, Any]]) -> None:
    # the generator edits the question of a copied row and keeps its answer
    by_answer: dict[str, set[str]] = {}
    for row in good:
        by_answer.setdefault(row["messages"][-1]["content"], set()).add(conversation_text(row["messages"]))
    near = [sorted(texts) for texts in by_answer.values() if len(texts) > 1]
    assert len(near) == 6
    for first, second in near:
        assert difflib.SequenceMatcher(None, first, second, autojunk=False).ratio() > 0.95


def test_variety_of_layouts_languages_and_conversations(good: list[dict[str, Any]]) -> None:
    raws = [row["raw"] for row in good]
    assert sum('"instruction"' in raw for raw in raws) > 100
    assert sum('"messages"' in raw for raw in raws) > 20
    assert sum('"conversations"' in raw for raw in raws) > 10
    assert sum('"created_at": 1' in raw for raw in raws) >= 5, "some rows use epoch timestamps"
    assert len({row["category"] for row in good}) >= 6
    languages = Counter(row["lang"] for row in good)
    assert languages["es"] >= 5 and languages["de"] >= 5 and languages["en"] > 250
    assert sum(len(row["messages"]) > 3 for row in good) >= 10
    assert sum(row["messages"][0]["role"] == "system" for row in good) >= 2
    assert sum(row["id"].startswith("row-") for row in good) >= 2, "a few rows come without ids"


def test_follow_up_conversations_share_a_group_and_extend_the_thread(good: list[dict[str, Any]]) -> None:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in good:
        if row["group_id"] is not None:
            groups.setdefault(row["group_id"], []).append(row)
    assert len(groups) >= 3
    for members in groups.values():
        first, follow_up = members
        assert first["created_at"] < follow_up["created_at"]
        assert follow_up["messages"][: len(first["messages"])] == first["messages"]
