"""Time-based train / validation / test split that never lets a group straddle two splits.

A group is the connected set of rows sharing a ``group_id`` (a thread, a message tree), linked by
``augmented_from`` (a source and its paraphrases) or near duplicates of each other (:mod:`neardup`). A
group's time is its latest ``created_at``. The cutoffs (:mod:`cutoffs`) come from dates or quantiles;
groups in the optional embargo gap before a cutoff are dropped and counted, so the newest train group is
at least ``split.embargo_days`` older than the oldest validation group, and validation than test. Every
asked-for split must hold ``split.min_groups_per_split`` groups, or the split fails with a setting that
works (:mod:`sizes`). Augmented rows are training material only; those of a group that lands in
validation or test are dropped and counted. Warnings about degenerate splits and the metadata per split
come from :mod:`report`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from assets.shared.errors import InputError
from assets.shared.timestamps import row_time
from assets.split.cutoffs import GAP_BEFORE, NEVER, SPLITS, cutoffs_for
from assets.split.neardup import link_groups
from assets.split.report import gap_warnings, mixed_source_warnings, split_summary, timestamp_sources
from assets.split.settings import SplitSettings
from assets.split.sizes import check_sizes, offer

__all__ = ["NEVER", "SplitResult", "SplitSettings", "split_by_time"]


@dataclass(frozen=True)
class SplitResult:
    """The three splits (sorted by created_at, then id), the cutoffs used and what was dropped or found.

    ``embargoed`` maps validation / test to the ids of the rows dropped in the gap before it;
    ``summary`` is the metadata per split (see :func:`report.split_summary`); ``warnings`` are about
    degenerate splits and are also in the failure message when a split is too small.
    """

    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    test: list[dict[str, Any]]
    validation_start: datetime
    test_start: datetime
    dropped_augmented: int
    groups: dict[str, int]
    embargoed: dict[str, list[str]]
    near_duplicate_joins: int
    warnings: list[str]
    summary: dict[str, dict[str, Any]]


def split_by_time(rows: list[dict[str, Any]], settings: SplitSettings) -> SplitResult:
    """Split rows by group time into train, validation and test; see the module docstring."""
    if not rows:
        raise InputError("there are no rows to split; the upstream dataset is empty")
    times = [row_time(row) for row in rows]
    linked = link_groups(rows, settings.near_duplicates)
    groups = linked.groups
    group_time: dict[int, datetime] = {}
    members: dict[int, list[int]] = defaultdict(list)
    for index, (group, time) in enumerate(zip(groups, times, strict=True)):
        group_time[group] = max(time, group_time.get(group, time))
        members[group].append(index)
    ordered = sorted(group_time, key=lambda group: (group_time[group], group))
    sorted_times = [group_time[group] for group in ordered]
    try:
        cutoffs = cutoffs_for(sorted_times, settings)
    except InputError as error:
        raise InputError(f"{error}. {offer(sorted_times, settings)}") from None
    place = {group: cutoffs.place(group_time[group]) for group in ordered}
    warnings = gap_warnings(
        [(group_time[group], place[group], members[group]) for group in ordered], rows, settings
    )
    check_sizes(sorted_times, settings, warnings)

    chosen: dict[str, list[int]] = {name: [] for name in SPLITS}
    embargoed: dict[str, list[str]] = {name: [] for name in GAP_BEFORE}
    gap_of = {label: name for name, label in GAP_BEFORE.items()}
    dropped_augmented = 0
    for index, row in enumerate(rows):
        name = place[groups[index]]
        if name in gap_of:
            embargoed[gap_of[name]].append(row["id"])
        elif name != "train" and row.get("augmented_from") is not None:
            dropped_augmented += 1
        else:
            chosen[name].append(index)

    def ordered_rows(indices: list[int]) -> list[dict[str, Any]]:
        return [rows[index] for index in sorted(indices, key=lambda index: (times[index], rows[index]["id"]))]

    splits = {name: ordered_rows(indices) for name, indices in chosen.items()}
    group_counts = Counter({name: len({groups[index] for index in chosen[name]}) for name in SPLITS})
    source_of = timestamp_sources(rows)
    warnings += mixed_source_warnings(splits, source_of)
    return SplitResult(
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        validation_start=cutoffs.validation_start,
        test_start=cutoffs.test_start,
        dropped_augmented=dropped_augmented,
        groups=dict(group_counts),
        embargoed=embargoed,
        near_duplicate_joins=linked.joined,
        warnings=warnings,
        summary=split_summary(splits, group_counts, cutoffs, settings, embargoed, source_of),
    )
