"""A row's conversation as canonical messages ``{role, content, weight, tool_calls}``.

Layouts: alpaca (``instruction``, ``input``, ``output``, and LLaMA-Factory's ``history`` of earlier
``[prompt, answer]`` pairs); chat ``messages`` of ``{role, content}``; ShareGPT ``conversations`` of
``{from, value}``, whose ``function_call`` turns become assistant turns with ``tool_calls`` (content "")
and whose ``observation`` turns become ``tool`` turns; OpenAI tool calls (an assistant turn with
``tool_calls`` and ``content: null``, then ``tool`` turns; a tool turn's ``tool_call_id`` is not kept, the
canonical message has no field for it), and OpenAI content parts (a list of ``{"type": "text", "text"}``
objects, joined with a line break; a part of another type rejects the row). A top-level ``system`` field
becomes the first (system) turn in every layout. Tool calls are stored as JSON text in the OpenAI shape
(``[{"type": "function", "function": {"name": ..., "arguments": {...}}}]``), and a top-level ``tools``
list as JSON text in the ``tools`` column. Values follow the coercion rule of :mod:`assets.ingest.fields`.
Framework-free.
"""

from __future__ import annotations

from typing import Any

from assets.ingest.fields import (
    RowError,
    json_structure,
    looks_like_json,
    optional_text,
    required_text,
    to_json_text,
    turn_weight,
)
from assets.ingest.settings import IngestOptions

CHAT_KEYS = ("messages", "conversations")
ALPACA_KEYS = ("instruction", "input", "output")
# Role names as exports spell them -> the canonical role, or ``function_call`` (an assistant tool call).
ROLE_ALIASES = {
    "system": "system",
    "user": "user",
    "human": "user",
    "prompter": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "tool": "tool",
    "observation": "tool",
    "function": "tool",
    "ipython": "tool",
    "function_call": "function_call",
    "tool_call": "function_call",
}
Message = dict[str, Any]


def message(
    role: str, content: str, *, weight: float | None = None, tool_calls: str | None = None
) -> Message:
    """A canonical message; every message has the same four keys."""
    return {"role": role, "content": content, "weight": weight, "tool_calls": tool_calls}


def read_messages(value: dict[str, Any], options: IngestOptions) -> list[Message]:
    """The row's conversation, its top-level ``system`` first; raises :class:`RowError`."""
    # a null column is absent: Parquet files that mix both layouts have nulls in the other one's columns
    chat_key = next((k for k in CHAT_KEYS if value.get(k) is not None), None)
    if chat_key is not None:
        messages, where = _chat_messages(value[chat_key], chat_key, options), chat_key
    elif any(value.get(k) is not None for k in ALPACA_KEYS):
        messages, where = _alpaca_messages(value), "instruction"
    elif any(k in value for k in CHAT_KEYS):
        chat_key = next(k for k in CHAT_KEYS if k in value)
        raise RowError("missing_field", f"'{chat_key}' is missing or empty")
    elif any(k in value for k in ALPACA_KEYS):
        messages, where = _alpaca_messages(value), "instruction"
    else:
        keys = ", ".join(sorted(map(str, value))) or "none"
        raise RowError(
            "unknown_format",
            f"row has neither 'messages'/'conversations' nor 'instruction'/'output' (its keys: {keys}); "
            "use a supported layout, or name your columns in data.columns",
        )
    messages = _with_system(messages, optional_text(value, "system"), where)
    check_structure(messages, where)
    return messages


def read_tools(value: dict[str, Any]) -> str | None:
    """The row's tool definitions as JSON text of a list in the OpenAI shape, or None when it has none."""
    item = value.get("tools")
    if item is None or (isinstance(item, str) and not item.strip()):
        return None
    tools = json_structure(item, "'tools'")
    if isinstance(tools, dict):
        tools = [tools]
    if not isinstance(tools, list):
        raise RowError(
            "wrong_type", f"'tools' must be a list of tool definitions, got {type(tools).__name__}"
        )
    result = []
    for number, tool in enumerate(tools, start=1):
        if isinstance(tool, dict) and isinstance(tool.get("type"), str):
            result.append(tool)
        elif isinstance(tool, dict) and isinstance(tool.get("name"), str) and tool["name"].strip():
            # LLaMA-Factory and glaive write the bare function; the OpenAI shape wraps it
            result.append({"type": "function", "function": tool})
        else:
            raise RowError(
                "bad_tools",
                f"'tools' item {number} must be a function definition with a 'name' (or an OpenAI "
                f"tool with a 'type'), got {str(tool)[:80]!r}",
            )
    return to_json_text(result) if result else None


def check_structure(messages: list[Message], key: str) -> None:
    """System only first; a user and an assistant turn; an assistant turn last; a tool turn only after
    an assistant turn that calls tools (other tool turns may come between: parallel calls)."""
    roles = [m["role"] for m in messages]
    if "system" in roles[1:]:
        number = roles.index("system", 1) + 1
        raise RowError(
            "bad_role", f"'{key}' turn {number} is a system turn; only the first turn may be system"
        )
    calling = False
    for number, turn in enumerate(messages, start=1):
        if turn["role"] == "tool" and not calling:
            raise RowError(
                "bad_structure",
                f"'{key}' turn {number} is a tool turn, but the turn before it is not an assistant turn "
                "with tool_calls; a tool turn answers a tool call",
            )
        if turn["role"] != "tool":
            calling = turn["role"] == "assistant" and turn["tool_calls"] is not None
    if "user" not in roles or "assistant" not in roles:
        raise RowError(
            "bad_structure", f"'{key}' needs at least one user and one assistant turn, got {roles}"
        )
    if roles[-1] != "assistant":
        raise RowError(
            "bad_structure", f"'{key}' must end with an assistant turn, the last one is {roles[-1]}"
        )


def _with_system(messages: list[Message], system: str | None, key: str) -> list[Message]:
    if system is None:
        return messages
    if messages and messages[0]["role"] == "system":
        if messages[0]["content"].strip() == system.strip():
            return messages
        raise RowError(
            "conflicting_system",
            f"the row has a 'system' field and its '{key}' open with a different system turn; keep one",
        )
    return [message("system", system), *messages]


def _alpaca_messages(value: dict[str, Any]) -> list[Message]:
    instruction = required_text(value, "instruction")
    extra = optional_text(value, "input")
    output = required_text(value, "output")
    # the optional input is the material the instruction refers to; a blank line keeps them apart
    prompt = f"{instruction}\n\n{extra}" if extra is not None else instruction
    return [*_history(value), message("user", prompt), message("assistant", output)]


def _history(value: dict[str, Any]) -> list[Message]:
    """LLaMA-Factory's alpaca ``history``: earlier ``[prompt, answer]`` pairs, oldest first."""
    item = value.get("history")
    if item is None or (isinstance(item, str) and not item.strip()):
        return []
    pairs = json_structure(item, "'history'")
    if not isinstance(pairs, list):
        raise RowError(
            "wrong_type", f"'history' must be a list of [prompt, answer] pairs, got {type(pairs).__name__}"
        )
    messages = []
    for number, pair in enumerate(pairs, start=1):
        if (
            not isinstance(pair, list | tuple)
            or len(pair) != 2
            or not all(isinstance(text, str) and text.strip() for text in pair)
        ):
            raise RowError(
                "wrong_type",
                f"'history' item {number} must be a [prompt, answer] pair of texts, got {pair!r:.80}",
            )
        messages += [message("user", pair[0]), message("assistant", pair[1])]
    return messages


def _chat_messages(turns: object, key: str, options: IngestOptions) -> list[Message]:
    if looks_like_json(turns, "["):
        turns = json_structure(turns, f"'{key}'")
    if turns is None or (isinstance(turns, list) and not turns):
        raise RowError("missing_field", f"'{key}' is missing or empty")
    if not isinstance(turns, list):
        raise RowError(
            "wrong_type",
            f"'{key}' must be a list of turns, got {type(turns).__name__} (JSON text of a list is read too)",
        )
    return [_turn(turn, number, key, options) for number, turn in enumerate(turns, start=1)]


def _turn(turn: object, number: int, key: str, options: IngestOptions) -> Message:
    where = f"'{key}' turn {number}"
    if not isinstance(turn, dict):
        raise RowError(
            "wrong_type", f"{where} must be an object with role and content, got {type(turn).__name__}"
        )
    names = options.column_map
    # ShareGPT exports spell the pair {from, value}
    role = _first(turn, names.get("role"), "role", "from")
    content = _first(turn, names.get("content"), "content", "value")
    raw_role = role.strip().lower() if isinstance(role, str) else None
    target = None if raw_role is None else (options.role_map.get(raw_role) or ROLE_ALIASES.get(raw_role))
    if target is None:
        raise RowError(
            "bad_role",
            f"{where} has role {role!r}; use system, user, assistant or tool (or an alias such as human, "
            "gpt, function_call, observation), or name yours in data.roles",
        )
    weight = turn_weight(turn, where, names.get("weight", "weight"))
    if target == "function_call":
        # ShareGPT: the value is the call itself, {"name", "arguments"} or a list of them
        if content is None or (isinstance(content, str) and not content.strip()):
            raise RowError("bad_tool_call", f"{where} ({role}) holds no tool call")
        calls = _tool_calls(json_structure(content, f"{where} ({role})", reason="bad_tool_call"), where)
        return message("assistant", "", weight=weight, tool_calls=calls)
    tool_calls = _first(turn, names.get("tool_calls"), "tool_calls", "function_call")
    if target == "assistant" and tool_calls is not None and tool_calls != []:
        calls = _tool_calls(json_structure(tool_calls, f"{where} tool_calls", reason="bad_tool_call"), where)
        if _is_content_parts(content):
            content = _joined_text_parts(content, where)
        if content is not None and not isinstance(content, str):
            raise RowError("wrong_type", f"{where} content must be a string, got {type(content).__name__}")
        return message("assistant", content or "", weight=weight, tool_calls=calls)
    if _is_content_parts(content):
        content = _joined_text_parts(content, where)
    if target == "tool" and isinstance(content, dict | list):
        content = to_json_text(content)
    if content is None or (isinstance(content, str) and not content.strip()):
        raise RowError("empty_content", f"{where} ({target}) has no content")
    if not isinstance(content, str):
        raise RowError("wrong_type", f"{where} content must be a string, got {type(content).__name__}")
    return message(target, content, weight=weight)


# OpenAI's chat format lets a turn's content be a list of typed parts; text parts are joined with a line
# break, as vLLM's chat-message parser does, so parts written as separate paragraphs or lines stay apart
TEXT_PART_SEPARATOR = "\n"


def _is_content_parts(content: object) -> bool:
    """Whether ``content`` is OpenAI content parts: a non-empty list of objects each with a ``type``."""
    return (
        isinstance(content, list)
        and bool(content)
        and all(isinstance(part, dict) and "type" in part for part in content)
    )


def _joined_text_parts(parts: list[dict[str, Any]], where: str) -> str:
    """The text of OpenAI content parts (``[{"type": "text", "text": ...}, ...]``) joined with
    :data:`TEXT_PART_SEPARATOR`. Raises :class:`RowError` ``unsupported_content_part`` naming the type of
    a part that is not text (image_url, input_audio, file ...): the pipeline trains on text only."""
    texts = []
    for number, part in enumerate(parts, start=1):
        kind = part["type"]
        if kind != "text":
            raise RowError(
                "unsupported_content_part",
                f"{where} content part {number} has type {kind!r}; only text parts "
                '({"type": "text", "text": ...}) can be trained on: drop the row or the part',
            )
        text = part.get("text")
        if not isinstance(text, str):
            raise RowError(
                "wrong_type",
                f"{where} content part {number} must have a string 'text', got {type(text).__name__}",
            )
        texts.append(text)
    return TEXT_PART_SEPARATOR.join(texts)


def _first(turn: dict[str, Any], *keys: str | None) -> Any:
    """The first non-null value of ``keys`` in ``turn`` (None keys are skipped): a dataset whose turns mix
    layouts (Parquet, a saved dataset) has every key in every turn, null where the layout lacks it."""
    for key in keys:
        if key is not None and turn.get(key) is not None:
            return turn[key]
    return None


def _tool_calls(value: object, where: str) -> str:
    """JSON text of the calls in the OpenAI shape, from one call or a list of calls in either shape."""
    calls = value if isinstance(value, list) else [value]
    if not calls:
        raise RowError("bad_tool_call", f"{where} has an empty list of tool calls")
    return to_json_text([_tool_call(call, where, number) for number, call in enumerate(calls, start=1)])


def _tool_call(call: object, where: str, number: int) -> dict[str, Any]:
    if not isinstance(call, dict):
        raise RowError(
            "bad_tool_call", f"{where} tool call {number} must be an object, got {type(call).__name__}"
        )
    function = call.get("function") if isinstance(call.get("function"), dict) else call
    name = function.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RowError("bad_tool_call", f"{where} tool call {number} has no function name")
    arguments = function.get("arguments", function.get("parameters"))
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        arguments = {}
    arguments = json_structure(arguments, f"{where} tool call {number} arguments", reason="bad_tool_call")
    if not isinstance(arguments, dict):
        raise RowError(
            "bad_tool_call",
            f"{where} tool call {number} arguments must be a JSON object, got {type(arguments).__name__}",
        )
    normalized: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if isinstance(call.get("id"), str) and call["id"].strip():
        normalized = {"id": call["id"], **normalized}
    return normalized
