"""What the metadata says about each split, and the warnings about degenerate ones.

Per split: rows, groups, time span, the time since the previous split, the rule that placed its start,
and where its timestamps came from (``created_at_source``: ``file``, or ``row_order`` for a timestamp
ingest made up from the row's place in the file; a paraphrase without it takes its source's, and any
other row without it counts as ``file``).

Warnings: a validation or test split whose groups come after a long stretch without data (more than
``split.max_gap_days``, e.g. a mistyped year: a handful of far-future rows then decide the whole test
split), and a split that mixes timestamps from the file with made-up ones (the order between the two
kinds means nothing, so neither does the cutoff). Framework-free.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from assets.shared.timestamps import row_time
from assets.split.cutoffs import NEVER, SPLITS, Cutoffs, before
from assets.split.settings import SplitSettings

# How many row ids a warning names before it says how many more there are.
_NAMED = 10


def timestamp_sources(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Row id -> ``file`` or ``row_order`` (ingest's made-up, file-ordered time). A paraphrase inherits its
    source's created_at, so it takes its source's value when it has none; other rows default to file."""
    own = {row["id"]: row.get("created_at_source") for row in rows}
    return {row["id"]: own[row["id"]] or own.get(row.get("augmented_from") or "") or "file" for row in rows}


def name_rows(labels: Sequence[str]) -> str:
    shown = ", ".join(labels[:_NAMED])
    return shown + (f" and {len(labels) - _NAMED} more" if len(labels) > _NAMED else "")


def gap_warnings(
    groups: Sequence[tuple[datetime, str, list[int]]], rows: Sequence[dict[str, Any]], settings: SplitSettings
) -> list[str]:
    """Warnings for validation or test groups that come after more than ``max_gap_days`` without data.

    ``groups`` are (time, place, indices of its rows) sorted by time. Only a gap at or after the newest
    train group counts: one inside train is history, not a degenerate split. Paraphrases are not named.
    """
    if not settings.max_gap_days:
        return []
    longest = timedelta(days=settings.max_gap_days)
    first_later = next((index for index, (_, place, _) in enumerate(groups) if place != "train"), None)
    if first_later is None or first_later == 0:
        return []
    jump = next(
        (
            index
            for index in range(first_later, len(groups))
            if groups[index][0] - groups[index - 1][0] > longest
        ),
        None,
    )
    if jump is None:
        return []
    previous, start = groups[jump - 1][0], groups[jump][0]
    warnings = []
    for name in ("validation", "test"):
        total = sum(1 for _, place, _ in groups if place == name)
        after = [(time, members) for time, place, members in groups[jump:] if place == name]
        if not after:
            continue
        labels = [
            f"{rows[index]['id']} ({time.isoformat()})"
            for time, members in after
            for index in members
            if rows[index].get("augmented_from") is None
        ]
        warnings.append(
            f"{name}_split: {len(after)} of its {total} groups come after {(start - previous).days} days "
            f"without data (from {previous.isoformat()} to {start.isoformat()}), more than "
            f"split.max_gap_days ({settings.max_gap_days}): mistyped or far-future timestamps may decide "
            f"this split. Check the created_at of rows {name_rows(labels)}."
        )
    return warnings


def mixed_source_warnings(splits: dict[str, list[dict[str, Any]]], source_of: dict[str, str]) -> list[str]:
    """A warning per split that holds both timestamps from the file and made-up row-order ones."""
    warnings = []
    for name in SPLITS:
        sources = Counter(source_of[row["id"]] for row in splits[name])
        if len(sources) > 1:
            counts = ", ".join(f"{count} {source}" for source, count in sorted(sources.items()))
            warnings.append(
                f"{name}_split mixes created_at sources ({counts}): rows without a timestamp got one from "
                "their place in the file, so their order against real timestamps means nothing and neither "
                "does a cutoff between them. Give every row a created_at, or reject rows without one "
                "(data.missing_created_at: reject)."
            )
    return warnings


def split_summary(
    splits: dict[str, list[dict[str, Any]]],
    group_counts: Counter[str],
    cutoffs: Cutoffs,
    settings: SplitSettings,
    embargoed: dict[str, list[str]],
    source_of: dict[str, str],
) -> dict[str, dict[str, Any]]:
    """Metadata per split: rows, groups, time span, gap to the previous split, rule, timestamp sources."""
    summary: dict[str, dict[str, Any]] = {}
    previous_newest: datetime | None = None
    for name in SPLITS:
        rows = splits[name]
        times = [row_time(row) for row in rows]
        sources = Counter(source_of[row["id"]] for row in rows)
        entry: dict[str, Any] = {
            "groups": group_counts[name],
            "created_at_file_rows": sources["file"],
            "created_at_row_order_rows": sources["row_order"],
            "timestamps": _sources_text(sources),
            "cutoff": _rule(name, cutoffs, settings),
        }
        if times:
            oldest, newest = min(times), max(times)
            entry["time_span_days"] = round((newest - oldest).total_seconds() / 86400, 2)
            if previous_newest is not None:
                entry["days_after_previous_split"] = round(
                    (oldest - previous_newest).total_seconds() / 86400, 2
                )
            previous_newest = newest
        if name in embargoed:
            entry["embargoed_rows"] = len(embargoed[name])
            entry["embargoed_row_ids"] = name_rows(embargoed[name]) or "none"
        summary[name] = entry
    return summary


def _sources_text(sources: Counter[str]) -> str:
    if not sources:
        return "no rows"
    if len(sources) == 1:
        [source] = sources
        return f"{source} (all {sources[source]} rows)"
    return "mixed: " + ", ".join(f"{count} {source}" for source, count in sorted(sources.items()))


def _rule(name: str, cutoffs: Cutoffs, settings: SplitSettings) -> str:
    if name == "train":
        start = cutoffs.validation_start
        if start == NEVER:
            return "every group: validation and test are off"
        if not settings.embargo_days:
            return f"older than the next cutoff, {start.isoformat()}"
        return (
            f"older than {before(start, cutoffs.embargo).isoformat()}: split.embargo_days "
            f"{settings.embargo_days} before the next cutoff, {start.isoformat()}"
        )
    if not settings.enabled(name):
        return settings.rule(name)
    start = cutoffs.validation_start if name == "validation" else cutoffs.test_start
    return f"{settings.rule(name)}: from {start.isoformat()}"
