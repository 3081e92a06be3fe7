"""Turn raw records into rows of the canonical schema (``assets.shared.schema.raw_features``).

Every record becomes exactly one row, except an OpenAssistant message tree (:mod:`assets.ingest.oasst`),
which becomes one row per conversation, all with the tree's line. A row that cannot be normalized keeps
the fields that could be read and gets ``error`` = ``"<reason>: <detail>"``, where the reason is a short
machine-readable word and the detail tells a person what is wrong and where. Such rows are never dropped
here: the clean stage routes them to ``rejected_examples``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from assets.ingest.fields import RowError, id_string, optional_string, present
from assets.ingest.oasst import AUDIT_KEYS, TreeError, expand_tree, is_message_tree
from assets.ingest.readers import IngestError, RawRecord, iter_records, row_to_raw
from assets.ingest.redaction import redact_row
from assets.ingest.settings import ROW_FIELDS, IngestOptions
from assets.ingest.summary import IngestSummary
from assets.ingest.turns import read_messages, read_tools
from assets.shared.schema import EXAMPLE_COLUMNS, PROVENANCE_COLUMNS, empty_row
from assets.shared.timestamps import TimestampError, parse_timestamp

ID_KEYS = ("id", "uid", "message_id")
TIME_KEYS = ("created_at", "created_date", "timestamp")
PASSTHROUGH_KEYS = ("category", "lang", "source")
_JSON_TYPE_NAMES = {list: "a JSON array", str: "a JSON string", bool: "a JSON boolean", type(None): "null"}
DEFAULT_OPTIONS = IngestOptions()


def derived_id(raw: str) -> str:
    """A stable id for a row that has none: it depends only on the row's original text."""
    return "row-" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


def normalize_record(
    record: RawRecord, *, source_file: str, max_chars: int, options: IngestOptions = DEFAULT_OPTIONS
) -> dict[str, Any]:
    """One row with every column of ``raw_features()``; ``error`` is set when the record is unusable."""
    _check_max_chars(max_chars)
    row = empty_row(EXAMPLE_COLUMNS + PROVENANCE_COLUMNS)
    row.update(source_file=source_file, source_line=record.line, raw=record.raw, id=derived_id(record.raw))
    if record.error is not None:
        row["error"] = record.error
        if record.row_id:
            row["id"] = record.row_id
        return row
    if not isinstance(record.value, dict):
        kind = _JSON_TYPE_NAMES.get(type(record.value), "a JSON number")
        row["error"] = f"not_an_object: line {record.line} is {kind}, expected an object"
        return row
    value = rename_columns(record.value, options.column_map)
    errors: list[str] = []
    for column, read in (
        ("id", _read_id),
        ("group_id", _read_group_id),
        ("messages", lambda v: read_messages(v, options)),
        ("tools", read_tools),
    ):
        try:
            found = read(value)
        except RowError as exc:
            errors.append(str(exc))
            continue
        if found is not None:
            row[column] = found
    try:
        _set_created_at(row, value, record.line, options)
    except RowError as exc:
        errors.append(str(exc))
    for key in PASSTHROUGH_KEYS:
        try:
            row[key] = optional_string(value, key)
        except RowError as exc:
            errors.append(str(exc))
    if row["messages"] is not None:
        total = sum(len(turn["content"]) + len(turn["tool_calls"] or "") for turn in row["messages"])
        if total > max_chars:
            errors.append(f"oversize: {total} characters > data.max_chars {max_chars}")
    # one reason per row: the first problem found, in column order, is the one to fix first
    row["error"] = errors[0] if errors else None
    return row


def _set_created_at(row: dict[str, Any], value: dict[str, Any], line: int, options: IngestOptions) -> None:
    """The row's own time (``file``), or under ``data.missing_created_at: row_order`` one made from its
    line (``row_order``) when it has none; a time that does not parse is an error, never replaced."""
    key = next((k for k in TIME_KEYS if present(value, k)), None)
    if key is not None:
        try:
            row["created_at"] = parse_timestamp(value[key], field=key)
        except TimestampError as exc:
            raise RowError(exc.reason, exc.detail) from None
        row["created_at_source"] = "file"
    elif options.missing_created_at == "row_order":
        row["created_at"] = row_order_time(options, line)
        row["created_at_source"] = "row_order"
    else:
        raise RowError(
            "missing_field",
            "'created_at' is missing (also looked for 'created_date' and 'timestamp'); the time-based split "
            "needs it: add it, or set data.missing_created_at: row_order to use the order of the file",
        )


def row_order_time(options: IngestOptions, line: int) -> dt.datetime:
    """The synthetic ``created_at`` of a row without one: ``data.row_order_start`` plus its line number
    (1-based, see :class:`RawRecord`) in seconds, so the time split follows the order of the file."""
    return options.start + dt.timedelta(seconds=line)


def rename_columns(value: dict[str, Any], column_map: dict[str, str]) -> dict[str, Any]:
    """The row with your column names (``data.columns``) replaced by the canonical ones: a mapped
    canonical field is read from your column only."""
    renames = {canonical: yours for canonical, yours in column_map.items() if canonical in ROW_FIELDS}
    if not renames:
        return value
    renamed = {key: item for key, item in value.items() if key not in renames}
    for canonical, yours in renames.items():
        if yours in value:
            renamed[canonical] = value[yours]
    return renamed


def created_at_sources(rows: list[dict[str, Any]]) -> Counter[str]:
    """How many rows got their ``created_at`` from the file and how many from their place in it."""
    return _summary_of(rows).created_at_sources


def mixed_created_at_warning(rows: list[dict[str, Any]]) -> str | None:
    """A sentence for the person when some rows carry their own time and others got one from row order."""
    return _summary_of(rows).mixed_created_at_warning()


def _summary_of(rows: list[dict[str, Any]]) -> IngestSummary:
    summary = IngestSummary()
    for row in rows:
        summary.add(row)
    return summary


class DuplicateIds:
    """Resolves repeated ids row by row, first occurrence wins (see :func:`mark_duplicate_ids`). Holds
    one entry per distinct id: memory grows with the number of rows (about 100 bytes each), not with
    their text."""

    def __init__(self) -> None:
        self.first_line: dict[str, int | None] = {}
        self.repeats: Counter[str] = Counter()

    def mark(self, original: dict[str, Any]) -> dict[str, Any]:
        row = dict(original)
        row_id = row["id"]
        if row_id in self.first_line:
            if row_id == derived_id(row["raw"]):
                self.repeats[row_id] += 1
                row["id"] = f"{row_id}-{self.repeats[row_id] + 1}"
            elif row["error"] is None:
                row["error"] = (
                    f"duplicate_id: id '{row_id}' is already used on line {self.first_line[row_id]}; "
                    "give each row its own id"
                )
        else:
            self.first_line[row_id] = row["source_line"]
        return row


def mark_duplicate_ids(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``rows`` where a repeated id is resolved, first occurrence wins.

    A repeated explicit id marks the later row ``duplicate_id`` (unless it already has an error). Rows
    without an id of their own that have the same text get the same derived id; the later ones get a
    ``-2``, ``-3`` ... suffix so ids stay unique (the clean stage rejects them as exact duplicates).
    """
    ids = DuplicateIds()
    return [ids.mark(row) for row in rows]


def record_rows(
    record: RawRecord, *, source_file: str, max_chars: int, options: IngestOptions = DEFAULT_OPTIONS
) -> list[dict[str, Any]]:
    """The rows of one record: the record itself, or one chat row per conversation of a message tree.

    A tree's rows keep a short ``raw`` (tree id and the path's message ids) instead of the whole tree
    each. A tree that cannot be walked, or that has no conversation left, is one row with ``error``.
    """
    if record.error is not None or not is_message_tree(record.value):
        return [normalize_record(record, source_file=source_file, max_chars=max_chars, options=options)]
    try:
        conversations = expand_tree(record.value)
    except TreeError as exc:
        error = str(exc)
    else:
        if conversations:
            return [
                normalize_record(
                    RawRecord(record.line, row_to_raw({key: row[key] for key in AUDIT_KEYS}), row),
                    source_file=source_file,
                    max_chars=max_chars,
                    options=options,
                )
                for row in conversations
            ]
        error = (
            f"no_conversation: message tree {record.value['message_tree_id']} has no assistant reply once "
            "deleted messages and those that failed review are skipped (e.g. a prompt still awaiting replies)"
        )
    return [
        normalize_record(
            replace(record, value=None, error=error),
            source_file=source_file,
            max_chars=max_chars,
            options=options,
        )
    ]


# Rows per chunk handed to the writer: memory holds about this many rows at a time.
CHUNK_ROWS = 5000


def normalize_chunks(
    path: Path,
    *,
    max_chars: int,
    source_file: str | None = None,
    options: IngestOptions = DEFAULT_OPTIONS,
    summary: IngestSummary | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[list[dict[str, Any]]]:
    """Read, normalize and (with ``options.pii_redaction``) redact the rows of ``path`` in file order,
    ``chunk_rows`` at a time, so memory does not grow with the file (see
    :func:`assets.ingest.readers.iter_records`).

    ``source_file`` is what the rows record as their origin (default: ``path`` as given); ``options`` are
    the column names, role names, timestamp policy and redaction of ``data`` (:class:`IngestOptions`).
    ``summary`` (optional) is filled row by row. After the last chunk, raises :class:`IngestError` when
    the file held no usable row at all, so a consumer writing the chunks never commits such a file.
    """
    _check_max_chars(max_chars)
    path = Path(path)
    name = source_file if source_file is not None else path.as_posix()
    summary = summary if summary is not None else IngestSummary()
    ids = DuplicateIds()
    chunk: list[dict[str, Any]] = []
    for record in iter_records(path):
        for row in record_rows(record, source_file=name, max_chars=max_chars, options=options):
            # ids first: a derived id is recognized by the hash of the original text
            row = ids.mark(row)
            found = None
            if options.pii_redaction:
                if record.value is not None and row["raw"] == record.raw and "\\u" in record.raw:
                    # A line written with \uXXXX escapes (json.dumps' default) hides what the patterns
                    # look for ("T\u00e9l\u00e9phone: 030 1234567"): its canonical form spells it out.
                    row["raw"] = row_to_raw(record.value)
                row, found = redact_row(row, options.pii_types)
            summary.add(row, found)
            chunk.append(row)
        if len(chunk) >= chunk_rows:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
    summary.check(path)


def normalize_file(
    path: Path,
    *,
    max_chars: int,
    source_file: str | None = None,
    options: IngestOptions = DEFAULT_OPTIONS,
) -> list[dict[str, Any]]:
    """Every row of ``path``, normalized, as one list (see :func:`normalize_chunks`, which streams).
    Raises :class:`IngestError` when the file holds no usable row at all."""
    return [
        row
        for chunk in normalize_chunks(path, max_chars=max_chars, source_file=source_file, options=options)
        for row in chunk
    ]


def _check_max_chars(max_chars: int) -> None:
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars <= 0:
        raise IngestError(
            f"data.max_chars must be a positive integer (the longest row, in characters), got {max_chars!r}; "
            "fix it in params.yaml or the launchpad config"
        )


def _read_id(value: dict[str, Any]) -> str | None:
    key = next((k for k in ID_KEYS if present(value, k)), None)
    if key is None:
        return None
    return id_string(value[key], key)


def _read_group_id(value: dict[str, Any]) -> str | None:
    return id_string(value["group_id"], "group_id") if present(value, "group_id") else None
