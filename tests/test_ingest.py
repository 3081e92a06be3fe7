"""Ingestion: reading each file format, normalizing rows, and every bad input we know of."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from assets.ingest.normalize import (
    derived_id,
    mark_duplicate_ids,
    normalize_file,
    normalize_record,
)
from assets.ingest.readers import IngestError, RawRecord, read_records, row_to_raw
from assets.ingest.settings import IngestOptions
from assets.shared.timestamps import TimestampError, parse_timestamp

MAX_CHARS = 8000
UTC = dt.UTC
WHEN = "2025-03-01T12:00:00Z"
ALPACA = {"id": "a1", "instruction": "Add 2 and 3.", "input": "", "output": "5", "created_at": WHEN}
CHAT = {
    "id": "c1",
    "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    "created_at": WHEN,
}


def normalize(
    value: object, line: int = 7, max_chars: int = MAX_CHARS, options: IngestOptions | None = None
) -> dict[str, Any]:
    record = RawRecord(line, row_to_raw(value), value)
    return normalize_record(
        record, source_file="in.jsonl", max_chars=max_chars, options=options or IngestOptions()
    )


def canonical(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as ingestion writes them: every message has weight and tool_calls (null here)."""
    return [
        {"role": m["role"], "content": m["content"], "weight": None, "tool_calls": None} for m in messages
    ]


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- readers ---------------------------------------------------------------------------------------------


def test_jsonl_keeps_line_numbers_skips_blank_lines_and_accepts_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    text = "\ufeff" + json.dumps(ALPACA) + "\r\n\n   \n" + '{"id": "x", "instr\n' + json.dumps(CHAT) + "\n"
    path.write_text(text, encoding="utf-8", newline="")
    records = read_records(path)
    assert [r.line for r in records] == [1, 4, 5]
    assert records[0].value == ALPACA and records[0].raw == json.dumps(ALPACA)
    assert records[1].value is None and records[1].error.startswith("malformed_json: ")
    assert records[1].raw == '{"id": "x", "instr'
    assert records[2].value == CHAT


def test_ndjson_suffix_and_upper_case_suffix_are_read(tmp_path: Path) -> None:
    for name in ("rows.ndjson", "ROWS.JSONL"):
        assert [r.value for r in read_records(write_jsonl(tmp_path / name, [ALPACA]))] == [ALPACA]


@pytest.mark.parametrize("wrapper", [None, "data", "examples", "rows"])
def test_json_list_or_wrapped_list(tmp_path: Path, wrapper: str | None) -> None:
    rows = [ALPACA, CHAT]
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows if wrapper is None else {wrapper: rows, "meta": 1}), encoding="utf-8")
    records = read_records(path)
    assert [r.line for r in records] == [1, 2]
    assert [r.value for r in records] == rows
    assert records[0].raw == json.dumps(ALPACA, sort_keys=True, ensure_ascii=False)


def test_parquet_rows_are_numbered_from_one(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "rows.parquet"
    stamp = dt.datetime(2025, 3, 1, 12, tzinfo=UTC)
    pq.write_table(
        pa.Table.from_pylist([{**ALPACA, "created_at": stamp}, {**ALPACA, "id": "a2", "created_at": stamp}]),
        path,
    )
    records = read_records(path)
    assert [r.line for r in records] == [1, 2]
    assert records[0].value["created_at"] == stamp
    assert json.loads(records[0].raw)["created_at"] == "2025-03-01T12:00:00+00:00"
    row = normalize_record(records[0], source_file="rows.parquet", max_chars=MAX_CHARS)
    assert row["error"] is None and row["created_at"] == stamp


def test_csv_header_is_row_one_and_messages_cells_are_parsed(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    messages = json.dumps(CHAT["messages"])
    cells = messages.replace('"', '""')
    text = (
        "\ufeffid,instruction,input,output,messages,created_at\r\n"
        f"a1,Add 2 and 3.,,5,,{WHEN}\r\n"
        f'c1,,,,"{cells}",{WHEN}\r\n'
        ",,,,,\r\n"
        'c2,,,,"[{""role"": ",x\r\n'
        "c3,too,few\r\n"
    )
    path.write_text(text, encoding="utf-8", newline="")
    records = read_records(path)
    assert [r.line for r in records] == [2, 3, 5, 6]
    assert records[0].value == {**ALPACA, "input": None, "messages": None}
    assert records[1].value["messages"] == CHAT["messages"]
    assert records[2].error.startswith("malformed_json: 'messages' cell")
    assert records[3].error == "malformed_csv: row has 3 cells, header has 6"
    rows = [normalize_record(r, source_file="rows.csv", max_chars=MAX_CHARS) for r in records]
    assert [row["error"] is None for row in rows] == [True, True, False, False]
    assert rows[1]["messages"] == canonical(CHAT["messages"])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("data.txt", b"hello", "unsupported format '.txt'; use .jsonl, .json, .parquet or .csv"),
        ("data", b"hello", "unsupported format '(no suffix)'"),
        ("bad.jsonl", b'{"a": "caf\xe9"}\n', "is not valid UTF-8"),
        ("bad.json", b'[{"a": 1},', "is not valid JSON"),
        ("obj.json", b'{"items": []}', "without a list under 'data', 'examples', 'rows'"),
        ("scalar.json", b"42", "must hold a JSON list of rows, got int"),
        ("bad.parquet", b"PAR1 this is not parquet", "is not a readable Parquet file"),
        ("huge.csv", b'a,b\n"' + b"x" * 200_000 + b'",1\n', "is not readable as CSV"),
    ],
)
def test_unreadable_files_raise_ingest_error(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(IngestError, match=r"data\.raw_path: ") as info:
        read_records(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_missing_file_and_directory_raise_ingest_error(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="does not exist"):
        read_records(tmp_path / "nope.jsonl")
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(IngestError, match="is not a file"):
        read_records(tmp_path / "dir.jsonl")


# --- normalize: good rows --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "messages"),
    [
        (ALPACA, [{"role": "user", "content": "Add 2 and 3."}, {"role": "assistant", "content": "5"}]),
        (
            {**ALPACA, "input": "Show your work.", "system": "Be brief."},
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Add 2 and 3.\n\nShow your work."},
                {"role": "assistant", "content": "5"},
            ],
        ),
        (CHAT, CHAT["messages"]),
        (
            {
                "conversations": [
                    {"from": "system", "value": "S"},
                    {"from": "Human", "value": "Q1"},
                    {"from": "gpt", "value": "A1"},
                    {"from": "prompter", "value": "Q2"},
                    {"from": "bot", "value": "A2"},
                    {"role": "user", "content": "Q3"},
                    {"role": "model", "content": "A3"},
                ],
                "created_at": WHEN,
            },
            [
                {"role": r, "content": c}
                for r, c in [
                    ("system", "S"),
                    ("user", "Q1"),
                    ("assistant", "A1"),
                    ("user", "Q2"),
                    ("assistant", "A2"),
                    ("user", "Q3"),
                    ("assistant", "A3"),
                ]
            ],
        ),
    ],
)
def test_alpaca_and_chat_rows_become_messages(value: dict[str, Any], messages: list[dict[str, str]]) -> None:
    row = normalize(value)
    assert row["error"] is None
    assert row["messages"] == canonical(messages)
    assert row["created_at"] == dt.datetime(2025, 3, 1, 12, tzinfo=UTC)
    assert row["created_at_source"] == "file"


def test_row_has_every_raw_column_and_passes_optional_fields_through() -> None:
    from assets.shared.schema import raw_features, to_dataset

    value = {**CHAT, "category": " math ", "lang": "en", "source": "team", "group_id": 12, "extra": 1}
    row = normalize(value, line=3)
    assert list(row) == list(raw_features())
    assert (row["category"], row["lang"], row["source"], row["group_id"]) == ("math", "en", "team", "12")
    assert (row["source_file"], row["source_line"], row["raw"]) == ("in.jsonl", 3, row_to_raw(value))
    assert row["augmented_from"] is None
    bad = normalize([1, 2])
    dataset = to_dataset([row, bad], raw_features())
    assert dataset[0]["messages"] == canonical(CHAT["messages"]) and dataset[1]["messages"] is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({**ALPACA, "id": 17}, "17"),
        ({**ALPACA, "id": " a-1 "}, "a-1"),
        ({k: v for k, v in ALPACA.items() if k != "id"} | {"uid": "u9"}, "u9"),
        ({k: v for k, v in ALPACA.items() if k != "id"} | {"message_id": "m3"}, "m3"),
    ],
)
def test_explicit_ids_are_strings(value: dict[str, Any], expected: str) -> None:
    assert normalize(value)["id"] == expected


def test_derived_id_is_stable_and_depends_only_on_the_raw_text() -> None:
    assert derived_id('{"instruction": "hi"}') == "row-5d30d8e01787dad7"
    value = {k: v for k, v in ALPACA.items() if k != "id"}
    first, again = normalize(value, line=1), normalize(value, line=99)
    assert first["id"] == again["id"] == derived_id(row_to_raw(value))
    assert normalize({**value, "output": "6"})["id"] != first["id"]
    assert normalize({**value, "id": ""})["id"].startswith("row-")


# --- normalize: bad rows ---------------------------------------------------------------------------------

BAD_ROWS: list[tuple[str, object, str]] = [
    ("array", [1, 2], "not_an_object: line 7 is a JSON array, expected an object"),
    ("string", "hello", "not_an_object: line 7 is a JSON string, expected an object"),
    ("number", 3.5, "not_an_object: line 7 is a JSON number, expected an object"),
    ("null", None, "not_an_object: line 7 is null, expected an object"),
    ("missing output", {**ALPACA, "output": None}, "missing_field: 'output' is missing or empty"),
    ("empty output", {**ALPACA, "output": " \n"}, "missing_field: 'output' is missing or empty"),
    ("empty instruction", {**ALPACA, "instruction": ""}, "missing_field: 'instruction' is missing or empty"),
    ("int instruction", {**ALPACA, "instruction": 42}, "wrong_type: 'instruction' must be a string, got int"),
    ("list input", {**ALPACA, "input": ["x"]}, "wrong_type: 'input' must be a string, got list"),
    ("dict system", {**ALPACA, "system": {}}, "wrong_type: 'system' must be a string, got dict"),
    ("float id", {**ALPACA, "id": 1.5}, "wrong_type: 'id' must be a string or an integer, got float"),
    ("int category", {**ALPACA, "category": 3}, "wrong_type: 'category' must be a string, got int"),
    (
        "bad timestamp",
        {**ALPACA, "created_at": "yesterday"},
        "bad_timestamp: 'created_at' value 'yesterday' is not ISO-8601 or epoch seconds",
    ),
    ("missing timestamp", {**ALPACA, "created_at": None}, "missing_field: 'created_at' is missing"),
    ("oversize", {**ALPACA, "output": "x" * 8000}, "oversize: 8012 characters > data.max_chars 8000"),
    ("unknown layout", {"id": "z", "text": "hi", "created_at": WHEN}, "unknown_format: row has neither"),
    (
        "messages not a list",
        {**CHAT, "messages": "hi"},
        "wrong_type: 'messages' must be a list of turns, got str",
    ),
    ("empty messages", {**CHAT, "messages": []}, "missing_field: 'messages' is missing or empty"),
    ("turn not an object", {**CHAT, "messages": ["hi"]}, "wrong_type: 'messages' turn 1 must be an object"),
    (
        "bad role",
        {**CHAT, "messages": [{"role": "user", "content": "Q"}, {"role": "narrator", "content": "A"}]},
        "bad_role: 'messages' turn 2 has role 'narrator'",
    ),
    (
        "missing role",
        {**CHAT, "messages": [{"content": "Q"}, {"role": "assistant", "content": "A"}]},
        "bad_role: 'messages' turn 1 has role None",
    ),
    (
        "system in the middle",
        {
            **CHAT,
            "messages": [
                {"role": "user", "content": "Q"},
                {"role": "system", "content": "S"},
                {"role": "assistant", "content": "A"},
            ],
        },
        "bad_role: 'messages' turn 2 is a system turn",
    ),
    (
        "empty content",
        {**CHAT, "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "  "}]},
        "empty_content: 'messages' turn 2 (assistant) has no content",
    ),
    (
        "int content",
        {**CHAT, "messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "A"}]},
        "wrong_type: 'messages' turn 1 content must be a string, got int",
    ),
    (
        "no assistant",
        {**CHAT, "messages": [{"role": "user", "content": "Q"}]},
        "bad_structure: 'messages' needs at least one user and one assistant turn",
    ),
    (
        "last turn user",
        {**CHAT, "messages": [*CHAT["messages"], {"role": "user", "content": "And?"}]},
        "bad_structure: 'messages' must end with an assistant turn, the last one is user",
    ),
]


@pytest.mark.parametrize(("value", "error"), [case[1:] for case in BAD_ROWS], ids=[c[0] for c in BAD_ROWS])
def test_bad_rows_get_a_reason_and_are_kept(value: object, error: str) -> None:
    # under data.missing_created_at: reject, the policy of old (row_order is tested in test_formats_time.py)
    row = normalize(value, options=IngestOptions(missing_created_at="reject"))
    assert row["error"].startswith(error), row["error"]
    assert row["raw"] == row_to_raw(value) and row["source_line"] == 7 and row["id"]


def test_bad_row_keeps_what_could_be_read() -> None:
    row = normalize({**ALPACA, "created_at": "soon", "category": "math"})
    assert row["error"].startswith("bad_timestamp") and row["id"] == "a1" and row["category"] == "math"
    assert row["messages"] == normalize(ALPACA)["messages"]
    oversize = normalize(ALPACA, max_chars=3)
    assert oversize["error"] == "oversize: 13 characters > data.max_chars 3" and oversize["messages"]


def test_reader_errors_pass_through() -> None:
    record = RawRecord(4, '{"a": ', None, "malformed_json: Expecting value (column 7)")
    row = normalize_record(record, source_file="f.jsonl", max_chars=MAX_CHARS)
    assert row["error"] == "malformed_json: Expecting value (column 7)"
    assert row["id"] == derived_id('{"a": ') and row["messages"] is None and row["source_line"] == 4


@pytest.mark.parametrize("max_chars", [0, -5, 2.5, True, "8000"])
def test_max_chars_must_be_a_positive_integer(max_chars: object) -> None:
    with pytest.raises(ValueError, match=r"data\.max_chars must be a positive integer"):
        normalize(ALPACA, max_chars=max_chars)  # type: ignore[arg-type]


# --- timestamps ------------------------------------------------------------------------------------------

T = dt.datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
EPOCH = int(T.timestamp())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-03-01T12:00:00Z", T),
        ("2025-03-01T14:00:00+02:00", T),
        ("2025-03-01T07:00:00-05:00", T),
        ("2025-03-01T12:00:00", T),
        ("2025-03-01 12:00:00.000", T),
        ("2025-03-01", dt.datetime(2025, 3, 1, tzinfo=UTC)),
        (EPOCH, T),
        (float(EPOCH) + 0.5, T + dt.timedelta(seconds=0.5)),
        (EPOCH * 1000, T),
        (str(EPOCH), T),
        (f" {EPOCH * 1000} ", T),
        (dt.datetime(2025, 3, 1, 12), T),
        (dt.datetime(2025, 3, 1, 13, tzinfo=dt.timezone(dt.timedelta(hours=1))), T),
        (dt.date(2025, 3, 1), dt.datetime(2025, 3, 1, tzinfo=UTC)),
    ],
)
def test_timestamps_become_utc(value: object, expected: dt.datetime) -> None:
    parsed = parse_timestamp(value)
    assert parsed == expected and parsed.tzinfo == UTC


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("yesterday", "bad_timestamp"),
        ("2025-13-01", "bad_timestamp"),
        ("", "bad_timestamp"),
        (float("nan"), "bad_timestamp"),
        (1e30, "bad_timestamp"),
        (True, "wrong_type"),
        ([2025, 3, 1], "wrong_type"),
    ],
)
def test_bad_timestamps(value: object, reason: str) -> None:
    with pytest.raises(TimestampError) as info:
        parse_timestamp(value, field="timestamp")
    assert info.value.reason == reason and "'timestamp'" in str(info.value)


@pytest.mark.parametrize("key", ["created_date", "timestamp"])
def test_timestamp_aliases(key: str) -> None:
    value = {k: v for k, v in ALPACA.items() if k != "created_at"} | {key: EPOCH}
    assert normalize(value)["created_at"] == T


# --- duplicate ids and whole files -----------------------------------------------------------------------


def test_duplicate_explicit_ids_keep_the_first() -> None:
    rows = [
        normalize(ALPACA, line=1),
        normalize({**ALPACA, "output": "five"}, line=2),
        normalize({**ALPACA, "created_at": "nope"}, line=3),
        normalize({**ALPACA, "id": "a2"}, line=4),
    ]
    marked = mark_duplicate_ids(rows)
    assert marked[0]["error"] is None and marked[3]["error"] is None
    assert marked[1]["error"] == ("duplicate_id: id 'a1' is already used on line 1; give each row its own id")
    assert marked[2]["error"].startswith("bad_timestamp")
    assert rows[1]["error"] is None, "the input rows must not be changed"


def test_identical_rows_without_ids_get_unique_stable_ids() -> None:
    value = {k: v for k, v in ALPACA.items() if k != "id"}
    base = derived_id(row_to_raw(value))
    marked = mark_duplicate_ids([normalize(value, line=n) for n in (1, 2, 3)])
    assert [r["id"] for r in marked] == [base, f"{base}-2", f"{base}-3"]
    assert all(r["error"] is None for r in marked)


def test_normalize_file_keeps_file_order_and_every_row(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", [CHAT, [1], ALPACA, ALPACA])
    rows = normalize_file(path, max_chars=MAX_CHARS)
    assert [r["source_line"] for r in rows] == [1, 2, 3, 4]
    assert [r["id"] for r in rows][::2] == ["c1", "a1"]
    assert [(r["error"] or "").split(":")[0] for r in rows] == ["", "not_an_object", "", "duplicate_id"]
    assert {r["source_file"] for r in rows} == {path.as_posix()}
    named = normalize_file(path, max_chars=MAX_CHARS, source_file="data/rows.jsonl")
    assert {r["source_file"] for r in named} == {"data/rows.jsonl"}


def test_file_without_a_valid_row_raises(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{**ALPACA, "output": ""}, {**ALPACA, "output": None}, [1]])
    with pytest.raises(IngestError) as info:
        normalize_file(path, max_chars=MAX_CHARS)
    message = str(info.value)
    assert str(path) in message and "no valid row (3 read)" in message
    assert "most common error: missing_field (2 rows), e.g. line 1:" in message
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(IngestError, match="holds no rows"):
        normalize_file(empty, max_chars=MAX_CHARS)


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".csv"])
def test_every_format_gives_the_same_examples(tmp_path: Path, suffix: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {**ALPACA, "input": "Show your work.", "messages": None},
        {**CHAT, "instruction": None, "input": None, "output": None},
    ]
    path = tmp_path / f"rows{suffix}"
    if suffix == ".jsonl":
        write_jsonl(path, rows)
    elif suffix == ".json":
        path.write_text(json.dumps({"data": rows}), encoding="utf-8")
    elif suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        header = list(rows[0])
        lines = [",".join(header)]
        for row in rows:
            cells = [json.dumps(row[k]) if isinstance(row[k], list) else (row[k] or "") for k in header]
            lines.append(",".join('"' + str(c).replace('"', '""') + '"' for c in cells))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = normalize_file(path, max_chars=MAX_CHARS)
    assert [r["error"] for r in result] == [None, None]
    assert [r["id"] for r in result] == ["a1", "c1"]
    assert result[0]["messages"][0]["content"] == "Add 2 and 3.\n\nShow your work."
    assert result[1]["messages"] == canonical(CHAT["messages"])
    assert {r["created_at"] for r in result} == {T}


# --- streaming -------------------------------------------------------------------------------------------


def test_chunks_give_the_rows_of_the_whole_file_and_a_summary(tmp_path: Path) -> None:
    from assets.ingest.normalize import normalize_chunks
    from assets.ingest.summary import IngestSummary

    rows_in: list[Any] = [dict(ALPACA, id=f"a{n}", created_at=f"2025-03-0{n}T00:00:00Z") for n in range(1, 8)]
    rows_in[3] = dict(ALPACA, id="a1")  # a repeated id, found across chunks
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows_in) + "not json\n", encoding="utf-8")
    summary = IngestSummary()
    chunks = list(normalize_chunks(path, max_chars=MAX_CHARS, chunk_rows=3, summary=summary))
    assert [len(chunk) for chunk in chunks] == [3, 3, 2]
    assert [row for chunk in chunks for row in chunk] == normalize_file(path, max_chars=MAX_CHARS)
    assert chunks[1][0]["error"].startswith("duplicate_id: id 'a1' is already used on line 1")
    assert summary.rows == 8 and summary.errors == {"duplicate_id": 1, "malformed_json": 1}
    assert summary.first_error["malformed_json"][0] == 8
    assert (summary.oldest.day, summary.newest.day) == (1, 7)


def test_jsonl_is_read_lazily(tmp_path: Path) -> None:
    from assets.ingest.readers import iter_records

    # the bad byte is on the last line: the rows before it come out before the error does
    path = tmp_path / "rows.jsonl"
    path.write_bytes(json.dumps(ALPACA).encode() + b"\n" + b'{"a": "caf\xe9"}\n')
    records = iter_records(path)
    assert next(records).value == ALPACA
    with pytest.raises(IngestError, match=r"is not valid UTF-8 \(line 2, byte 10 of the line"):
        next(records)


def test_file_without_valid_rows_raises_after_the_last_chunk(tmp_path: Path) -> None:
    from assets.ingest.normalize import normalize_chunks

    path = tmp_path / "rows.jsonl"
    path.write_text("[1]\n[2]\n", encoding="utf-8")
    chunks = normalize_chunks(path, max_chars=MAX_CHARS, chunk_rows=1)
    assert len(next(chunks)) == 1 and len(next(chunks)) == 1
    with pytest.raises(IngestError, match=r"has no valid row \(2 read\); most common error: not_an_object"):
        next(chunks)


def test_a_json_document_is_streamed_row_by_row(tmp_path: Path) -> None:
    from assets.ingest.readers import iter_records

    # a list that breaks after its first two rows: they come out before the error does
    path = tmp_path / "rows.json"
    path.write_bytes(b"\xef\xbb\xbf[" + json.dumps(ALPACA).encode() + b', {"weight": 0.5}, {"a": ')
    records = iter_records(path)
    assert next(records).value == ALPACA
    second = next(records)
    assert second.value == {"weight": 0.5} and isinstance(second.value["weight"], float)
    with pytest.raises(IngestError, match=r"is not valid JSON \(parse error: premature EOF\)"):
        next(records)
    # a list under a wrapper key, after other keys (one of them a nested "rows"), is found by a first pass
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(
        json.dumps({"meta": {"rows": [1]}, "data": 3, "rows": [ALPACA, CHAT]}), encoding="utf-8"
    )
    assert [record.value for record in read_records(wrapped)] == [ALPACA, CHAT]
