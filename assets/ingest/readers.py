"""Read a raw dataset file into records, one per row, without interpreting the row.

Formats: JSONL, JSON (a list of rows, or one under ``data``/``examples``/``rows``), Parquet, CSV (see
:mod:`assets.ingest.csv_rows`), and a directory written by Hugging Face ``Dataset.save_to_disk`` or
``DatasetDict.save_to_disk`` (read with ``datasets.load_from_disk``; the splits of a DatasetDict one after
the other, in their saved order). A record keeps the original text of its row and where it was found, so a
row that cannot be parsed still reaches ``rejected_examples`` with its line number instead of vanishing.
Only problems with the file as a whole (missing, unsupported format, unreadable) raise
:class:`IngestError`.

:func:`iter_records` streams: JSONL and CSV are read line by line, Parquet by record batch and a saved
dataset row by row from its memory-mapped Arrow files, and a ``.json`` document row by row with ijson (a
maintained iterative JSON parser over yajl), so memory does not grow with the file.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from assets.ingest.csv_rows import CsvReader
from assets.shared.errors import InputError

SUPPORTED_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet", ".csv")
# Keys under which a .json file may wrap its list of rows.
JSON_WRAPPER_KEYS = ("data", "examples", "rows")
# CSV cells in these columns hold a JSON list of turns.
CSV_JSON_COLUMNS = ("messages", "conversations")
_HINT = "use .jsonl, .json, .parquet or .csv, or a directory written by Dataset.save_to_disk"
# Files that mark a directory written by Dataset.save_to_disk or DatasetDict.save_to_disk.
SAVED_DATASET_MARKERS = ("state.json", "dataset_info.json", "dataset_dict.json")


class IngestError(InputError):
    """The input file as a whole cannot be ingested (as opposed to one bad row)."""


@dataclass(frozen=True)
class RawRecord:
    """One row of the input file, before normalization.

    ``line`` is 1-based: the line number for JSONL, the row's index for JSON, Parquet and a saved
    dataset, and for CSV the line the row starts on (the header is line 1; a quoted cell may span lines,
    so a row's line is not its count of rows). ``value`` is the parsed row, or None when it
    could not be parsed, in which case ``error`` says why.
    """

    line: int
    raw: str
    value: object | None
    error: str | None = None
    # the row's id when it is malformed but its id cell could still be read (CSV): kept on the rejected row
    row_id: str | None = None


def read_records(path: Path) -> list[RawRecord]:
    """Every row of ``path`` in file order, as a list (see :func:`iter_records`)."""
    return list(iter_records(path))


def iter_records(path: Path) -> Iterator[RawRecord]:
    """The rows of ``path`` (JSONL, JSON, Parquet or CSV, chosen by suffix, or a directory written by
    ``save_to_disk``) in file order, read lazily. The path is checked now; a file found unreadable while
    it is read raises :class:`IngestError` from the iterator."""
    path = Path(path)
    if path.is_dir():
        if any((path / marker).is_file() for marker in SAVED_DATASET_MARKERS):
            return _read_saved_dataset(path)
        raise IngestError(
            f"data.raw_path: {path} is not a file, nor a dataset written by Dataset.save_to_disk (it has "
            f"no {' or '.join(SAVED_DATASET_MARKERS)}); point it at one file or at such a directory"
        )
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        shown = suffix or "(no suffix)"
        raise IngestError(f"data.raw_path: {path} has unsupported format '{shown}'; {_HINT}")
    if not path.exists():
        raise IngestError(
            f"data.raw_path: {path} does not exist; check the path (relative to the project root)"
        )
    if not path.is_file():
        raise IngestError(f"data.raw_path: {path} is not a file; point it at a single {_HINT} file")
    if suffix == ".parquet":
        return _read_parquet(path)
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".csv":
        return _read_csv(path, _text_lines(path))
    return _read_jsonl(_text_lines(path))


def row_to_raw(row: object) -> str:
    """The canonical text of a parsed row: sorted keys, non-ASCII kept, timestamps as ISO-8601."""
    return json.dumps(row, sort_keys=True, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    # numpy scalars and other exotic cell types from Parquet
    return str(value)


def _open_bytes(path: Path) -> BinaryIO:
    """``path`` opened for reading bytes; an IngestError naming the file when it cannot be read."""
    try:
        return path.open("rb")
    except OSError as exc:
        message = f"data.raw_path: cannot read {path}: {exc.strerror}; check its permissions"
        raise IngestError(message) from exc


def _text_lines(path: Path) -> Iterator[str]:
    """The physical lines of a UTF-8 text file with their line ends, one at a time. Only LF ends a line
    (binary reading, so a CR or U+2028 inside a JSON string never shifts line numbers); a leading
    byte-order mark, which spreadsheet exports often add, is dropped."""
    handle = _open_bytes(path)
    with handle:
        for number, data in enumerate(handle, start=1):
            try:
                # LF (0x0A) never occurs inside a multi-byte UTF-8 character, so lines decode on their own
                yield data.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise IngestError(
                    f"data.raw_path: {path} is not valid UTF-8 (line {number}, byte {exc.start} of the "
                    f"line: {exc.reason}); re-export the file as UTF-8"
                ) from exc


def _read_jsonl(lines: Iterable[str]) -> Iterator[RawRecord]:
    for number, line in enumerate(lines, start=1):
        line = line.removesuffix("\n").rstrip("\r")
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield RawRecord(number, line, None, f"malformed_json: {exc.msg} (column {exc.colno})")
            continue
        yield RawRecord(number, line, value)


def _read_json(path: Path) -> Iterator[RawRecord]:
    """The rows of a JSON document, streamed with ijson (a list at the top level, or under one of
    :data:`JSON_WRAPPER_KEYS`, found in a first pass over the parser's events when the top level is an
    object). Numbers with a fraction are read as floats, as :func:`json.loads` does."""
    import ijson

    with _json_bytes(path) as handle:
        events = ijson.parse(handle)
        prefix, event, value = _json_event(path, events)
        if event == "start_map":
            arrays = {
                p for p, e, _ in _json_events(path, events) if e == "start_array" and p in JSON_WRAPPER_KEYS
            }
            key = next((k for k in JSON_WRAPPER_KEYS if k in arrays), None)
            if key is None:
                raise IngestError(
                    f"data.raw_path: {path} holds a JSON object without a list under "
                    f"{', '.join(repr(k) for k in JSON_WRAPPER_KEYS)}; make the top level a list of rows"
                )
            prefix = f"{key}.item"
        elif event == "start_array":
            prefix = "item"
        else:
            kind = {"number": "float" if isinstance(value, Decimal) else "int", "string": "str"}
            got = kind.get(event, {"boolean": "bool", "null": "NoneType"}.get(event, event))
            raise IngestError(f"data.raw_path: {path} must hold a JSON list of rows, got {got}")
    with _json_bytes(path) as handle:
        rows = ijson.items(handle, prefix, use_float=True)
        for index, row in enumerate(_json_events(path, rows), start=1):
            yield RawRecord(index, row_to_raw(row), row)


@contextlib.contextmanager
def _json_bytes(path: Path) -> Iterator[BinaryIO]:
    """``path`` opened for reading bytes, past a leading byte-order mark (the parser refuses one)."""
    handle = _open_bytes(path)
    with handle:
        if handle.read(3) != codecs.BOM_UTF8:
            handle.seek(0)
        yield handle


def _json_event(path: Path, events: Iterator[Any]) -> Any:
    return next(iter(_json_events(path, events)))


def _json_events(path: Path, items: Iterable[Any]) -> Iterator[Any]:
    """``items`` from the parser, with its errors turned into :class:`IngestError` naming the file."""
    import ijson

    try:
        yield from items
    except ijson.JSONError as exc:
        detail = exc.args[0] if exc.args else exc
        detail = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        detail = detail.strip().splitlines()[0] if detail.strip() else type(exc).__name__
        what = "valid UTF-8" if "UTF8" in detail else "valid JSON"
        raise IngestError(
            f"data.raw_path: {path} is not {what} ({detail}); fix it, or use .jsonl so that one bad row "
            "does not spoil the file"
        ) from exc


# Rows per Parquet record batch: enough to amortize the conversion, few enough to bound memory.
PARQUET_BATCH_ROWS = 1024


def _read_parquet(path: Path) -> Iterator[RawRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                index += 1
                yield RawRecord(index, row_to_raw(row), row)
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(
            f"data.raw_path: {path} is not a readable Parquet file ({exc}); re-export it or use .jsonl"
        ) from exc


def _read_saved_dataset(path: Path) -> Iterator[RawRecord]:
    from datasets import Dataset, DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(str(path))
    except (OSError, ValueError, KeyError) as exc:
        raise IngestError(
            f"data.raw_path: {path} looks like a dataset written by save_to_disk but cannot be loaded "
            f"({exc}); save it again, or export it as .jsonl"
        ) from exc
    parts = list(loaded.values()) if isinstance(loaded, DatasetDict) else [loaded]
    # row by row from the memory-mapped Arrow files: nothing is loaded whole
    rows = (row for part in parts if isinstance(part, Dataset) for row in part)
    return (RawRecord(index, row_to_raw(row), row) for index, row in enumerate(rows, start=1))


def _read_csv(path: Path, lines: Iterable[str]) -> Iterator[RawRecord]:
    reader = CsvReader(lines)
    try:
        for record in reader:
            if record.cells is None:
                row_id = _readable_id(reader.header or [], record.text)
                yield RawRecord(record.line, record.text, None, record.error, row_id)
            else:
                yield _csv_record(record.line, reader.header or [], record.cells)
    except csv.Error as exc:
        raise IngestError(
            f"data.raw_path: {path} is not readable as CSV ({exc}); check its quoting, or use .jsonl"
        ) from exc


def _id_cell(header: list[str], cells: list[str]) -> str | None:
    """The first id column's cell (see ``ID_KEYS`` in normalize) when the row reaches it and it is
    not empty."""
    index = next((header.index(key) for key in ("id", "uid", "message_id") if key in header), None)
    if index is None or index >= len(cells) or not cells[index].strip():
        return None
    return cells[index].strip()


def _readable_id(header: list[str], text: str) -> str | None:
    """The id of a record set aside as malformed: its id cell read from its first line when that cell
    comes before any quote (a quoted cell there may be the broken one, so it is not trusted)."""
    pieces = text.split("\n", 1)[0].rstrip("\r").split(",")
    index = next((header.index(key) for key in ("id", "uid", "message_id") if key in header), None)
    if index is None or index >= len(pieces) or any('"' in piece for piece in pieces[: index + 1]):
        return None
    return _id_cell(header, pieces)


def _csv_record(number: int, header: list[str], cells: list[str]) -> RawRecord:
    # CSV has no null: an empty cell means the field is absent
    row: dict[str, Any] = {
        name: (cell if cell != "" else None) for name, cell in zip(header, cells, strict=False)
    }
    raw = row_to_raw(row)
    if len(cells) != len(header):
        error = f"malformed_csv: row has {len(cells)} cells, header has {len(header)}"
        return RawRecord(number, raw, None, error, _id_cell(header, cells))
    for column in CSV_JSON_COLUMNS:
        cell = row.get(column)
        if cell is None:
            continue
        try:
            row[column] = json.loads(cell)
        except json.JSONDecodeError as exc:
            return RawRecord(
                number,
                raw,
                None,
                f"malformed_json: '{column}' cell is not valid JSON ({exc.msg}, column {exc.colno})",
            )
    return RawRecord(number, row_to_raw(row), row)
