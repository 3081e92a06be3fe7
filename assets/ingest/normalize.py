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
from dataclasses import replace
from pathlib import Path
from typing import Any

from assets.ingest.oasst import AUDIT_KEYS, TreeError, expand_tree, is_message_tree
from assets.ingest.readers import IngestError, RawRecord, read_records, row_to_raw
from assets.shared.schema import EXAMPLE_COLUMNS, PROVENANCE_COLUMNS, empty_row
from assets.shared.timestamps import TimestampError, parse_timestamp

ID_KEYS = ("id", "uid", "message_id")
TIME_KEYS = ("created_at", "created_date", "timestamp")
CHAT_KEYS = ("messages", "conversations")
ALPACA_KEYS = ("instruction", "input", "output")
PASSTHROUGH_KEYS = ("category", "lang", "source")
ROLE_ALIASES = {
    "system": "system",
    "user": "user",
    "human": "user",
    "prompter": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
}
_JSON_TYPE_NAMES = {list: "a JSON array", str: "a JSON string", bool: "a JSON boolean", type(None): "null"}


class RowError(Exception):
    """A problem with one row; carries the ``reason: detail`` text stored in the row's ``error``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def derived_id(raw: str) -> str:
    """A stable id for a row that has none: it depends only on the row's original text."""
    return "row-" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


def normalize_record(record: RawRecord, *, source_file: str, max_chars: int) -> dict[str, Any]:
    """One row with every column of ``raw_features()``; ``error`` is set when the record is unusable."""
    _check_max_chars(max_chars)
    row = empty_row(EXAMPLE_COLUMNS + PROVENANCE_COLUMNS)
    row.update(source_file=source_file, source_line=record.line, raw=record.raw, id=derived_id(record.raw))
    if record.error is not None:
        row["error"] = record.error
        return row
    value = record.value
    if not isinstance(value, dict):
        kind = _JSON_TYPE_NAMES.get(type(value), "a JSON number")
        row["error"] = f"not_an_object: line {record.line} is {kind}, expected an object"
        return row
    errors: list[str] = []
    for column, read in (
        ("id", _read_id),
        ("group_id", _read_group_id),
        ("messages", _read_messages),
        ("created_at", _read_created_at),
    ):
        try:
            found = read(value)
        except RowError as exc:
            errors.append(str(exc))
            continue
        if found is not None:
            row[column] = found
    for key in PASSTHROUGH_KEYS:
        try:
            row[key] = _optional_string(value, key)
        except RowError as exc:
            errors.append(str(exc))
    if row["messages"] is not None:
        total = sum(len(turn["content"]) for turn in row["messages"])
        if total > max_chars:
            errors.append(f"oversize: {total} characters > data.max_chars {max_chars}")
    # one reason per row: the first problem found, in column order, is the one to fix first
    row["error"] = errors[0] if errors else None
    return row


def mark_duplicate_ids(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``rows`` where a repeated id is resolved, first occurrence wins.

    A repeated explicit id marks the later row ``duplicate_id`` (unless it already has an error). Rows
    without an id of their own that have the same text get the same derived id; the later ones get a
    ``-2``, ``-3`` ... suffix so ids stay unique (the clean stage rejects them as exact duplicates).
    """
    first_line: dict[str, int | None] = {}
    repeats: Counter[str] = Counter()
    result = []
    for original in rows:
        row = dict(original)
        row_id = row["id"]
        if row_id in first_line:
            if row_id == derived_id(row["raw"]):
                repeats[row_id] += 1
                row["id"] = f"{row_id}-{repeats[row_id] + 1}"
            elif row["error"] is None:
                row["error"] = (
                    f"duplicate_id: id '{row_id}' is already used on line {first_line[row_id]}; "
                    "give each row its own id"
                )
        else:
            first_line[row_id] = row["source_line"]
        result.append(row)
    return result


def record_rows(record: RawRecord, *, source_file: str, max_chars: int) -> list[dict[str, Any]]:
    """The rows of one record: the record itself, or one chat row per conversation of a message tree.

    A tree's rows keep a short ``raw`` (tree id and the path's message ids) instead of the whole tree
    each. A tree that cannot be walked, or that has no conversation left, is one row with ``error``.
    """
    if record.error is not None or not is_message_tree(record.value):
        return [normalize_record(record, source_file=source_file, max_chars=max_chars)]
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
                )
                for row in conversations
            ]
        error = (
            f"no_conversation: message tree {record.value['message_tree_id']} has no assistant reply once "
            "deleted messages and those that failed review are skipped (e.g. a prompt still awaiting replies)"
        )
    return [
        normalize_record(
            replace(record, value=None, error=error), source_file=source_file, max_chars=max_chars
        )
    ]


def normalize_file(path: Path, *, max_chars: int, source_file: str | None = None) -> list[dict[str, Any]]:
    """Read and normalize every row of ``path`` in file order; rows that fail carry ``error``.

    ``source_file`` is what the rows record as their origin (default: ``path`` as given). Raises
    :class:`IngestError` when the file holds no usable row at all.
    """
    _check_max_chars(max_chars)
    path = Path(path)
    name = source_file if source_file is not None else path.as_posix()
    records = read_records(path)
    if not records:
        raise IngestError(f"data.raw_path: {path} holds no rows; point data.raw_path at a file with examples")
    rows = mark_duplicate_ids(
        [row for record in records for row in record_rows(record, source_file=name, max_chars=max_chars)]
    )
    if all(row["error"] is not None for row in rows):
        reasons = Counter(row["error"].split(":", 1)[0] for row in rows)
        reason, count = reasons.most_common(1)[0]
        example = next(row for row in rows if row["error"].startswith(reason + ":"))
        raise IngestError(
            f"data.raw_path: {path} has no valid row ({len(rows)} read); most common error: {reason} "
            f"({count} rows), e.g. line {example['source_line']}: {example['error']}"
        )
    return rows


def _check_max_chars(max_chars: int) -> None:
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars <= 0:
        raise IngestError(
            f"data.max_chars must be a positive integer (the longest row, in characters), got {max_chars!r}; "
            "fix it in params.yaml or the launchpad config"
        )


def _present(value: dict[str, Any], key: str) -> bool:
    item = value.get(key)
    return item is not None and not (isinstance(item, str) and not item.strip())


def _read_id(value: dict[str, Any]) -> str | None:
    key = next((k for k in ID_KEYS if _present(value, k)), None)
    if key is None:
        return None
    return _id_string(value[key], key)


def _read_group_id(value: dict[str, Any]) -> str | None:
    return _id_string(value["group_id"], "group_id") if _present(value, "group_id") else None


def _id_string(item: object, key: str) -> str:
    if isinstance(item, bool) or not isinstance(item, str | int):
        raise RowError("wrong_type", f"'{key}' must be a string or an integer, got {type(item).__name__}")
    return str(item).strip()


def _optional_string(value: dict[str, Any], key: str) -> str | None:
    if not _present(value, key):
        return None
    item = value[key]
    if not isinstance(item, str):
        raise RowError("wrong_type", f"'{key}' must be a string, got {type(item).__name__}")
    return item.strip()


def _read_created_at(value: dict[str, Any]) -> dt.datetime:
    key = next((k for k in TIME_KEYS if _present(value, k)), None)
    if key is None:
        raise RowError(
            "missing_field",
            "'created_at' is missing (also looked for 'created_date' and 'timestamp'); "
            "the time-based split needs it",
        )
    try:
        return parse_timestamp(value[key], field=key)
    except TimestampError as exc:
        raise RowError(exc.reason, exc.detail) from None


def _read_messages(value: dict[str, Any]) -> list[dict[str, str]]:
    # a null column is absent: Parquet files that mix both layouts have nulls in the other one's columns
    chat_key = next((k for k in CHAT_KEYS if value.get(k) is not None), None)
    if chat_key is not None:
        return _chat_messages(value[chat_key], chat_key)
    if any(value.get(k) is not None for k in ALPACA_KEYS):
        return _alpaca_messages(value)
    chat_key = next((k for k in CHAT_KEYS if k in value), None)
    if chat_key is not None:
        raise RowError("missing_field", f"'{chat_key}' is missing or empty")
    if any(k in value for k in ALPACA_KEYS):
        return _alpaca_messages(value)
    keys = ", ".join(sorted(map(str, value))) or "none"
    raise RowError(
        "unknown_format",
        f"row has neither 'messages' nor 'instruction'/'output' (its keys: {keys}); "
        "use the alpaca or chat layout",
    )


def _alpaca_messages(value: dict[str, Any]) -> list[dict[str, str]]:
    instruction = _required_text(value, "instruction")
    extra = value.get("input")
    if extra is not None and not isinstance(extra, str):
        raise RowError("wrong_type", f"'input' must be a string, got {type(extra).__name__}")
    output = _required_text(value, "output")
    system = value.get("system")
    if system is not None and not isinstance(system, str):
        raise RowError("wrong_type", f"'system' must be a string, got {type(system).__name__}")
    # the optional input is the material the instruction refers to; a blank line keeps them apart
    prompt = f"{instruction}\n\n{extra}" if extra and extra.strip() else instruction
    messages = [{"role": "system", "content": system}] if system and system.strip() else []
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    return messages


def _required_text(value: dict[str, Any], key: str) -> str:
    item = value.get(key)
    if item is None or (isinstance(item, str) and not item.strip()):
        raise RowError("missing_field", f"'{key}' is missing or empty")
    if not isinstance(item, str):
        raise RowError("wrong_type", f"'{key}' must be a string, got {type(item).__name__}")
    return item


def _chat_messages(turns: object, key: str) -> list[dict[str, str]]:
    if turns is None or (isinstance(turns, list) and not turns):
        raise RowError("missing_field", f"'{key}' is missing or empty")
    if not isinstance(turns, list):
        raise RowError("wrong_type", f"'{key}' must be a list of turns, got {type(turns).__name__}")
    messages = [_turn(turn, number, key) for number, turn in enumerate(turns, start=1)]
    roles = [m["role"] for m in messages]
    if "system" in roles[1:]:
        number = roles.index("system", 1) + 1
        raise RowError(
            "bad_role", f"'{key}' turn {number} is a system turn; only the first turn may be system"
        )
    if "user" not in roles or "assistant" not in roles:
        raise RowError(
            "bad_structure", f"'{key}' needs at least one user and one assistant turn, got {roles}"
        )
    if roles[-1] != "assistant":
        raise RowError(
            "bad_structure", f"'{key}' must end with an assistant turn, the last one is {roles[-1]}"
        )
    return messages


def _turn(turn: object, number: int, key: str) -> dict[str, str]:
    if not isinstance(turn, dict):
        raise RowError(
            "wrong_type",
            f"'{key}' turn {number} must be an object with role and content, got {type(turn).__name__}",
        )
    # ShareGPT exports spell the pair {from, value}
    role = turn.get("role", turn.get("from"))
    content = turn.get("content", turn.get("value"))
    canonical = ROLE_ALIASES.get(role.strip().lower()) if isinstance(role, str) else None
    if canonical is None:
        raise RowError(
            "bad_role",
            f"'{key}' turn {number} has role {role!r}; use system, user or assistant (or an alias)",
        )
    if content is None or (isinstance(content, str) and not content.strip()):
        raise RowError("empty_content", f"'{key}' turn {number} ({canonical}) has no content")
    if not isinstance(content, str):
        raise RowError(
            "wrong_type", f"'{key}' turn {number} content must be a string, got {type(content).__name__}"
        )
    return {"role": canonical, "content": content}
