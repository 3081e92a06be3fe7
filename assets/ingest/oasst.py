"""OpenAssistant message trees (the oasst1/oasst2 "trees" export): one chat row per conversation.

A tree holds one prompt and its nested replies. Each row is a maximal conversation: a path from the root
to an assistant message that no later assistant message continues. A shorter path is a prefix of one of
these rows: with the loss on assistant turns only, it would train nothing that the longer row does not.
A tree with branches still yields several rows (sibling answers, diverging follow-ups); they share
prefixes and all carry the tree id as ``group_id``, which keeps a tree inside one split.

Only the shape of the tree is checked here: what is needed to walk it and find the conversations, and
the JSON type of every field a row is made of (a list where a string belongs makes the whole tree one
``malformed_tree`` row, never a traceback). The rows are plain chat rows, validated by
:mod:`assets.ingest.normalize` like any other row, so a text that is empty or too long, or a timestamp
string that does not parse, is reported on the conversations it spoils, not on the whole tree.
"""

from __future__ import annotations

import reprlib
from typing import Any

SOURCE = "oasst2"
# The keys of an expanded row that identify it within the export; ingestion keeps them as its ``raw``.
AUDIT_KEYS = ("message_tree_id", "message_ids")
ROLE_MAP = {"prompter": "user", "assistant": "assistant"}
# Keys every visited message must have (null counts as missing); their values must be strings.
REQUIRED_KEYS = ("message_id", "role", "text", "created_date")
# Keys a visited message may leave out or set to null, but otherwise must hold a string.
OPTIONAL_TEXT_KEYS = ("lang",)
# Moderation flags: a message is skipped, with everything below it, when deleted is true or review_result
# is false. Unreviewed messages (review_result null) are kept, as in the published oasst exports.
FLAG_KEYS = ("deleted", "review_result")
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60


class TreeError(ValueError):
    """A message tree whose shape cannot be walked; carries the ``reason: detail`` text of the row."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def is_message_tree(value: object) -> bool:
    """Whether a parsed row is an OpenAssistant message tree (it has ``message_tree_id`` and ``prompt``).

    The keys decide, not the type of ``prompt``: a tree with a broken prompt should be reported as a
    malformed tree, not as a row of unknown format.
    """
    return isinstance(value, dict) and "message_tree_id" in value and "prompt" in value


def expand_tree(value: dict[str, Any]) -> list[dict[str, Any]]:
    """One chat row per maximal conversation of the tree, in depth-first order (siblings in file order).

    A maximal conversation is the path from the root to an assistant message that has no assistant
    message below it (once skipped messages are left out), so every kept assistant message is in at least
    one row and no row is a prefix of another. Each row has ``id`` (the last message's id), ``messages``
    (prompter turns become user turns), ``created_at`` (the last message's ``created_date``, unparsed),
    ``lang`` (the root's), ``source``, ``group_id`` (the tree id) and the :data:`AUDIT_KEYS`. Deleted
    messages and messages that failed review are skipped with their replies; a prompter message nobody
    answered adds nothing. Returns an empty list when no conversation is left; raises :class:`TreeError`
    (reason ``malformed_tree``) when the tree cannot be walked.
    """
    tree_id = value.get("message_tree_id")
    if not isinstance(tree_id, str) or not tree_id.strip():
        raise TreeError("malformed_tree", f"'message_tree_id' must be a non-empty string, got {tree_id!r}")
    root = value.get("prompt")
    if not isinstance(root, dict):
        raise TreeError(
            "malformed_tree",
            f"tree {tree_id}: 'prompt' must be the root message object, got {type(root).__name__}",
        )
    # Paths to assistant messages in depth-first order, and whether a deeper assistant message continues
    # each one; a path is emitted only when nothing continues it.
    ends: list[tuple[dict[str, Any], ...]] = []
    continued: list[bool] = []
    # An explicit stack, not recursion: a very deep tree must not hit Python's recursion limit. Each entry
    # carries the position in ``ends`` of its nearest assistant ancestor (-1 for none).
    stack: list[tuple[object, str, tuple[dict[str, Any], ...], int]] = [(root, "prompt", (), -1)]
    while stack:
        item, where, ancestors, above = stack.pop()
        message = _as_message(item, where, tree_id)
        if _skipped(message, where, tree_id):
            continue
        _check_message(message, where, tree_id)
        path = (*ancestors, message)
        if message["role"] == "assistant":
            if above >= 0:
                continued[above] = True
            above = len(ends)
            ends.append(path)
            continued.append(False)
        replies = message.get("replies")
        if replies is None:
            continue
        if not isinstance(replies, list):
            raise TreeError(
                "malformed_tree",
                f"tree {tree_id}: {_at(where, message)} 'replies' must be a list, "
                f"got {type(replies).__name__}",
            )
        # reversed, so that the first reply is walked first
        for index in range(len(replies) - 1, -1, -1):
            stack.append((replies[index], f"{where}.replies[{index}]", path, above))
    return [
        _conversation(tree_id, root.get("lang"), path)
        for path, is_continued in zip(ends, continued, strict=True)
        if not is_continued
    ]


def _at(where: str, message: dict[str, Any]) -> str:
    """Where a message sits, for error details: its JSON path and, when readable, its id."""
    message_id = message.get("message_id")
    return f"message {where} ({message_id})" if isinstance(message_id, str) else f"message {where}"


def _as_message(item: object, where: str, tree_id: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise TreeError(
            "malformed_tree", f"tree {tree_id}: {where} must be a message object, got {type(item).__name__}"
        )
    return item


def _skipped(message: dict[str, Any], where: str, tree_id: str) -> bool:
    for key in FLAG_KEYS:
        flag = message.get(key)
        if flag is not None and not isinstance(flag, bool):
            raise TreeError(
                "malformed_tree",
                f"tree {tree_id}: {_at(where, message)} '{key}' must be true, false or null, got {flag!r}",
            )
    return message.get("deleted") is True or message.get("review_result") is False


def _check_message(message: dict[str, Any], where: str, tree_id: str) -> None:
    missing = [key for key in REQUIRED_KEYS if message.get(key) is None]
    if missing:
        names = ", ".join(f"'{key}'" for key in missing)
        raise TreeError("malformed_tree", f"tree {tree_id}: {_at(where, message)} has no {names}")
    message_id = message["message_id"]
    if not isinstance(message_id, str) or not message_id.strip():
        raise TreeError(
            "malformed_tree",
            f"tree {tree_id}: message {where} 'message_id' must be a non-empty string, got {message_id!r}",
        )
    for key in (*REQUIRED_KEYS, *OPTIONAL_TEXT_KEYS):
        value = message.get(key)
        if value is not None and not isinstance(value, str):
            allowed = "a string or null" if key in OPTIONAL_TEXT_KEYS else "a string"
            raise TreeError(
                "malformed_tree",
                f"tree {tree_id}: {_at(where, message)} '{key}' must be {allowed}, "
                f"got {type(value).__name__} {_short(value)}",
            )
    if message["role"] not in ROLE_MAP:
        raise TreeError(
            "malformed_tree",
            f"tree {tree_id}: {_at(where, message)} has role {message['role']!r}; "
            f"an oasst tree has only {' and '.join(ROLE_MAP)} messages",
        )


def _short(value: object) -> str:
    """A bounded repr for error details: a malformed text can be a whole document."""
    return _SHORT.repr(value)


def _conversation(tree_id: str, lang: object, path: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    last = path[-1]
    return {
        "id": last["message_id"],
        # texts are passed on as they are: the chat-row validation reports empty or non-string ones
        "messages": [{"role": ROLE_MAP[m["role"]], "content": m["text"]} for m in path],
        "created_at": last["created_date"],
        "lang": lang,
        "source": SOURCE,
        "group_id": tree_id,
        "message_tree_id": tree_id,
        "message_ids": [m["message_id"] for m in path],
    }
