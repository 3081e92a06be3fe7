"""Leakage checks between the train, validation and test splits.

Leakage makes evaluation numbers lie: the same example (by id or by normalized text), a near duplicate
(:mod:`assets.shared.neardup`, the clean stage's notion and settings) or the same group in two splits,
evaluation data that is not newer than the training data, or a machine-made paraphrase used for
evaluation. :func:`find_leaks` lists every such problem in words, naming the rows; an empty list means
none.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from assets.shared.groups import conversation_key
from assets.shared.neardup import NearDuplicateSettings
from assets.shared.timestamps import row_time
from assets.split.neardup import LinkedGroups, link_groups

_ORDER = ("train", "validation", "test")


def _shared(
    splits: dict[str, list[dict[str, Any]]], label: str, key_of: Callable[[dict[str, Any]], str | None]
) -> list[str]:
    """One problem per key found in more than one split, naming both splits and a row from each."""
    first_seen: dict[str, tuple[str, str]] = {}
    reported: set[str] = set()
    problems: list[str] = []
    for name in _ORDER:
        for row in splits[name]:
            key = key_of(row)
            if key is None:
                continue
            first_split, first_id = first_seen.setdefault(key, (name, row["id"]))
            if first_split != name and key not in reported:
                reported.add(key)
                problems.append(
                    f"{label.format(key=key)} is in both {first_split} (row {first_id!r}) and {name} "
                    f"(row {row['id']!r})"
                )
    return problems


def _near_duplicates(
    rows: list[dict[str, Any]],
    names: list[str],
    texts: list[str],
    linked: LinkedGroups,
    settings: NearDuplicateSettings,
) -> list[str]:
    """One problem per near-duplicate pair in two splits, naming both rows; exact copies are left to the
    conversation-text check."""
    problems = []
    pairs = linked.pairs
    for first, second, similarity in zip(
        pairs.first.tolist(), pairs.second.tolist(), pairs.jaccard.tolist(), strict=True
    ):
        if names[first] == names[second] or texts[first] == texts[second]:
            continue
        problems.append(
            f"near duplicates: {names[second]} row {rows[second]['id']!r} and {names[first]} row "
            f"{rows[first]['id']!r} (character {settings.shingle_size}-gram Jaccard {similarity:.2f}, at "
            f"least clean.near_dup_threshold {settings.threshold}, same numbers)"
        )
    return problems


def _temporal(rows: list[dict[str, Any]], names: list[str], groups: list[int]) -> list[str]:
    """Each validation group must be newer than all of train, each test group newer than all of validation.

    A group's time is its latest row, with the split's groups (near duplicates included); an old row
    inside a new group is fine, because the group moves as a whole.
    """
    group_time: dict[int, datetime] = {}
    for group, row in zip(groups, rows, strict=True):
        group_time[group] = max(row_time(row), group_time.get(group, row_time(row)))
    problems: list[str] = []
    for earlier, later in (("train", "validation"), ("validation", "test")):
        earlier_times = [row_time(row) for row, name in zip(rows, names, strict=True) if name == earlier]
        if not earlier_times:
            continue
        newest = max(earlier_times)
        for row, name, group in zip(rows, names, groups, strict=True):
            if name == later and group_time[group] <= newest:
                problems.append(
                    f"{later} row {row['id']!r} (group time {group_time[group].isoformat()}) is not "
                    f"newer than the newest {earlier} row ({newest.isoformat()})"
                )
    return problems


def find_leaks(
    train: list[dict[str, Any]],
    validation: list[dict[str, Any]],
    test: list[dict[str, Any]],
    near: NearDuplicateSettings,
) -> list[str]:
    """Human-readable leakage problems between the three splits; an empty list means no leak. ``near``:
    what counts as a near duplicate (the ``clean`` settings the split ran with)."""
    splits = {"train": train, "validation": validation, "test": test}
    problems = _shared(splits, "id {key!r}", lambda row: row["id"])
    problems += _shared(splits, "group_id {key!r}", lambda row: row.get("group_id"))
    problems += _shared(splits, "the same conversation text", lambda row: conversation_key(row["messages"]))
    rows = [row for name in _ORDER for row in splits[name]]
    names = [name for name in _ORDER for _ in splits[name]]
    texts = [conversation_key(row["messages"]) for row in rows]
    linked = link_groups(rows, near)
    problems += _near_duplicates(rows, names, texts, linked, near)
    problems += _temporal(rows, names, linked.groups)
    for name in ("validation", "test"):
        problems += [
            f"augmented row {row['id']!r} (from {row['augmented_from']!r}) is in {name}; "
            "augmented rows belong in train only"
            for row in splits[name]
            if row.get("augmented_from") is not None
        ]
    return problems
