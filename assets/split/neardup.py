"""The split's groups joined with near-duplicate clusters, so a cluster never straddles two splits.

Near duplicates are the project's one notion (:mod:`assets.shared.neardup`, the same rules and the same
``clean`` settings as the clean stage's dedup): character-shingle Jaccard at or over
``clean.near_dup_threshold``, same numbers, an answer that does not follow a changed question. Rows of one
:func:`assets.shared.groups.group_rows` group are never compared: they move together anyway. The leakage
check links the rows of the three splits the same way and reports every pair that lies in two splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assets.shared.groups import UnionFind, group_rows
from assets.shared.neardup import (
    ConversationParts,
    NearDuplicatePairs,
    NearDuplicateSettings,
    contents,
    near_duplicate_pairs,
)


@dataclass(frozen=True)
class LinkedGroups:
    """A group number per row (the smallest row index of its group), the near-duplicate pairs between
    rows of different :func:`group_rows` groups, and how many groups those pairs joined into others."""

    groups: list[int]
    pairs: NearDuplicatePairs
    joined: int


def link_groups(rows: Sequence[dict[str, Any]], settings: NearDuplicateSettings) -> LinkedGroups:
    """:func:`assets.shared.groups.group_rows` joined with near-duplicate clusters: the split's groups."""
    rows = list(rows)
    groups = group_rows(rows)
    messages = [row["messages"] for row in rows]
    pairs = near_duplicate_pairs(
        [contents(turns) for turns in messages], settings, groups=groups, parts=ConversationParts(messages)
    )
    if not len(pairs):
        return LinkedGroups(groups=groups, pairs=pairs, joined=0)
    union = UnionFind(len(rows))
    for index, group in enumerate(groups):
        union.union(index, group)
    for first, second in zip(pairs.first.tolist(), pairs.second.tolist(), strict=True):
        union.union(first, second)
    linked = [union.find(index) for index in range(len(rows))]
    return LinkedGroups(groups=linked, pairs=pairs, joined=len(set(groups)) - len(set(linked)))
