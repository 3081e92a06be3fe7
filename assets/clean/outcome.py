"""What a cleaning result means for the stage: nothing kept is an error, most rows rejected a warning.

A run that rejects every row would otherwise succeed with an empty training pool, and the first stage to
complain would be the split, far from the cause. The message here gives the counts by reason and, for
each of the commonest reasons, one rejected row's detail, which says what to do (every rejection's
detail does). Framework-free: the asset decides what to write and how to fail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from assets.shared.errors import InputError

# Above this share of rejected rows the run goes on but warns: losing most of a dataset is rarely meant.
WARN_REJECTED_SHARE = 0.5
# The reasons given an example row's detail in a message; the counts list every reason.
EXPLAINED_REASONS = 3


class AllRowsRejectedError(InputError):
    """Every input row was rejected; the message gives the counts by reason and what to do."""


def reasons_by_count(rejected: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
    """``(reason, rows)`` pairs, the commonest first (ties by name)."""
    counts = Counter(str(row["reason"]) for row in rejected)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def rejection_summary(rejected: Sequence[dict[str, Any]]) -> str:
    """One line: the counts by reason, then the detail of the first row of each of the commonest
    reasons (which starts with where the row is from), e.g. ``template_drops_tool_call 20 —
    template_drops_tool_call, e.g. row 's0' (data/raw.jsonl line 1): the base model's chat template ...``."""
    ranked = reasons_by_count(rejected)
    counts = ", ".join(f"{reason} {count}" for reason, count in ranked)
    examples = []
    for reason, _ in ranked[:EXPLAINED_REASONS]:
        row = next(row for row in rejected if str(row["reason"]) == reason)
        examples.append(f"{reason}, e.g. {row['detail']}")
    return f"{counts} — " + "; ".join(examples)


def require_kept(kept: int, rejected: Sequence[dict[str, Any]]) -> None:
    """Raise :class:`AllRowsRejectedError` when rows came in and none was kept (``kept`` is the number of
    kept rows, ``rejected`` the rejected rows with their ``reason`` and ``detail``)."""
    if kept or not rejected:
        return
    raise AllRowsRejectedError(
        f"all {len(rejected)} rows were rejected, nothing is left to train on: {rejection_summary(rejected)}"
    )


def rejected_share_warning(kept: int, rejected: Sequence[dict[str, Any]]) -> str | None:
    """A warning when more than :data:`WARN_REJECTED_SHARE` of the rows were rejected, else ``None``."""
    total = kept + len(rejected)
    if not total or len(rejected) / total <= WARN_REJECTED_SHARE:
        return None
    return (
        f"{len(rejected)} of {total} rows ({len(rejected) / total:.0%}) were rejected, more than "
        f"{WARN_REJECTED_SHARE:.0%}: {rejection_summary(rejected)}"
    )
