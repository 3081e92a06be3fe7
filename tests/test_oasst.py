"""OpenAssistant message trees: expanding a tree into conversations, and ingesting tree files."""

from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path
from typing import Any

import pytest

from assets.ingest.normalize import normalize_file
from assets.ingest.oasst import SOURCE, TreeError, expand_tree, is_message_tree
from assets.ingest.readers import IngestError

TREE_ID = "t-1"


def msg(message_id: str, role: str, *replies: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A message as the oasst export writes it; ``fields`` override or remove (None) any key."""
    message = {
        "message_id": message_id,
        "parent_id": None,
        "user_id": "u",
        "created_date": f"2023-02-0{len(str(message_id)) % 9 + 1}T10:00:00.5+01:00",
        "text": f"text of {message_id}",
        "role": role,
        "lang": "en",
        "review_count": 3,
        "review_result": True,
        "deleted": False,
        "rank": None,
        "synthetic": False,
        "emojis": {},
        "replies": list(replies),
    }
    message.update(fields)
    return message


def tree(root: object, tree_id: object = TREE_ID) -> dict[str, Any]:
    return {"message_tree_id": tree_id, "tree_state": "ready_for_export", "prompt": root}


def paths(rows: list[dict[str, Any]]) -> list[list[str]]:
    return [row["message_ids"] for row in rows]


def write_jsonl(path: Path, values: list[object]) -> Path:
    path.write_text("".join(json.dumps(v) + "\n" for v in values), encoding="utf-8")
    return path


BRANCHING = tree(
    msg(
        "p",
        "prompter",
        msg("a1", "assistant", msg("p2", "prompter", msg("a3", "assistant"))),
        msg("a2", "assistant", msg("p3", "prompter")),
    )
)
FAILED_REVIEW = msg("p2", "prompter", msg("a3", "assistant"), review_result=False)


# --- expand_tree -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (tree(msg("p", "prompter", msg("a", "assistant"))), [["p", "a"]]),
        # only maximal paths: a1 is continued by a3, so [p, a1] is not a row of its own; a prompter leaf
        # (p3, nobody answered it) ends none, so a2 is a row
        (BRANCHING, [["p", "a1", "p2", "a3"], ["p", "a2"]]),
        (
            tree(msg("p", "prompter", msg("a1", "assistant", msg("p2", "prompter"), msg("p3", "prompter")))),
            [["p", "a1"]],
        ),
        # siblings below a shared answer each continue it: one row per branch, the shared answer in both
        (
            tree(
                msg(
                    "p",
                    "prompter",
                    msg(
                        "a1",
                        "assistant",
                        msg("p2", "prompter", msg("a2", "assistant"), msg("a3", "assistant")),
                        msg("p3", "prompter", msg("a4", "assistant")),
                    ),
                )
            ),
            [["p", "a1", "p2", "a2"], ["p", "a1", "p2", "a3"], ["p", "a1", "p3", "a4"]],
        ),
        (
            tree(msg("p", "prompter", msg("a1", "assistant", deleted=True), msg("a2", "assistant"))),
            [["p", "a2"]],
        ),
        # a message that failed review is skipped with everything below it, so a1 is no longer continued
        (tree(msg("p", "prompter", msg("a1", "assistant", FAILED_REVIEW))), [["p", "a1"]]),
        (
            tree(msg("p", "prompter", msg("a1", "assistant", msg("p2", "prompter", msg("a3", "assistant"))))),
            [["p", "a1", "p2", "a3"]],
        ),
        (
            tree(
                msg(
                    "p",
                    "prompter",
                    msg("a1", "assistant", msg("p2", "prompter", msg("a3", "assistant", deleted=True))),
                )
            ),
            [["p", "a1"]],
        ),
        # not yet reviewed is not rejected
        (tree(msg("p", "prompter", msg("a", "assistant", review_result=None))), [["p", "a"]]),
        (tree(msg("p", "prompter", msg("a", "assistant", replies=None))), [["p", "a"]]),
        (tree(msg("p", "prompter")), []),
        (tree(msg("p", "prompter", msg("a", "assistant"), deleted=True)), []),
        (tree(msg("p", "prompter", msg("a", "assistant"), review_result=False)), []),
    ],
    ids=[
        "single",
        "branching",
        "unanswered-follow-ups",
        "shared-answer",
        "deleted",
        "failed-review",
        "follow-up",
        "deleted-follow-up-answer",
        "unreviewed",
        "null-replies",
        "prompt-only",
        "root-deleted",
        "root-failed-review",
    ],
)
def test_expand_tree_yields_one_row_per_maximal_conversation(
    value: dict[str, Any], expected: list[list[str]]
) -> None:
    assert paths(expand_tree(value)) == expected


def test_expanded_row_fields() -> None:
    root = msg("p", "prompter", msg("a1", "assistant", lang="de", created_date="2023-05-01T00:00:00Z"))
    root["lang"] = "es"
    [row] = expand_tree(tree(root))
    assert row == {
        "id": "a1",
        "messages": [
            {"role": "user", "content": "text of p"},
            {"role": "assistant", "content": "text of a1"},
        ],
        "created_at": "2023-05-01T00:00:00Z",
        "lang": "es",
        "source": SOURCE,
        "group_id": TREE_ID,
        "message_tree_id": TREE_ID,
        "message_ids": ["p", "a1"],
    }


def test_a_tree_deeper_than_the_recursion_limit_is_walked() -> None:
    depth = 1200
    node: dict[str, Any] | None = None
    for level in range(depth, 0, -1):
        role = "prompter" if level % 2 else "assistant"
        node = msg(f"m{level}", role, *([node] if node else []), text="x")
    [row] = expand_tree(tree(node))
    assert len(row["messages"]) == depth


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (tree("hello"), "'prompt' must be the root message object, got str"),
        (tree(msg("p", "prompter"), tree_id=None), "'message_tree_id' must be a non-empty string"),
        (tree(msg("p", "prompter"), tree_id="  "), "'message_tree_id' must be a non-empty string"),
        (tree(msg("p", "prompter", ["a"])), "prompt.replies[0] must be a message object, got list"),
        (tree(msg("p", "prompter", replies="a")), "message prompt (p) 'replies' must be a list, got str"),
        (
            tree(msg("p", "prompter", msg("a", "assistant", created_date=None))),
            "message prompt.replies[0] (a) has no 'created_date'",
        ),
        (tree({"role": "prompter"}), "message prompt has no 'message_id', 'text', 'created_date'"),
        (tree(msg("p", "prompter", msg(7, "assistant"))), "'message_id' must be a non-empty string, got 7"),
        (tree(msg("p", "prompter", msg("a", "moderator"))), "(a) has role 'moderator'"),
        (tree(msg("p", "prompter", deleted="no")), "'deleted' must be true, false or null, got 'no'"),
    ],
)
def test_a_tree_that_cannot_be_walked_raises_malformed_tree(value: dict[str, Any], detail: str) -> None:
    with pytest.raises(TreeError) as caught:
        expand_tree(value)
    assert caught.value.reason == "malformed_tree"
    assert detail in str(caught.value)


# Fields of the wrong JSON type: each must make the tree one malformed_tree row, never a TypeError.
WRONG_TYPES = {
    "list-role": (msg("a", ["assistant"]), "(a) 'role' must be a string, got list ['assistant']"),
    "dict-role": (msg("a", {"role": "assistant"}), "(a) 'role' must be a string, got dict"),
    "dict-text": (msg("a", "assistant", text={"content": "hi"}), "'text' must be a string, got dict {'con"),
    "list-text": (msg("a", "assistant", text=["hi"]), "(a) 'text' must be a string, got list"),
    "bool-text": (msg("a", "assistant", text=True), "(a) 'text' must be a string, got bool True"),
    "huge-text": (msg("a", "assistant", text=["long " * 2000]), "'text' must be a string, got list ['long"),
    "int-id": (msg(7, "assistant"), "'message_id' must be a non-empty string, got 7"),
    "list-id": (msg(["a"], "assistant"), "'message_id' must be a non-empty string, got ['a']"),
    "dict-id": (msg({"id": "a"}, "assistant"), "'message_id' must be a non-empty string, got {'id': 'a'}"),
    "int-date": (msg("a", "assistant", created_date=1675418400), "'created_date' must be a string, got int"),
    "list-date": (msg("a", "assistant", created_date=["2023"]), "'created_date' must be a string, got list"),
    "list-lang": (msg("a", "assistant", lang=["en"]), "(a) 'lang' must be a string or null, got list"),
    "dict-replies": (msg("a", "assistant", replies={"0": {}}), "(a) 'replies' must be a list, got dict"),
    "list-flag": (msg("a", "assistant", deleted=[False]), "'deleted' must be true, false or null, got [F"),
}


@pytest.mark.parametrize(("reply", "detail"), WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_a_field_of_the_wrong_type_raises_malformed_tree(reply: dict[str, Any], detail: str) -> None:
    with pytest.raises(TreeError) as caught:
        expand_tree(tree(msg("p", "prompter", reply)))
    assert caught.value.reason == "malformed_tree"
    assert f"tree {TREE_ID}: message prompt.replies[0]" in str(caught.value)
    assert detail in str(caught.value)
    assert len(str(caught.value)) < 300, "a huge malformed value must not flood the error"


@pytest.mark.parametrize(("reply", "detail"), WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_a_tree_with_a_wrongly_typed_field_is_one_rejected_row(
    tmp_path: Path, reply: dict[str, Any], detail: str
) -> None:
    bad = tree(msg("p", "prompter", msg("a0", "assistant"), reply))
    good = tree(msg("q", "prompter", msg("b", "assistant")), "t-2")
    rows = normalize_file(write_jsonl(tmp_path / "t.jsonl", [bad, good]), max_chars=8000)
    assert [(row["source_line"], (row["error"] or "ok").split(":", 1)[0]) for row in rows] == [
        (1, "malformed_tree"),
        (2, "ok"),
    ]
    assert detail in rows[0]["error"]


def test_a_malformed_message_below_a_skipped_one_is_not_an_error() -> None:
    broken = msg("a", "assistant", msg("p2", "prompter", replies="x"), deleted=True)
    assert expand_tree(tree(msg("p", "prompter", broken))) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (BRANCHING, True),
        (tree("not a message"), True),
        ({"message_tree_id": TREE_ID}, False),
        ({"prompt": {}}, False),
        ({"messages": [], "id": "x"}, False),
        ([BRANCHING], False),
        (None, False),
    ],
)
def test_is_message_tree(value: object, expected: bool) -> None:
    assert is_message_tree(value) is expected


# --- normalize_file on tree files ------------------------------------------------------------------------


def test_a_tree_file_becomes_validated_chat_rows_with_small_raw(tmp_path: Path) -> None:
    chat = {
        "id": "c1",
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
        "created_at": "2023-03-01",
    }
    path = write_jsonl(
        tmp_path / "trees.jsonl",
        [BRANCHING, chat, tree({"role": "prompter"}, "t-2"), tree(msg("q", "prompter"), "t-3")],
    )
    rows = normalize_file(path, max_chars=8000)
    assert [(row["id"], row["source_line"]) for row in rows[:3]] == [("a3", 1), ("a2", 1), ("c1", 2)]
    assert [row["error"] for row in rows[:3]] == [None] * 3
    first = rows[0]
    assert first["created_at"] == dt.datetime(2023, 2, 3, 9, 0, 0, 500000, tzinfo=dt.UTC)
    assert (first["group_id"], first["source"], first["lang"]) == (TREE_ID, SOURCE, "en")
    assert json.loads(first["raw"]) == {"message_tree_id": TREE_ID, "message_ids": ["p", "a1", "p2", "a3"]}
    # one row per bad tree, carrying the whole line for audit
    malformed, empty = rows[3:]
    assert malformed["source_line"] == 3 and malformed["error"].startswith("malformed_tree: tree t-2: ")
    assert empty["source_line"] == 4 and empty["error"].startswith("no_conversation: message tree t-3 ")
    assert json.loads(empty["raw"])["message_tree_id"] == "t-3"
    assert len({row["id"] for row in rows}) == len(rows)


def test_a_bad_message_spoils_only_the_conversations_through_it(tmp_path: Path) -> None:
    value = tree(
        msg(
            "p",
            "prompter",
            msg("a1", "assistant", msg("p2", "prompter", msg("a3", "assistant")), text="  "),
            msg("a2", "assistant", created_date="yesterday"),
            msg("a4", "assistant", text="long " * 30),
            msg("a5", "assistant"),
        )
    )
    rows = normalize_file(write_jsonl(tmp_path / "t.jsonl", [value]), max_chars=100)
    errors = {row["id"]: (row["error"] or "ok").split(":", 1)[0] for row in rows}
    # a1 is in no row of its own: it is continued by a3, whose conversation carries its empty text
    assert errors == {
        "a3": "empty_content",
        "a2": "bad_timestamp",
        "a4": "oversize",
        "a5": "ok",
    }


def test_a_repeated_tree_marks_the_second_copy_duplicate_id(tmp_path: Path) -> None:
    rows = normalize_file(write_jsonl(tmp_path / "t.jsonl", [BRANCHING, BRANCHING]), max_chars=8000)
    assert [row["error"] for row in rows[:2]] == [None] * 2
    assert all(row["error"].startswith("duplicate_id: ") and "line 1" in row["error"] for row in rows[2:])
    assert len(rows) == 4


def test_a_file_of_trees_without_conversations_is_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [tree(msg("p", "prompter")), tree("x", "t-2")])
    with pytest.raises(IngestError, match="no valid row"):
        normalize_file(path, max_chars=8000)


# --- the real OpenAssistant sample -----------------------------------------------------------------------


@functools.cache
def real_rows(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ingested rows and, independently, the parsed trees of the sample (read once per session)."""
    trees = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return normalize_file(path, max_chars=8000), trees


def kept_assistant_ids(message: dict[str, Any]) -> set[str]:
    """Ids of the reachable assistant messages, by a plain recursive walk."""
    if message["deleted"] or message["review_result"] is False:
        return set()
    own = {message["message_id"]} if message["role"] == "assistant" else set()
    return own.union(*(kept_assistant_ids(reply) for reply in message["replies"]))


def maximal_conversations(message: dict[str, Any]) -> int:
    """Reference count of rows: reachable assistant messages with none below them, by plain recursion."""
    if message["deleted"] or message["review_result"] is False:
        return 0
    below = sum(maximal_conversations(reply) for reply in message["replies"])
    return below or int(message["role"] == "assistant")


def test_real_trees_expand_into_one_row_per_maximal_conversation(oasst2_path: Path) -> None:
    rows, trees = real_rows(oasst2_path)
    assert len(trees) == 551
    expected = sum(maximal_conversations(t["prompt"]) for t in trees)
    with_rows = {t["message_tree_id"] for t in trees if maximal_conversations(t["prompt"])}
    conversations = [row for row in rows if row["error"] is None or not row["error"].startswith("no_conv")]
    assert len(conversations) == expected
    assert 300 <= expected <= 1500 and len(with_rows) >= 100
    # fewer rows than assistant messages (prefixes are gone), yet every assistant message is in a row
    answers = set().union(*(kept_assistant_ids(t["prompt"]) for t in trees))
    assert len(conversations) < len(answers)
    assert answers <= {i for row in conversations for i in json.loads(row["raw"])["message_ids"]}
    # every line is accounted for, and a tree without conversations is one rejected row
    assert {row["source_line"] for row in rows} == set(range(1, len(trees) + 1))
    assert len(rows) == expected + sum(1 for t in trees if not maximal_conversations(t["prompt"]))
    # the sample holds some trees twice (same messages, other third-party scores): the copies are refused
    seen: set[str] = set()
    for row in rows:
        assert (row["id"] in seen) == (row["error"] or "").startswith("duplicate_id: "), row["id"]
        seen.add(row["id"])


def test_real_conversations_are_well_formed(oasst2_path: Path) -> None:
    rows, trees = real_rows(oasst2_path)
    good = [row for row in rows if row["error"] is None]
    assert len(good) >= 400
    for row in good:
        roles = [m["role"] for m in row["messages"]]
        assert roles[0] == "user" and roles[-1] == "assistant", row["id"]
        assert roles[::2] == ["user"] * len(roles[::2]) and roles[1::2] == ["assistant"] * len(roles[1::2])
        assert row["group_id"] == trees[row["source_line"] - 1]["message_tree_id"]
        assert row["created_at"].utcoffset() == dt.timedelta(0)
        assert (
            dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
            <= row["created_at"]
            < dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        )
        assert row["source"] == SOURCE and len(row["raw"]) < 1000
    languages = {row["lang"] for row in good}
    assert {"en", "es"} <= languages
    reasons = {row["error"].split(":", 1)[0] for row in rows if row["error"]}
    assert reasons <= {"no_conversation", "duplicate_id", "oversize"}, reasons
