"""Bad input at the asset level: a clear failure naming the file, and the last good output kept."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from assets.stages import ARTIFACTS
from resources.storage import StorageResource
from tests.conftest import materialize_raw

GOOD_ROW = {
    "id": "a1",
    "instruction": "Name a primary colour.",
    "output": "Red is a primary colour.",
    "created_at": "2025-03-01T10:00:00Z",
}


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures, "the run should have failed"
    return failures[0].event_specific_data.error.message


def test_bad_rows_are_kept_with_their_error(tmp_path: Path) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text(
        json.dumps(GOOD_ROW)
        + "\n{not json\n[1, 2]\n"
        + json.dumps({**GOOD_ROW, "id": "a2", "created_at": "soon"})
        + "\n"
    )
    result = materialize_raw(tmp_path, raw)
    assert result.success
    loaded = StorageResource(root=str(tmp_path)).store(ARTIFACTS).read_dataset("raw_examples")
    assert len(loaded) == 4
    errors = [e.split(":")[0] if e else None for e in loaded["error"]]
    assert errors == [None, "malformed_json", "not_an_object", "bad_timestamp"]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.jsonl", None, "missing.jsonl"),
        ("data.txt", "hello", "unsupported"),
        ("broken.jsonl", "{oops\n[]\n", "no valid row"),
    ],
)
def test_unusable_file_fails_clearly_and_keeps_the_last_good_version(
    tmp_path: Path, name: str, content: str | None, expected: str
) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(GOOD_ROW) + "\n")
    assert materialize_raw(tmp_path, good).success
    store = StorageResource(root=str(tmp_path)).store(ARTIFACTS)
    before = store.md5("raw_examples")

    bad = tmp_path / name
    if content is not None:
        bad.write_text(content)
    result = materialize_raw(tmp_path, bad)
    assert not result.success
    message = failure_message(result)
    assert name in message and expected in message.lower(), message
    assert store.md5("raw_examples") == before


def test_an_unclosed_csv_quote_no_longer_fails_the_file(tmp_path: Path) -> None:
    # case 05: one open quote used to swallow the 2,000 rows after it and fail the whole asset
    head = "id,created_at,instruction,input,output\r\n"
    broken = 'c4,2025-06-04T08:00:00Z,"Name a colour of the rainbow.,,Orange is one.\r\n'
    rest = "".join(f"n{i},2025-06-05T08:00:00Z,Repeat the number {i}.,,{i}.\r\n" for i in range(2000))
    raw = tmp_path / "input_long.csv"
    raw.write_text(head + broken + rest, encoding="utf-8", newline="")
    result = materialize_raw(tmp_path, raw)
    assert result.success
    loaded = StorageResource(root=str(tmp_path)).store(ARTIFACTS).read_dataset("raw_examples")
    assert len(loaded) == 2001 and loaded["error"][1:] == [None] * 2000
    assert loaded["error"][0].startswith("malformed_csv: line 2: the quote that opens cell 'instruction'")
