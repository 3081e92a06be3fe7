"""Tests for the cleaning step runner: filter and rewrite steps, bookkeeping, per-step counts."""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from assets.clean.filters import check_ingest_error, find_reused_ids
from assets.clean.pipeline import clean_rows, default_steps
from assets.clean.steps import (
    Filtered,
    FilterStep,
    Rejection,
    RewriteStep,
    Rewritten,
    Row,
    Step,
    StepsResult,
    each_content,
    each_row,
    run_steps,
)
from assets.shared.schema import EXAMPLE_COLUMNS, PROVENANCE_COLUMNS, REJECTION_COLUMNS
from tests.test_clean import SETTINGS

START = datetime(2025, 1, 1, tzinfo=UTC)


def row(row_id: str, answer: str = "An answer.", *, line: int | None = None, **extra: Any) -> Row:
    """A raw row as ingest produces it; the line defaults to the number in the id (``r3`` -> 3)."""
    line = line if line is not None else int(re.sub(r"\D", "", row_id) or 0)
    raw = {
        "id": row_id,
        "messages": [
            {"role": "user", "content": f"Question {row_id}?"},
            {"role": "assistant", "content": answer},
        ],
        "created_at": START + timedelta(days=line),
        "category": None,
        "lang": "en",
        "source": None,
        "augmented_from": None,
        "group_id": None,
        "source_file": "data/raw.jsonl",
        "source_line": line,
        "raw": "{}",
        "error": None,
    }
    raw.update(extra)
    return raw


ROWS = [row(f"r{line}", line=line) for line in range(1, 7)]


def reject_ids(*ids: str, reason: str = "bad") -> Any:
    """A row-level check rejecting the given ids."""
    return each_row(lambda r: Rejection(reason, f"{r['id']} is listed") if r["id"] in ids else None)


def reject_positions(*positions: int, reason: str = "picked") -> Any:
    """A whole-set filter rejecting positions of the list it is given, each a duplicate of position 0."""

    def run(rows: Sequence[Row]) -> dict[int, Rejection]:
        return {p: Rejection(reason, f"position {p}", duplicate_of=rows[0]["id"]) for p in positions}

    return run


def upper_answers(rows: Sequence[Row]) -> Rewritten:
    """A rewrite defined here: upper-case the assistant turns, counting the turns it changed."""
    contents, changed_turns = {}, 0
    for position, r in enumerate(rows):
        new = [m["content"].upper() if m["role"] == "assistant" else m["content"] for m in r["messages"]]
        changed_turns += sum(m["content"] != text for m, text in zip(r["messages"], new, strict=True))
        contents[position] = new
    return Rewritten(contents, {"changed_turns": changed_turns})


def mask_digits(text: str) -> tuple[str, dict[str, int]]:
    """A one-text rewrite for :func:`each_content`: replace digits by '#', counting them."""
    masked, count = re.subn(r"\d", "#", text)
    return masked, {"digits": count}


def check_accounting(rows: list[Row], result: StepsResult) -> None:
    """Every input row is in exactly one of kept/rejected, each in file order, with the schema columns."""
    assert len(result.kept) + len(result.rejected) == len(rows)
    lines = {r["source_line"]: r for r in rows}
    kept_lines = [next(line for line, r in lines.items() if r["id"] == k["id"]) for k in result.kept]
    rejected_lines = [r["source_line"] for r in result.rejected]
    assert kept_lines == sorted(kept_lines) and rejected_lines == sorted(rejected_lines)
    assert sorted(kept_lines + rejected_lines) == sorted(lines)
    assert all(list(k) == list(EXAMPLE_COLUMNS) for k in result.kept)
    columns = list(EXAMPLE_COLUMNS + PROVENANCE_COLUMNS + REJECTION_COLUMNS)
    assert all(list(r) == columns for r in result.rejected)
    assert result.counts["input"] == len(rows) and result.counts["kept"] == len(result.kept)


@pytest.mark.parametrize(
    ("steps", "kept", "rejected"),
    [
        ([], ["r1", "r2", "r3", "r4", "r5", "r6"], []),
        (
            [FilterStep("validate", reject_ids("r2", "r5", reason="short_response"))],
            ["r1", "r3", "r4", "r6"],
            [("r2", "validate", "short_response", None), ("r5", "validate", "short_response", None)],
        ),
        # positions are those of the survivors: after r1 and r2 go, position 1 is r4 and its kept row r3
        (
            [
                FilterStep("ingest", reject_ids("r1", reason="malformed_json")),
                FilterStep("validate", reject_ids("r2", reason="missing_id")),
                FilterStep("dedup_exact", reject_positions(1, 3, reason="duplicate_exact")),
            ],
            ["r3", "r5"],
            [
                ("r1", "ingest", "malformed_json", None),
                ("r2", "validate", "missing_id", None),
                ("r4", "dedup_exact", "duplicate_exact", "r3"),
                ("r6", "dedup_exact", "duplicate_exact", "r3"),
            ],
        ),
        # a later step's rejections of earlier rows still come out in file order
        (
            [
                FilterStep("dedup_near", reject_positions(4, reason="near_duplicate")),
                FilterStep("cleanlab", reject_positions(0, reason="cleanlab_outlier")),
            ],
            ["r2", "r3", "r4", "r6"],
            [("r1", "cleanlab", "cleanlab_outlier", "r1"), ("r5", "dedup_near", "near_duplicate", "r1")],
        ),
        # a step that rejects everything leaves the next one nothing to look at
        (
            [
                FilterStep("validate", reject_positions(*range(6))),
                FilterStep("cleanlab", reject_ids("r1")),
            ],
            [],
            [(f"r{line}", "validate", "picked", "r1") for line in range(1, 7)],
        ),
    ],
    ids=["no-steps", "row-filter", "chained-positions", "file-order", "reject-all"],
)
def test_filter_steps(
    steps: list[Step], kept: list[str], rejected: list[tuple[str, str, str, str | None]]
) -> None:
    rows = copy.deepcopy(ROWS)
    result = run_steps(rows, steps)
    check_accounting(rows, result)
    assert [k["id"] for k in result.kept] == kept
    assert [(r["id"], r["stage"], r["reason"], r["duplicate_of"]) for r in result.rejected] == rejected
    for r in result.rejected:
        assert r["detail"].startswith(f"row {r['id']!r} (data/raw.jsonl line {r['source_line']}): ")
    reasons = {reason for _, _, reason, _ in rejected}
    assert {name: result.counts[name] for name in reasons} == {
        reason: sum(item[2] == reason for item in rejected) for reason in reasons
    }
    assert rows == ROWS  # the runner never mutates its input


def test_filter_step_reports_counts_notes_and_scores() -> None:
    def scored(rows: Sequence[Row]) -> Filtered:
        scores = [{"id": r["id"], "score": position} for position, r in enumerate(rows)]
        return Filtered({0: Rejection("low", "score 0")}, {"issues": 2}, notes=["looked"], scores=scores)

    steps = [
        FilterStep("validate", reject_ids("r1")),
        FilterStep("cleanlab", scored),
        FilterStep("x", scored),
    ]
    result = run_steps(ROWS, steps)
    assert list(result.counts.items()) == [("input", 6), ("kept", 3), ("bad", 1), ("low", 2), ("issues", 4)]
    assert result.notes == ["looked", "looked"]
    assert [s["id"] for s in result.scores] == ["r2", "r3", "r4", "r5", "r6", "r3", "r4", "r5", "r6"]


@pytest.mark.parametrize(
    ("steps", "answers", "changes"),
    [
        (
            [RewriteStep("normalize", upper_answers)],
            ["AN ANSWER 1.", "AN ANSWER 2.", "AN ANSWER 3."],
            [{"changed_rows": 3, "changed_turns": 3}],
        ),
        # only the survivors of the filter are rewritten; the questions hold a digit too
        (
            [FilterStep("validate", reject_ids("r1")), RewriteStep("redact", each_content(mask_digits))],
            ["An answer #.", "An answer #."],
            [{}, {"changed_rows": 2, "digits": 4}],
        ),
        # a second pass over text already rewritten finds nothing left to change
        (
            [
                RewriteStep("redact", each_content(mask_digits)),
                RewriteStep("again", each_content(mask_digits)),
            ],
            ["An answer #.", "An answer #.", "An answer #."],
            [{"changed_rows": 3, "digits": 6}, {"changed_rows": 0, "digits": 0}],
        ),
        # text handed back unchanged is not a change, whatever the step claims
        (
            [
                RewriteStep(
                    "noop",
                    lambda rows: Rewritten(
                        {p: [m["content"] for m in r["messages"]] for p, r in enumerate(rows)}
                    ),
                )
            ],
            ["An answer 1.", "An answer 2.", "An answer 3."],
            [{"changed_rows": 0}],
        ),
    ],
    ids=["rewrite", "filter-then-rewrite", "idempotent", "same-text"],
)
def test_rewrite_steps(steps: list[Step], answers: list[str], changes: list[dict[str, int]]) -> None:
    rows = [row(f"r{line}", f"An answer {line}.") for line in (1, 2, 3)]
    before = copy.deepcopy(rows)
    result = run_steps(rows, steps)
    check_accounting(rows, result)
    assert [k["messages"][1]["content"] for k in result.kept] == answers
    assert [c["changes"] for c in result.step_counts] == changes
    for counts in result.step_counts:
        assert counts["rewritten"] == counts["changes"].get("changed_rows", 0)
    assert rows == before


def test_rejected_rows_carry_the_rewritten_text() -> None:
    # A redaction must reach the rejected copy too: rejected rows are published for audit.
    rows = [row("r1", "Call 555 0100."), row("r2", "No number here.")]
    steps = [
        RewriteStep("redact", each_content(mask_digits)),
        FilterStep("validate", reject_ids("r1", reason="short_response")),
    ]
    result = run_steps(rows, steps)
    assert result.rejected[0]["messages"][1]["content"] == "Call ### ####."
    assert result.rejected[0]["raw"] == "{}" and rows[0]["messages"][1]["content"] == "Call 555 0100."
    assert [k["messages"][1]["content"] for k in result.kept] == ["No number here."]


def test_step_counts() -> None:
    steps = [
        FilterStep("validate", reject_ids("r2")),
        FilterStep("validate", reject_positions(0, 1), name="unique_ids"),
        RewriteStep("normalize", upper_answers),
    ]
    result = run_steps(ROWS, steps)
    assert result.step_counts == [
        {
            "step": "validate",
            "stage": "validate",
            "kind": "filter",
            "rows_in": 6,
            "rejected": 1,
            "rewritten": 0,
            "changes": {},
        },
        {
            "step": "unique_ids",
            "stage": "validate",
            "kind": "filter",
            "rows_in": 5,
            "rejected": 2,
            "rewritten": 0,
            "changes": {},
        },
        {
            "step": "normalize",
            "stage": "normalize",
            "kind": "rewrite",
            "rows_in": 3,
            "rejected": 0,
            "rewritten": 3,
            "changes": {"changed_rows": 3, "changed_turns": 3},
        },
    ]


@pytest.mark.parametrize("seed", range(20))
def test_random_steps_account_for_every_row(seed: int) -> None:
    rng = random.Random(seed)
    rows = [row(f"r{line}", f"Answer {line}.") for line in range(1, rng.randint(0, 30) + 1)]

    def random_filter(rows: Sequence[Row]) -> dict[int, Rejection]:
        picked = rng.sample(range(len(rows)), rng.randint(0, len(rows)))
        return {p: Rejection("random", "picked", duplicate_of=rng.choice([None, "r1"])) for p in picked}

    steps: list[Step] = []
    for number in range(rng.randint(0, 6)):
        if rng.random() < 0.3:
            steps.append(RewriteStep(f"rewrite{number}", each_content(mask_digits)))
        else:
            steps.append(FilterStep(f"stage{number}", random_filter))
    result = run_steps(rows, steps)
    check_accounting(rows, result)
    assert sum(c["rejected"] for c in result.step_counts) == len(result.rejected)
    for previous, following in zip(result.step_counts, result.step_counts[1:], strict=False):
        assert following["rows_in"] == previous["rows_in"] - previous["rejected"]


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            FilterStep("validate", lambda rows: {len(rows): Rejection("x", "y")}),
            "returned position 2 for 2 rows",
        ),
        (FilterStep("validate", lambda rows: {-1: Rejection("x", "y")}), "returned position -1"),
        (RewriteStep("redact", lambda rows: Rewritten({0: ["only one"]})), "1 contents for the 2 messages"),
    ],
    ids=["past-the-end", "negative", "wrong-message-count"],
)
def test_a_broken_step_is_named(step: Step, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"step {step.name!r}")) as error:
        run_steps(ROWS[:2], [step])
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (None, None),
        (
            "malformed_json: line 2: Expecting value",
            Rejection("malformed_json", "malformed_json: line 2: Expecting value"),
        ),
        (": no code", Rejection("ingest_error", ": no code")),
    ],
)
def test_check_ingest_error(error: str | None, expected: Rejection | None) -> None:
    assert check_ingest_error(row("r1", error=error)) == expected


def test_find_reused_ids_points_at_the_first_row() -> None:
    rows = [row("a", line=1), row("b", line=2), row("a", line=3), row("a", line=4)]
    found = find_reused_ids(rows)
    assert sorted(found) == [2, 3]
    assert all(r.reason == "duplicate_id" and r.duplicate_of == "a" for r in found.values())
    assert "the row at line 1" in found[3].detail
    # the same row object twice is still a reused id
    assert list(find_reused_ids([rows[0], rows[0]])) == [1]


def test_default_steps_are_filters_in_stage_order() -> None:
    steps = default_steps(SETTINGS)
    assert [(s.name, s.stage) for s in steps] == [
        ("ingest", "ingest"),
        ("validate", "validate"),
        ("unique_ids", "validate"),
        ("dedup_exact", "dedup_exact"),
        ("dedup_prefix", "dedup_prefix"),
        ("dedup_near", "dedup_near"),
        ("cleanlab", "cleanlab"),
    ]
    assert all(isinstance(s, FilterStep) for s in steps)


def test_clean_rows_reports_step_counts() -> None:
    rows = [
        row("r1", "Paris is the capital of France."),
        row("r2", error="malformed_json: line 2: Expecting value"),
        row("r3", "y"),
        row("r1", "A reused id.", line=4),
        row("r5", "Paris is the capital of France.", messages=copy.deepcopy(ROWS[0]["messages"])),
        row("r6", "Paris is the capital of France.", messages=None),
    ]
    rows[0]["messages"] = copy.deepcopy(ROWS[0]["messages"])
    result = clean_rows(rows, SETTINGS)
    by_step = {c["step"]: (c["rows_in"], c["rejected"]) for c in result.step_counts}
    assert by_step == {
        "ingest": (6, 1),
        "validate": (5, 2),
        "unique_ids": (3, 1),
        "dedup_exact": (2, 1),
        "dedup_prefix": (1, 0),
        "dedup_near": (1, 0),
        "cleanlab": (1, 0),
    }
    assert [(r["id"], r["stage"], r["reason"]) for r in result.rejected] == [
        ("r2", "ingest", "malformed_json"),
        ("r3", "validate", "short_response"),
        ("r1", "validate", "duplicate_id"),
        ("r5", "dedup_exact", "duplicate_exact"),
        ("r6", "validate", "missing_messages"),
    ]
    assert [k["id"] for k in result.kept] == ["r1"]
