"""Cleaning steps and the one runner that applies them, after HF datatrove's pipeline of steps.

A step sees the rows that survived every earlier step, as a list in file order, and is one of two kinds:

- a :class:`FilterStep` returns ``{position: Rejection}`` for the rows it rejects (or a :class:`Filtered`
  when it also has counts, notes or per-row scores to report). Whole-set steps (dedup, cleanlab) use the
  list as it is; a one-row check becomes a step with :func:`each_row`.
- a :class:`RewriteStep` returns a :class:`Rewritten`: ``{position: new content of each message}`` for the
  rows it changes, plus its own counters. It never rejects; :func:`each_content` makes one from a function
  of one message's text.

:func:`run_steps` does the bookkeeping once for every step: it maps positions back to input rows, builds
the rejected rows (``stage``, ``reason``, ``detail`` prefixed with the row's file and line,
``duplicate_of``), counts rejections by reason and rows in/out per step, and checks that every input row
ends in exactly one of ``kept`` and ``rejected``, both in file order. Framework-free.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from assets.shared.schema import EXAMPLE_COLUMNS, PROVENANCE_COLUMNS, REJECTION_COLUMNS

Row = dict[str, Any]

_RAW_COLUMNS = EXAMPLE_COLUMNS + PROVENANCE_COLUMNS


@dataclass(frozen=True)
class Rejection:
    """Why a row is rejected: a short machine ``reason``, a sentence for the person reading the audit and,
    for a duplicate, the id of the kept row it duplicates."""

    reason: str
    detail: str
    duplicate_of: str | None = None


@dataclass(frozen=True)
class Filtered:
    """What a filter step found: its rejections by position, and anything else the result should show.

    ``counts`` are added to the result's counts (summed across steps), ``notes`` explain anything the step
    skipped, ``scores`` are per-row records (e.g. Datalab's scores) appended to the result's scores.
    """

    rejections: Mapping[int, Rejection]
    counts: Mapping[str, int] = field(default_factory=dict)
    notes: Sequence[str] = ()
    scores: Sequence[dict[str, Any]] = ()


@dataclass(frozen=True)
class Rewritten:
    """What a rewrite step changed: the new content of every message of each changed row, by position, and
    the step's own counters (e.g. ``{"emails": 3}``). Rows it leaves alone are simply absent. A step that
    changes which turns a row has (dropping earlier turns) gives the row's new ``messages`` instead."""

    contents: Mapping[int, Sequence[str]]
    counts: Mapping[str, int] = field(default_factory=dict)
    messages: Mapping[int, Sequence[Row]] = field(default_factory=dict)


FilterFn = Callable[[Sequence[Row]], Mapping[int, Rejection] | Filtered]
RewriteFn = Callable[[Sequence[Row]], Rewritten]


@dataclass(frozen=True)
class FilterStep:
    """Keeps or rejects rows. ``stage`` goes into the ``stage`` column of the rows it rejects; ``name``
    (default: the stage) tells apart two steps of one stage in the per-step counts."""

    stage: str
    run: FilterFn
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.name or self.stage)


@dataclass(frozen=True)
class RewriteStep:
    """Rewrites message contents and never rejects; ``stage`` and ``name`` as for :class:`FilterStep`."""

    stage: str
    run: RewriteFn
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.name or self.stage)


Step = FilterStep | RewriteStep


def each_row(check: Callable[[Row], Rejection | None]) -> FilterFn:
    """A filter that looks at one row at a time: ``check`` returns ``None`` to keep the row."""

    def run(rows: Sequence[Row]) -> dict[int, Rejection]:
        verdicts = {position: check(row) for position, row in enumerate(rows)}
        return {position: verdict for position, verdict in verdicts.items() if verdict is not None}

    return run


def each_content(rewrite: Callable[[str], tuple[str, Mapping[str, int]]]) -> RewriteFn:
    """A rewrite of every message's text on its own: ``rewrite(text)`` returns the new text and counters,
    which are summed over all messages. Rows must have valid messages, so place it after validation."""

    def run(rows: Sequence[Row]) -> Rewritten:
        contents: dict[int, list[str]] = {}
        counts: Counter[str] = Counter()
        for position, row in enumerate(rows):
            new = []
            for message in row["messages"]:
                text, changes = rewrite(message["content"])
                new.append(text)
                counts.update(changes)
            if new != [message["content"] for message in row["messages"]]:
                contents[position] = new
        return Rewritten(contents, dict(counts))

    return run


@dataclass(frozen=True)
class StepsResult:
    """The outcome of :func:`run_steps`.

    ``kept`` has the example columns of the surviving rows (as rewritten) and ``rejected`` the raw plus
    rejection columns of the others, both in file order. ``counts`` holds ``input``, ``kept``, one entry
    per rejection reason (sorted) and then the steps' own counts in step order. ``step_counts`` has one
    ``{step, stage, kind, rows_in, rejected, rewritten, changes}`` per step, in order; ``changes`` is a
    rewrite's ``changed_rows`` and its own counters, empty for a filter.
    """

    kept: list[Row]
    rejected: list[Row]
    counts: dict[str, int]
    notes: list[str]
    scores: list[dict[str, Any]]
    step_counts: list[dict[str, Any]]


def _where(row: Row) -> str:
    location = f"{row.get('source_file') or '<unknown file>'} line {row.get('source_line')}"
    return f"row {row.get('id')!r} ({location})"


def reject_row(row: Row, stage: str, rejection: Rejection) -> Row:
    """The rejected row: raw columns, then stage, reason, detail (prefixed with where the row is from) and
    duplicate_of."""
    rejected = {column: row.get(column) for column in _RAW_COLUMNS}
    values = (stage, rejection.reason, f"{_where(row)}: {rejection.detail}", rejection.duplicate_of)
    rejected.update(zip(REJECTION_COLUMNS, values, strict=True))
    return rejected


def _check_position(step: Step, position: object, size: int) -> None:
    if not isinstance(position, int) or not 0 <= position < size:
        raise ValueError(f"step {step.name!r} returned position {position!r} for {size} rows")


def _rewrite(step: RewriteStep, rows: Sequence[Row]) -> tuple[dict[int, Row], dict[str, int]]:
    """Run a rewrite step; return the rows it really changed, as new dicts, and its changes."""
    outcome = step.run(rows)
    changed: dict[int, Row] = {}
    for position, contents in outcome.contents.items():
        _check_position(step, position, len(rows))
        row = rows[position]
        if len(contents) != len(row["messages"]):
            raise ValueError(
                f"step {step.name!r} returned {len(contents)} contents for the "
                f"{len(row['messages'])} messages of row {row.get('id')!r}"
            )
        # New dicts, never mutation: the caller's rows stay as they were read.
        messages = [
            {**message, "content": text} for message, text in zip(row["messages"], contents, strict=True)
        ]
        if messages != row["messages"]:
            changed[position] = {**row, "messages": messages}
    for position, messages in outcome.messages.items():
        _check_position(step, position, len(rows))
        row = changed.get(position, rows[position])
        if list(messages) != row["messages"]:
            changed[position] = {**row, "messages": [dict(message) for message in messages]}
    return changed, {"changed_rows": len(changed), **outcome.counts}


def run_steps(rows: Sequence[Row], steps: Sequence[Step]) -> StepsResult:
    """Apply ``steps`` in order, each to the rows that survived the ones before, and account for every row.

    Rejected rows carry the row as it was when rejected, so a rewrite (e.g. a redaction) applies to the
    rejected copy too; the ``raw`` column always keeps the input text.
    """
    current = list(rows)  # each input row as the steps see it now; rewrites replace entries
    survivors = list(range(len(rows)))  # input indices of the rows still in, in file order
    rejected: dict[int, Row] = {}
    step_extra: dict[str, int] = {}
    notes: list[str] = []
    scores: list[dict[str, Any]] = []
    step_counts: list[dict[str, Any]] = []
    for step in steps:
        view = [current[index] for index in survivors]
        entry: dict[str, Any] = {
            "step": step.name,
            "stage": step.stage,
            "kind": "rewrite" if isinstance(step, RewriteStep) else "filter",
            "rows_in": len(view),
            "rejected": 0,
            "rewritten": 0,
            "changes": {},
        }
        if isinstance(step, RewriteStep):
            changed, entry["changes"] = _rewrite(step, view)
            for position, row in changed.items():
                current[survivors[position]] = row
            entry["rewritten"] = len(changed)
        else:
            outcome = step.run(view)
            if not isinstance(outcome, Filtered):
                outcome = Filtered(outcome)
            for position, rejection in outcome.rejections.items():
                _check_position(step, position, len(view))
                index = survivors[position]
                rejected[index] = reject_row(current[index], step.stage, rejection)
            survivors = [
                index for position, index in enumerate(survivors) if position not in outcome.rejections
            ]
            entry["rejected"] = len(outcome.rejections)
            for name, value in outcome.counts.items():
                step_extra[name] = step_extra.get(name, 0) + value
            notes.extend(outcome.notes)
            scores.extend(outcome.scores)
        step_counts.append(entry)

    kept_rows = [{column: current[index].get(column) for column in EXAMPLE_COLUMNS} for index in survivors]
    rejected_rows = [rejected[index] for index in sorted(rejected)]
    # Nothing is silently dropped: every input row is accounted for exactly once.
    assert len(kept_rows) + len(rejected_rows) == len(rows), "row accounting failed in run_steps"
    assert not set(survivors) & set(rejected), "a row was both kept and rejected in run_steps"
    counts = {"input": len(rows), "kept": len(kept_rows)}
    counts.update(sorted(Counter(row["reason"] for row in rejected_rows).items()))
    counts.update(step_extra)
    return StepsResult(kept_rows, rejected_rows, counts, notes, scores, step_counts)
