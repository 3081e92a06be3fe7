"""Reading one field of a row, under the one coercion rule for values whose type varies from row to row.

A value is converted only where the conversion cannot change what it means; otherwise the row is rejected
with ``wrong_type`` naming the field:

- null, and text that is empty or only whitespace, is an absent value;
- text fields (instruction, input, output, system, a turn's content, category, lang, source) take text
  only: a number or a boolean where text belongs is usually a shifted or mislabelled column;
- ids (``id``, ``group_id``) take text or an integer (``17`` becomes ``"17"``);
- ``created_at`` takes ISO-8601 text, epoch seconds or milliseconds (a number or its text) or a native
  timestamp, all read as UTC (:mod:`assets.shared.timestamps`);
- JSON-valued fields (the turns, ``history``, ``tools``, ``tool_calls``, a tool call's ``arguments``, a
  ShareGPT ``function_call`` value) take the structure or its JSON text, so a CSV cell or a text column
  holding JSON reads like the structure itself; a tool turn's content may be a JSON object or list, which
  is kept as its JSON text;
- a turn's ``weight`` takes a number >= 0 or a boolean (true = 1.0); the flags ``train`` and ``loss``
  take booleans.

Framework-free.
"""

from __future__ import annotations

import json
import math
from typing import Any


class RowError(Exception):
    """A problem with one row; carries the ``reason: detail`` text stored in the row's ``error``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def present(value: dict[str, Any], key: str) -> bool:
    """Whether ``key`` holds a value: not missing, not null, not blank text."""
    item = value.get(key)
    return item is not None and not (isinstance(item, str) and not item.strip())


def id_string(item: object, key: str) -> str:
    if isinstance(item, bool) or not isinstance(item, str | int):
        raise RowError("wrong_type", f"'{key}' must be a string or an integer, got {type(item).__name__}")
    return str(item).strip()


def optional_string(value: dict[str, Any], key: str) -> str | None:
    if not present(value, key):
        return None
    item = value[key]
    if not isinstance(item, str):
        raise RowError("wrong_type", f"'{key}' must be a string, got {type(item).__name__}")
    return item.strip()


def required_text(value: dict[str, Any], key: str) -> str:
    item = value.get(key)
    if item is None or (isinstance(item, str) and not item.strip()):
        raise RowError("missing_field", f"'{key}' is missing or empty")
    if not isinstance(item, str):
        raise RowError("wrong_type", f"'{key}' must be a string, got {type(item).__name__}")
    return item


def optional_text(value: dict[str, Any], key: str) -> str | None:
    """Text kept as written (not stripped), or None when absent."""
    item = value.get(key)
    if item is not None and not isinstance(item, str):
        raise RowError("wrong_type", f"'{key}' must be a string, got {type(item).__name__}")
    return item if item is not None and item.strip() else None


def json_structure(item: object, where: str, *, reason: str = "malformed_json") -> object:
    """``item`` itself, or the value of its JSON text when it is a string."""
    if not isinstance(item, str):
        return item
    try:
        return json.loads(item)
    except json.JSONDecodeError as exc:
        raise RowError(
            reason, f"{where} is text but not valid JSON ({exc.msg}, column {exc.colno})"
        ) from None


def looks_like_json(item: object, opener: str) -> bool:
    """Whether ``item`` is text that starts like a JSON array (``[``) or object (``{``)."""
    return isinstance(item, str) and item.lstrip().startswith(opener)


def to_json_text(item: object) -> str:
    """The canonical JSON text of a structure: keys in the given order, non-ASCII kept."""
    return json.dumps(item, ensure_ascii=False)


def turn_weight(turn: dict[str, Any], where: str, weight_key: str) -> float | None:
    """The turn's training weight: ``weight`` (a number >= 0 or a boolean), else the ``train`` or
    ``loss`` flag (true = 1.0, false = 0.0), else None (trained by the usual rule)."""
    if turn.get(weight_key) is not None:
        item = turn[weight_key]
        if isinstance(item, bool):
            return 1.0 if item else 0.0
        if not isinstance(item, int | float) or not math.isfinite(item) or item < 0:
            raise RowError(
                "wrong_type", f"{where} '{weight_key}' must be a number >= 0 or true/false, got {item!r}"
            )
        return float(item)
    for flag in ("train", "loss"):
        item = turn.get(flag)
        if item is None:
            continue
        if not isinstance(item, bool):
            raise RowError("wrong_type", f"{where} '{flag}' must be true or false, got {item!r}")
        return 1.0 if item else 0.0
    return None
