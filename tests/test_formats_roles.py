"""The clean stage's role and structure rules for tool turns, and the schema check on the new message."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from assets.clean.filters import row_filters, validate_row
from assets.shared.schema import example_features, to_dataset

CALL = json.dumps([{"type": "function", "function": {"name": "f", "arguments": {}}}])


def m(role: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"role": role, "content": content, **extra}


def row(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"id": "r1", "created_at": datetime(2025, 1, 1, tzinfo=UTC), "messages": list(messages)}


Q = m("user", "Q")
A = m("assistant", "A1")
CALLS = m("assistant", "", tool_calls=CALL)
RESULT = m("tool", "1")

CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("tool call and answer", row(Q, CALLS, RESULT, A), None),
    (
        "parallel calls answered by two tool turns",
        row(Q, CALLS, RESULT, m("tool", "2"), A),
        None,
    ),
    (
        "a tool call with text beside it",
        row(Q, m("assistant", "Let me see.", tool_calls=CALL), RESULT, A),
        None,
    ),
    ("ending on a tool call", row(Q, CALLS), None),
    ("old two-key messages", row(Q, A), None),
    (
        "weights",
        row(m("user", "Q", weight=None), m("assistant", "A1", weight=0.0), Q, m("assistant", "A2")),
        None,
    ),
    ("only answer at weight 0", row(Q, m("assistant", "A1", weight=0.0)), "no_trained_turn"),
    ("tool turn after a user turn", row(Q, RESULT, A), "misplaced_tool"),
    ("tool turn after a plain answer", row(Q, m("assistant", "A0"), RESULT, A), "misplaced_tool"),
    ("tool turn first", row(RESULT, Q, A), "misplaced_tool"),
    ("empty answer without tool calls", row(Q, m("assistant", " ", tool_calls=None)), "empty_content"),
    ("empty tool result", row(Q, CALLS, m("tool", ""), A), "empty_content"),
    ("tool calls on a user turn", row(m("user", "Q", tool_calls=CALL), A), "malformed_message"),
    ("tool calls that are not JSON", row(Q, m("assistant", "", tool_calls="f()")), "malformed_message"),
    ("an empty list of tool calls", row(Q, m("assistant", "", tool_calls="[]")), "malformed_message"),
    ("a negative weight", row(Q, m("assistant", "A1", weight=-1.0)), "malformed_message"),
    ("a role ingestion should have mapped", row(Q, m("function_call", "{}"), A), "invalid_role"),
]


@pytest.mark.parametrize(("value", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_tool_turn_rules(value: dict[str, Any], reason: str | None) -> None:
    verdict = validate_row(value, row_filters(min_response_chars=2))
    assert (verdict.reason if verdict else None) == reason, verdict


def test_the_schema_check_accepts_tool_turns_and_the_new_columns() -> None:
    from assets.checks import REQUIRED_EXAMPLE, schema_problems

    example = {
        **row(Q, CALLS, RESULT, A),
        "tools": json.dumps([{"type": "function", "function": {"name": "f"}}]),
        "created_at_source": "row_order",
    }
    dataset = to_dataset([example], example_features())
    assert schema_problems(dataset, example_features(), REQUIRED_EXAMPLE) == []
    assert dataset[0]["messages"][1] == {
        "role": "assistant",
        "content": "",
        "weight": None,
        "tool_calls": CALL,
    }
    bad = to_dataset([row(Q, m("narrator", "A1"))], example_features())
    assert schema_problems(bad, example_features(), REQUIRED_EXAMPLE) == [
        "1 rows have a role other than system/user/assistant/tool"
    ]
