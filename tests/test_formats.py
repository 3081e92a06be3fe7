"""Input formats: every layout a user's data may come in, ending in the same canonical messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assets.ingest.normalize import normalize_file, normalize_record
from assets.ingest.readers import IngestError, RawRecord, read_records, row_to_raw
from assets.ingest.settings import IngestOptions
from assets.shared.schema import MESSAGE_KEYS, raw_features, to_dataset

SHARED_CASES = Path(__file__).resolve().parents[2] / "shared" / "cases"
WHEN = "2025-04-01T10:00:00Z"


def turn(
    role: str, content: str, *, weight: float | None = None, tool_calls: object = None
) -> dict[str, Any]:
    """A canonical message; ``tool_calls`` given as a structure is stored as its JSON text."""
    calls = None if tool_calls is None else json.dumps(tool_calls, ensure_ascii=False)
    return {"role": role, "content": content, "weight": weight, "tool_calls": calls}


def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def normalize(value: object, options: IngestOptions | None = None, line: int = 3) -> dict[str, Any]:
    record = RawRecord(line, row_to_raw(value), value)
    return normalize_record(
        record, source_file="in.jsonl", max_chars=8000, options=options or IngestOptions()
    )


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


QA = [turn("user", "Q"), turn("assistant", "A")]

# (name, row, expected messages, expected tools)
GOOD_LAYOUTS: list[tuple[str, dict[str, Any], list[dict[str, Any]], object]] = [
    ("alpaca", {"instruction": "Q", "input": "", "output": "A"}, QA, None),
    (
        "alpaca with input, system and history",
        {
            "system": "S",
            "instruction": "Q2",
            "input": "ctx",
            "output": "A2",
            "history": [["Q1", "A1"]],
        },
        [
            turn("system", "S"),
            turn("user", "Q1"),
            turn("assistant", "A1"),
            turn("user", "Q2\n\nctx"),
            turn("assistant", "A2"),
        ],
        None,
    ),
    (
        "alpaca history as JSON text",
        {"instruction": "Q2", "output": "A2", "history": '[["Q1", "A1"]]'},
        [turn("user", "Q1"), turn("assistant", "A1"), turn("user", "Q2"), turn("assistant", "A2")],
        None,
    ),
    (
        "chat messages",
        {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},
        QA,
        None,
    ),
    (
        "chat messages with a top-level system",
        {
            "system": "S",
            "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
        },
        [turn("system", "S"), *QA],
        None,
    ),
    (
        "system field equal to the system turn is kept once",
        {
            "system": "S",
            "messages": [
                {"role": "system", "content": "S"},
                {"role": "user", "content": "Q"},
                {"role": "assistant", "content": "A"},
            ],
        },
        [turn("system", "S"), *QA],
        None,
    ),
    (
        "sharegpt with a top-level system",
        {"system": "S", "conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]},
        [turn("system", "S"), *QA],
        None,
    ),
    (
        "sharegpt function_call, observation and tools (LLaMA-Factory glaive layout)",
        {
            "conversations": [
                {"from": "human", "value": "Weather in Oslo?"},
                {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Oslo"}}'},
                {"from": "observation", "value": '{"temp": 3}'},
                {"from": "gpt", "value": "3 degrees."},
            ],
            "tools": '[{"name": "weather", "description": "Weather now", "parameters": {"type": "object"}}]',
        },
        [
            turn("user", "Weather in Oslo?"),
            turn("assistant", "", tool_calls=[call("weather", {"city": "Oslo"})]),
            turn("tool", '{"temp": 3}'),
            turn("assistant", "3 degrees."),
        ],
        [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "description": "Weather now",
                    "parameters": {"type": "object"},
                },
            }
        ],
    ),
    (
        "sharegpt parallel calls in one function_call turn, tools as a list",
        {
            "conversations": [
                {"from": "human", "value": "Oslo and Rome?"},
                {
                    "from": "function_call",
                    "value": json.dumps(
                        [{"name": "w", "arguments": {"c": "Oslo"}}, {"name": "w", "arguments": {"c": "Rome"}}]
                    ),
                },
                {"from": "observation", "value": "3"},
                {"from": "observation", "value": "15"},
                {"from": "gpt", "value": "3 and 15."},
            ],
            "tools": [{"type": "function", "function": {"name": "w"}}],
        },
        [
            turn("user", "Oslo and Rome?"),
            turn("assistant", "", tool_calls=[call("w", {"c": "Oslo"}), call("w", {"c": "Rome"})]),
            turn("tool", "3"),
            turn("tool", "15"),
            turn("assistant", "3 and 15."),
        ],
        [{"type": "function", "function": {"name": "w"}}],
    ),
    (
        "openai tool_calls with content null, arguments as JSON text, a tool turn",
        {
            "messages": [
                {"role": "user", "content": "10 km in miles?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "convert", "arguments": '{"km": 10}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "6.21"},
                {"role": "assistant", "content": "About 6.21 miles."},
            ]
        },
        [
            turn("user", "10 km in miles?"),
            turn("assistant", "", tool_calls=[{"id": "call_1", **call("convert", {"km": 10})}]),
            turn("tool", "6.21"),
            turn("assistant", "About 6.21 miles."),
        ],
        None,
    ),
    (
        "legacy openai function_call and function role, a tool result as an object",
        {
            "messages": [
                {"role": "user", "content": "Time?"},
                {"role": "assistant", "content": "Let me look.", "function_call": {"name": "now"}},
                {"role": "function", "name": "now", "content": {"time": "14:05"}},
                {"role": "assistant", "content": "14:05."},
            ]
        },
        [
            turn("user", "Time?"),
            turn("assistant", "Let me look.", tool_calls=[call("now", {})]),
            turn("tool", '{"time": "14:05"}'),
            turn("assistant", "14:05."),
        ],
        None,
    ),
    (
        "messages as JSON text in a column",
        {"messages": json.dumps([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}])},
        QA,
        None,
    ),
    (
        "conversations as JSON text in a column",
        {"conversations": json.dumps([{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}])},
        QA,
        None,
    ),
    (
        "per-turn weight, train and loss flags",
        {
            "conversations": [
                {"from": "human", "value": "Q1"},
                {"from": "gpt", "value": "A1", "weight": 0},
                {"from": "human", "value": "Q2"},
                {"from": "gpt", "value": "A2", "train": False},
                {"from": "human", "value": "Q3"},
                {"from": "gpt", "value": "A3", "loss": True},
                {"from": "human", "value": "Q4"},
                {"from": "gpt", "value": "A4", "weight": 0.5},
            ]
        },
        [
            turn("user", "Q1"),
            turn("assistant", "A1", weight=0.0),
            turn("user", "Q2"),
            turn("assistant", "A2", weight=0.0),
            turn("user", "Q3"),
            turn("assistant", "A3", weight=1.0),
            turn("user", "Q4"),
            turn("assistant", "A4", weight=0.5),
        ],
        None,
    ),
]


@pytest.mark.parametrize(
    ("value", "messages", "tools"),
    [case[1:] for case in GOOD_LAYOUTS],
    ids=[case[0] for case in GOOD_LAYOUTS],
)
def test_layouts_become_canonical_messages(
    value: dict[str, Any], messages: list[dict[str, Any]], tools: object
) -> None:
    row = normalize({"id": "r1", "created_at": WHEN, **value})
    assert row["error"] is None, row["error"]
    assert row["messages"] == messages
    assert all(list(message) == list(MESSAGE_KEYS) for message in row["messages"])
    assert row["tools"] == (None if tools is None else json.dumps(tools))
    # and the row fits the raw schema as it is
    assert to_dataset([row], raw_features())[0]["messages"] == messages


BAD_LAYOUTS: list[tuple[str, dict[str, Any], str]] = [
    (
        "tool turn without a call before it",
        {
            "messages": [
                {"role": "user", "content": "Q"},
                {"role": "tool", "content": "x"},
                {"role": "assistant", "content": "A"},
            ]
        },
        "bad_structure: 'messages' turn 2 is a tool turn, but the turn before it is not an assistant turn",
    ),
    (
        "function_call that is not JSON",
        {
            "conversations": [
                {"from": "human", "value": "Q"},
                {"from": "function_call", "value": "weather(Oslo)"},
            ]
        },
        "bad_tool_call: 'conversations' turn 2 (function_call) is text but not valid JSON",
    ),
    (
        "function_call without a name",
        {
            "conversations": [
                {"from": "human", "value": "Q"},
                {"from": "function_call", "value": '{"arguments": {}}'},
            ]
        },
        "bad_tool_call: 'conversations' turn 2 tool call 1 has no function name",
    ),
    (
        "tool call arguments that are not an object",
        {
            "messages": [
                {"role": "user", "content": "Q"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}],
                },
            ]
        },
        "bad_tool_call: 'messages' turn 2 tool call 1 arguments must be a JSON object, got list",
    ),
    (
        "assistant turn with neither content nor tool calls",
        {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": None}]},
        "empty_content: 'messages' turn 2 (assistant) has no content",
    ),
    (
        "system field differing from the system turn",
        {
            "system": "S1",
            "messages": [
                {"role": "system", "content": "S2"},
                {"role": "user", "content": "Q"},
                {"role": "assistant", "content": "A"},
            ],
        },
        "conflicting_system: the row has a 'system' field and its 'messages' open with a different system",
    ),
    (
        "tools that are not JSON",
        {**dict(instruction="Q", output="A"), "tools": "[{oops"},
        "malformed_json: 'tools' is text",
    ),
    (
        "tools item without a name",
        {**dict(instruction="Q", output="A"), "tools": [{"description": "x"}]},
        "bad_tools: 'tools' item 1",
    ),
    (
        "negative weight",
        {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A", "weight": -1}]},
        "wrong_type: 'conversations' turn 2 'weight' must be a number >= 0",
    ),
    (
        "string train flag",
        {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A", "train": "no"}]},
        "wrong_type: 'conversations' turn 2 'train' must be true or false",
    ),
    (
        "messages JSON text that is broken",
        {"messages": '[{"role": "user"'},
        "malformed_json: 'messages' is text but not valid JSON",
    ),
    (
        "history that is not pairs",
        {"instruction": "Q", "output": "A", "history": [["only one"]]},
        "wrong_type: 'history' item 1 must be a [prompt, answer] pair",
    ),
]


@pytest.mark.parametrize(
    ("value", "error"), [case[1:] for case in BAD_LAYOUTS], ids=[case[0] for case in BAD_LAYOUTS]
)
def test_bad_layouts_name_the_turn_or_field(value: dict[str, Any], error: str) -> None:
    row = normalize({"id": "r1", "created_at": WHEN, **value})
    assert row["error"] is not None and row["error"].startswith(error), row["error"]


# --- mixed value types: one rule (assets/ingest/fields.py) ---------------------------------------------


MIXED: list[tuple[str, dict[str, Any], str | None, object]] = [
    # (name, fields over an alpaca row, error prefix or None, (column, expected value) when kept)
    ("integer id becomes text", {"id": 17}, None, ("id", "17")),
    ("text id kept", {"id": " a-1 "}, None, ("id", "a-1")),
    ("integer group id becomes text", {"group_id": 4}, None, ("group_id", "4")),
    ("float id is refused", {"id": 1.5}, "wrong_type: 'id' must be a string or an integer", None),
    (
        "number where text belongs is refused",
        {"output": 5},
        "wrong_type: 'output' must be a string, got int",
        None,
    ),
    (
        "boolean where text belongs is refused",
        {"instruction": True},
        "wrong_type: 'instruction' must be a string",
        None,
    ),
    ("number category is refused", {"category": 3}, "wrong_type: 'category' must be a string", None),
    ("epoch seconds", {"created_at": 1743501600}, None, ("created_at", "2025-04-01T10:00:00+00:00")),
    (
        "epoch milliseconds as text",
        {"created_at": "1743501600000"},
        None,
        ("created_at", "2025-04-01T10:00:00+00:00"),
    ),
    (
        "ISO text with an offset",
        {"created_at": "2025-04-01T12:00:00+02:00"},
        None,
        ("created_at", "2025-04-01T10:00:00+00:00"),
    ),
    (
        "blank text is absent",
        {"input": "  "},
        None,
        ("messages", [turn("user", "Q"), turn("assistant", "A")]),
    ),
]


@pytest.mark.parametrize(
    ("fields", "error", "expected"), [case[1:] for case in MIXED], ids=[case[0] for case in MIXED]
)
def test_mixed_value_types_follow_one_rule(
    fields: dict[str, Any], error: str | None, expected: object
) -> None:
    row = normalize({"id": "r1", "created_at": WHEN, "instruction": "Q", "output": "A", **fields})
    if error is not None:
        assert row["error"] is not None and row["error"].startswith(error), row["error"]
        return
    assert row["error"] is None, row["error"]
    column, value = expected  # type: ignore[misc]
    found = row[column].isoformat() if column == "created_at" else row[column]
    assert found == value


def test_a_file_mixing_types_in_one_column_reads_every_row_by_that_rule(tmp_path: Path) -> None:
    rows = [
        {"id": 1, "created_at": 1743501600, "instruction": "Q1", "output": "A1"},
        {"id": "two", "created_at": "2025-04-02T10:00:00Z", "instruction": "Q2", "output": "A2"},
        {"id": 3, "created_at": "1743674400000", "instruction": "Q3", "output": 3},
    ]
    result = normalize_file(write_jsonl(tmp_path / "mixed.jsonl", rows), max_chars=8000)
    assert [r["id"] for r in result] == ["1", "two", "3"]
    assert [r["created_at"].day for r in result] == [1, 2, 3]
    assert [r["error"] for r in result[:2]] == [None, None]
    assert result[2]["error"] == "wrong_type: 'output' must be a string, got int"


# --- configurable columns and roles ----------------------------------------------------------------------


def test_columns_and_roles_are_configurable(tmp_path: Path) -> None:
    options = IngestOptions(
        columns=["id=uid2", "instruction=question", "output=answer", "created_at=date", "system=persona"],
        roles=["user=customer", "assistant=agent"],
    )
    rows = [
        {
            "uid2": "q1",
            "question": "Q",
            "answer": "A",
            "date": WHEN,
            "persona": "Be kind.",
            "output": "ignored",
        },
        {
            "uid2": "q2",
            "date": WHEN,
            "messages": [{"speaker": "customer", "text": "Hi"}, {"speaker": "agent", "text": "Hello"}],
        },
    ]
    chat_options = IngestOptions(
        columns=[*options.columns, "role=speaker", "content=text"], roles=options.roles
    )
    first = normalize_file(write_jsonl(tmp_path / "a.jsonl", rows[:1]), max_chars=8000, options=options)[0]
    assert first["error"] is None and first["id"] == "q1"
    assert first["messages"] == [turn("system", "Be kind."), turn("user", "Q"), turn("assistant", "A")]
    second = normalize_file(
        write_jsonl(tmp_path / "b.jsonl", rows[1:]), max_chars=8000, options=chat_options
    )[0]
    assert second["error"] is None and second["messages"] == [turn("user", "Hi"), turn("assistant", "Hello")]
    # a mapped name replaces the canonical one: the stray 'output' column is not read
    assert first["messages"][-1]["content"] == "A"


def test_a_dialog_column_of_json_text_in_csv_is_read_through_the_mapping(tmp_path: Path) -> None:
    dialog = json.dumps([{"from": "human", "value": "Q, with a comma"}, {"from": "gpt", "value": "A"}])
    path = tmp_path / "rows.csv"
    path.write_text('key,dialog\nk1,"' + dialog.replace('"', '""') + '"\n', encoding="utf-8")
    options = IngestOptions(columns=["id=key", "messages=dialog"])
    [row] = normalize_file(path, max_chars=8000, options=options)
    assert row["error"] is None and row["id"] == "k1"
    assert row["messages"] == [turn("user", "Q, with a comma"), turn("assistant", "A")]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"columns": ["output"]}, "data.columns entry 'output' must be 'canonical=yours'"),
        ({"columns": ["answer=output"]}, "'answer' is not one of"),
        ({"columns": ["output=a", "output=b"]}, "data.columns maps 'output' twice"),
        ({"columns": ["output=a", "input=a"]}, "data.columns names 'a' twice"),
        (
            {"roles": ["narrator=bot"]},
            "'narrator' is not one of system, user, assistant, tool, function_call",
        ),
        ({"missing_created_at": "guess"}, "data.missing_created_at must be one of row_order, reject"),
        ({"row_order_start": "soon"}, "data.row_order_start is 'soon', which is not an ISO-8601"),
    ],
)
def test_bad_settings_name_the_setting(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="data\\.") as info:
        IngestOptions(**fields)
    assert message in str(info.value)


# --- a Hugging Face dataset saved with save_to_disk -----------------------------------------------------


def test_a_dataset_saved_to_disk_is_read_as_rows(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    alpaca = Dataset.from_list([{"instruction": f"Q{i}", "input": "", "output": f"A{i}"} for i in range(3)])
    alpaca.save_to_disk(str(tmp_path / "alpaca"))
    rows = normalize_file(tmp_path / "alpaca", max_chars=8000, source_file="data/alpaca")
    assert [r["error"] for r in rows] == [None] * 3
    assert [r["source_line"] for r in rows] == [1, 2, 3]
    assert rows[2]["messages"] == [turn("user", "Q2"), turn("assistant", "A2")]
    assert {r["source_file"] for r in rows} == {"data/alpaca"}
    assert [r["created_at_source"] for r in rows] == ["row_order"] * 3

    chat = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    splits = DatasetDict({"train": Dataset.from_list([chat]), "test": Dataset.from_list([chat, chat])})
    splits.save_to_disk(str(tmp_path / "splits"))
    records = read_records(tmp_path / "splits")
    assert [r.line for r in records] == [1, 2, 3]
    assert records[0].value == chat


def test_a_directory_that_is_no_saved_dataset_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(IngestError, match=r"nor a dataset written by Dataset\.save_to_disk"):
        read_records(tmp_path / "plain")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "state.json").write_text("{}", encoding="utf-8")
    with pytest.raises(IngestError, match="cannot be loaded"):
        read_records(broken)


# --- case 03: ShareGPT/chat rows with a system field, system turns and tool roles ------------------------

CASE_03 = [
    {
        "id": "s1",
        "created_at": "2025-04-01T10:00:00Z",
        "system": "Answer in exactly one short sentence.",
        "conversations": [
            {"from": "human", "value": "Why do leaves change colour in autumn?"},
            {"from": "gpt", "value": "Chlorophyll breaks down and reveals other pigments."},
        ],
    },
    {
        "id": "s2",
        "created_at": "2025-04-02T10:00:00Z",
        "system": "You are a pirate. Always talk like one.",
        "messages": [
            {"role": "user", "content": "How are you today?"},
            {"role": "assistant", "content": "Arr, fair winds and full sails, matey!"},
        ],
    },
    {
        "id": "s3",
        "created_at": "2025-04-03T10:00:00Z",
        "conversations": [
            {"from": "system", "value": "Reply only with a number."},
            {"from": "human", "value": "How many days are in a leap year?"},
            {"from": "gpt", "value": "366"},
        ],
    },
    {
        "id": "s4",
        "created_at": "2025-04-04T10:00:00Z",
        "tools": '[{"name": "get_time", "parameters": {}}]',
        "conversations": [
            {"from": "human", "value": "What time is it in Oslo?"},
            {"from": "function_call", "value": '{"name": "get_time", "arguments": {"city": "Oslo"}}'},
            {"from": "observation", "value": '{"time": "14:05"}'},
            {"from": "gpt", "value": "It is 14:05 in Oslo."},
        ],
    },
    {
        "id": "s5",
        "created_at": "2025-04-05T10:00:00Z",
        "messages": [
            {"role": "user", "content": "Convert 10 km to miles."},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"type": "function", "function": {"name": "convert", "arguments": '{"km": 10}'}}
                ],
            },
            {"role": "tool", "content": "6.21"},
            {"role": "assistant", "content": "10 km is about 6.21 miles."},
        ],
    },
    {
        "id": "s6",
        "created_at": "2025-04-06T10:00:00Z",
        "conversations": [
            {"from": "human", "value": "Name a mammal that can fly."},
            {"from": "gpt", "value": "The bat is a mammal that can fly."},
        ],
    },
    {
        "id": "s7",
        "created_at": "2025-04-07T10:00:00Z",
        "system": "You are a pirate. Always talk like one.",
        "instruction": "How are you today?",
        "input": "",
        "output": "Arr, fair winds and full sails, matey!",
    },
]
PIRATE = [
    turn("system", "You are a pirate. Always talk like one."),
    turn("user", "How are you today?"),
    turn("assistant", "Arr, fair winds and full sails, matey!"),
]
CASE_03_MESSAGES = {
    "s1": [
        turn("system", "Answer in exactly one short sentence."),
        turn("user", "Why do leaves change colour in autumn?"),
        turn("assistant", "Chlorophyll breaks down and reveals other pigments."),
    ],
    "s2": PIRATE,
    "s3": [
        turn("system", "Reply only with a number."),
        turn("user", "How many days are in a leap year?"),
        turn("assistant", "366"),
    ],
    "s4": [
        turn("user", "What time is it in Oslo?"),
        turn("assistant", "", tool_calls=[call("get_time", {"city": "Oslo"})]),
        turn("tool", '{"time": "14:05"}'),
        turn("assistant", "It is 14:05 in Oslo."),
    ],
    "s5": [
        turn("user", "Convert 10 km to miles."),
        turn("assistant", "", tool_calls=[call("convert", {"km": 10})]),
        turn("tool", "6.21"),
        turn("assistant", "10 km is about 6.21 miles."),
    ],
    "s6": [
        turn("user", "Name a mammal that can fly."),
        turn("assistant", "The bat is a mammal that can fly."),
    ],
    "s7": PIRATE,
}


def _check_case_03(path: Path) -> list[dict[str, Any]]:
    rows = normalize_file(path, max_chars=8000)
    assert [r["id"] for r in rows] == list(CASE_03_MESSAGES)
    assert [r["error"] for r in rows] == [None] * 7
    for row in rows:
        assert row["messages"] == CASE_03_MESSAGES[row["id"]], row["id"]
    assert rows[3]["tools"] == json.dumps(
        [{"type": "function", "function": {"name": "get_time", "parameters": {}}}]
    )
    assert [r["tools"] is None for r in rows] == [True, True, True, False, True, True, True]
    return rows


def test_case_03_system_field_and_tool_roles(tmp_path: Path) -> None:
    _check_case_03(write_jsonl(tmp_path / "input.jsonl", CASE_03))


def test_case_03_shared_input_matches_our_copy() -> None:
    path = SHARED_CASES / "03-sharegpt-system-and-tool-roles" / "input.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared cases ship only beside the team's checkout")
    _check_case_03(path)


def test_case_03_rows_pass_validation_and_the_same_system_prompt_makes_s7_a_duplicate_of_s2(
    tmp_path: Path,
) -> None:
    from assets.clean.filters import row_filters, validate_row
    from assets.shared.text import conversation_text

    rows = to_dataset(
        _check_case_03(write_jsonl(tmp_path / "input.jsonl", CASE_03)), raw_features()
    ).to_list()
    filters = row_filters(min_response_chars=2)
    assert [validate_row(row, filters) for row in rows] == [None] * 7
    texts = [conversation_text(row["messages"]) for row in rows]
    assert texts[6] == texts[1] and len(set(texts)) == 6


def test_parquet_turns_mixing_layouts_have_null_keys_that_are_skipped(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {"id": "a", "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},
        {"id": "b", "messages": [{"from": "human", "value": "Q2"}, {"from": "gpt", "value": "A2"}]},
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "mixed.parquet")
    records = read_records(tmp_path / "mixed.parquet")
    assert records[1].value["messages"][0] == {"role": None, "content": None, "from": "human", "value": "Q2"}
    result = normalize_file(tmp_path / "mixed.parquet", max_chars=8000)
    assert [r["error"] for r in result] == [None, None]
    assert result[1]["messages"] == [turn("user", "Q2"), turn("assistant", "A2")]


# --- OpenAI content parts --------------------------------------------------------------------------------


def test_openai_text_content_parts_are_joined_with_a_line_break() -> None:
    parts = [{"type": "text", "text": "First part."}, {"type": "text", "text": "Second part."}]
    row = normalize(
        {
            "id": "p1",
            "created_at": WHEN,
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                {"role": "user", "content": parts},
                {"role": "assistant", "content": None, "tool_calls": [call("add", {"a": 1})]},
                {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "2"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "It is 2."}]},
            ],
        }
    )
    assert row["error"] is None, row["error"]
    assert row["messages"] == [
        turn("system", "Be brief."),
        turn("user", "First part.\nSecond part."),
        turn("assistant", "", tool_calls=[call("add", {"a": 1})]),
        turn("tool", "2"),
        turn("assistant", "It is 2."),
    ]


@pytest.mark.parametrize("kind", ["image_url", "input_audio"])
def test_a_content_part_that_is_not_text_rejects_the_row_naming_its_type(kind: str) -> None:
    parts = [{"type": "text", "text": "What is this?"}, {"type": kind, kind: {"url": "x"}}]
    row = normalize(
        {
            "id": "p2",
            "created_at": WHEN,
            "messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": "A cat."}],
        }
    )
    assert row["error"] == (
        f"unsupported_content_part: 'messages' turn 1 content part 2 has type '{kind}'; only text parts "
        '({"type": "text", "text": ...}) can be trained on: drop the row or the part'
    )


def test_a_text_part_without_text_is_a_wrong_type() -> None:
    turns = [{"role": "user", "content": [{"type": "text"}]}, {"role": "assistant", "content": "A"}]
    row = normalize({"id": "p3", "created_at": WHEN, "messages": turns})
    assert row["error"] == (
        "wrong_type: 'messages' turn 1 content part 1 must have a string 'text', got NoneType"
    )
