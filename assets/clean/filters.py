"""Row validation filters for the ``ingest`` and ``validate`` cleaning stages.

Each filter looks at one row and answers "keep?": ``None`` to keep it, or a :class:`Rejection` saying why
not (a short machine ``reason`` and a human ``detail``), in the spirit of datatrove's filters. The first
failing filter decides, so the order of :func:`row_filters` is the order of precedence;
:func:`assets.clean.steps.each_row` turns them into a pipeline step. :func:`find_reused_ids` is the one
validation that needs every row at once.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from assets.clean.steps import Rejection
from assets.shared.schema import ROLES

# Whitespace control characters are ordinary text; every other control or format-breaking code point
# (C0, DEL, C1) is a sign of binary garbage or a broken export.
_ALLOWED_CONTROLS = frozenset("\n\r\t")
# U+FFFD is what decoders put where bytes could not be decoded: the text was damaged before it got here.
_REPLACEMENT_CHARACTER = "\ufffd"


RowFilter = Callable[[dict[str, Any]], Rejection | None]


def check_ingest_error(row: dict[str, Any]) -> Rejection | None:
    """Reject a row the reader could not normalize (its ``error`` is set); the reason is the error's code,
    the text before its first colon (e.g. ``malformed_json: line 2: ...``)."""
    error = row.get("error")
    if error is None:
        return None
    return Rejection(str(error).split(":", 1)[0].strip() or "ingest_error", str(error))


def check_id(row: dict[str, Any]) -> Rejection | None:
    """Every row needs a non-empty string id: splits, dedup and lineage refer to rows by id."""
    value = row.get("id")
    if not isinstance(value, str) or not value.strip():
        return Rejection("missing_id", f"'id' must be a non-empty string, got {value!r}")
    return None


def check_created_at(row: dict[str, Any]) -> Rejection | None:
    """The time split needs a timezone-aware timestamp on every row."""
    value = row.get("created_at")
    if not isinstance(value, datetime):
        return Rejection("missing_created_at", f"'created_at' must be a timestamp, got {value!r}")
    if value.tzinfo is None:
        return Rejection("naive_created_at", f"'created_at' {value.isoformat()} has no time zone")
    return None


def check_messages(row: dict[str, Any]) -> Rejection | None:
    """``messages`` is a non-empty list of ``{role, content, weight, tool_calls}`` objects: string role and
    content, ``tool_calls`` null or JSON text of a non-empty list (assistant turns only), ``weight`` null or
    a number >= 0."""
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        return Rejection("missing_messages", f"'messages' must be a non-empty list, got {messages!r:.80}")
    for turn, message in enumerate(messages, start=1):
        if not isinstance(message, dict):
            return Rejection(
                "malformed_message", f"turn {turn} is {type(message).__name__}, expected an object"
            )
        if not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
            return Rejection("malformed_message", f"turn {turn} needs string 'role' and 'content'")
        weight = message.get("weight")
        if weight is not None and (
            isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0
        ):
            return Rejection(
                "malformed_message", f"turn {turn} has weight {weight!r}; use a number >= 0 or null"
            )
        calls = message.get("tool_calls")
        if calls is not None and not _is_call_list(calls):
            return Rejection(
                "malformed_message",
                f"turn {turn} tool_calls must be JSON text of a non-empty list, got {calls!r:.80}",
            )
        if calls is not None and message["role"] != "assistant":
            return Rejection(
                "malformed_message",
                f"turn {turn} ({message['role']}) has tool_calls; only assistant turns call tools",
            )
    return None


def _is_call_list(calls: object) -> bool:
    if not isinstance(calls, str):
        return False
    try:
        parsed = json.loads(calls)
    except json.JSONDecodeError:
        return False
    return isinstance(parsed, list) and bool(parsed) and all(isinstance(call, dict) for call in parsed)


def _calls_tools(message: dict[str, Any]) -> bool:
    return message["role"] == "assistant" and message.get("tool_calls") is not None


def check_roles(row: dict[str, Any]) -> Rejection | None:
    """Roles are known, system only opens a conversation, there is a user turn and an assistant ends it, and
    a tool turn answers a tool call: the turn before it (other tool turns aside) is an assistant turn with
    tool_calls."""
    messages = row["messages"]
    calling = False
    for turn, message in enumerate(messages, start=1):
        role = message["role"]
        if role not in ROLES:
            return Rejection(
                "invalid_role", f"turn {turn} has role {role!r}; allowed roles are {', '.join(ROLES)}"
            )
        if role == "system" and turn != 1:
            return Rejection("misplaced_system", f"turn {turn} is a system turn; only the first turn may be")
        if role == "tool" and not calling:
            return Rejection(
                "misplaced_tool",
                f"turn {turn} is a tool turn, but no assistant turn with tool_calls comes before it",
            )
        if role != "tool":
            calling = _calls_tools(message)
    roles = [message["role"] for message in messages]
    if "user" not in roles:
        return Rejection("missing_user_turn", "the conversation has no user turn")
    if roles[-1] != "assistant":
        return Rejection(
            "missing_assistant_turn",
            f"the last turn is {roles[-1]!r}; a training example must end with an assistant answer",
        )
    return None


def check_trained_turn(row: dict[str, Any]) -> Rejection | None:
    """At least one assistant turn must be trained: ``weight`` null or > 0. With every answer at weight 0
    the row is context only, no token carries loss, and it would take a training slot for nothing (the
    per-turn weight of LLaMA-Factory and axolotl; see assets/shared/chat.py)."""
    answers = [m for m in row["messages"] if m["role"] == "assistant"]
    if any(m.get("weight") is None or m["weight"] > 0 for m in answers):
        return None
    return Rejection(
        "no_trained_turn",
        f"all {len(answers)} assistant turns have weight 0, so nothing in the row is trained; "
        "give the answer to learn weight 1 (or null), or remove the row",
    )


def check_empty_content(row: dict[str, Any]) -> Rejection | None:
    """No turn may be blank: an empty prompt or answer teaches the model nothing useful. An assistant turn
    that calls tools may be empty: the call is its content."""
    for turn, message in enumerate(row["messages"], start=1):
        if not message["content"].strip() and not _calls_tools(message):
            return Rejection("empty_content", f"turn {turn} ({message['role']}) is empty after stripping")
    return None


def check_garbage_characters(row: dict[str, Any]) -> Rejection | None:
    """Reject control characters other than newline/tab and the Unicode replacement character."""
    for turn, message in enumerate(row["messages"], start=1):
        content = message["content"]
        if _REPLACEMENT_CHARACTER in content:
            position = content.index(_REPLACEMENT_CHARACTER)
            return Rejection(
                "replacement_character",
                f"turn {turn} contains U+FFFD at character {position}: the text was mis-decoded upstream",
            )
        for position, char in enumerate(content):
            if char not in _ALLOWED_CONTROLS and unicodedata.category(char) == "Cc":
                return Rejection(
                    "control_characters",
                    f"turn {turn} contains control character U+{ord(char):04X} at character {position}",
                )
    return None


def make_response_length_check(min_response_chars: int) -> RowFilter:
    """Every assistant answer must have at least ``min_response_chars`` characters after stripping."""

    def check_response_length(row: dict[str, Any]) -> Rejection | None:
        for turn, message in enumerate(row["messages"], start=1):
            length = len(message["content"].strip())
            # a tool call is an answer of its own, whatever text comes with it
            if message["role"] == "assistant" and length < min_response_chars and not _calls_tools(message):
                return Rejection(
                    "short_response",
                    f"assistant turn {turn} has {length} characters; "
                    f"clean.min_response_chars is {min_response_chars}",
                )
        return None

    return check_response_length


def row_filters(*, min_response_chars: int) -> list[RowFilter]:
    """The validate-stage filters in order; structural checks come first so later ones can trust shape."""
    return [
        check_id,
        check_created_at,
        check_messages,
        check_roles,
        check_trained_turn,
        check_empty_content,
        check_garbage_characters,
        make_response_length_check(min_response_chars),
    ]


def validate_row(row: dict[str, Any], filters: list[RowFilter]) -> Rejection | None:
    """Run ``filters`` in order and return the first rejection, or ``None`` when the row passes all."""
    for row_filter in filters:
        verdict = row_filter(row)
        if verdict is not None:
            return verdict
    return None


def find_reused_ids(rows: Sequence[dict[str, Any]]) -> dict[int, Rejection]:
    """Reject every row whose id an earlier row already has: rows are referred to by id downstream.

    Shapes: valid rows in file order in, ``{position: Rejection}`` out, ``duplicate_of`` the first row's id.
    """
    first_with_id: dict[str, int] = {}
    rejections: dict[int, Rejection] = {}
    for position, row in enumerate(rows):
        first_position = first_with_id.setdefault(row["id"], position)
        if first_position != position:
            first = rows[first_position]
            why = f"the id is already used by the row at line {first.get('source_line')}"
            rejections[position] = Rejection("duplicate_id", why, duplicate_of=first["id"])
    return rejections
