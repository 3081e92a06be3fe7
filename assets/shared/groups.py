"""Which rows belong together: conversation identity, groups and the same-group rule.

A group is a conversation tree or thread (same non-null ``group_id``), joined with the back-translated
paraphrases of its rows (``augmented_from``). Dedup never links two rows of one group as near duplicates
(they are sibling answers or continuations, alike by construction), and the split never lets a group
straddle two splits. Framework-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assets.shared.text import conversation_text, normalize_text


def conversation_key(messages: list[dict[str, str]]) -> str:
    """The normalized text of a conversation: the identity used by dedup and the leakage check."""
    return normalize_text(conversation_text(messages))


def same_group(groups: Sequence[str | None] | None, left: int, right: int) -> bool:
    """Whether two rows belong to one non-null group, and so must not be linked as near duplicates."""
    return groups is not None and groups[left] is not None and groups[left] == groups[right]


class UnionFind:
    """Disjoint sets whose root is always the smallest index, i.e. the earliest row in file order."""

    def __init__(self, size: int) -> None:
        self._parent = list(range(size))

    def find(self, index: int) -> int:
        root = index
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[index] != root:
            self._parent[index], index = root, self._parent[index]
        return root

    def union(self, left: int, right: int) -> None:
        left_root, right_root = self.find(left), self.find(right)
        if left_root != right_root:
            self._parent[max(left_root, right_root)] = min(left_root, right_root)

    def duplicates(self, indices: Sequence[int], groups: Sequence[str | None] | None) -> dict[int, int]:
        """Map each of ``indices`` that is not its cluster's root to the root, the row that is kept.

        A member of the root's own group is kept too: it can reach the cluster only through other rows
        (pairs within a group are never linked), and it is an alternative of the kept row, not a copy.
        """
        duplicates = {}
        for index in indices:
            root = self.find(index)
            if root != index and not same_group(groups, index, root):
                duplicates[index] = root
        return duplicates


def group_rows(rows: list[dict[str, Any]]) -> list[int]:
    """A group number per row: rows sharing a ``group_id`` or linked by ``augmented_from`` share one.

    The number is the index of the group's first row, so it is stable for a given row order.
    """
    groups = UnionFind(len(rows))
    first_with: dict[tuple[str, str], int] = {}
    for index, row in enumerate(rows):
        keys = [("id", row["id"])]
        if row.get("group_id") is not None:
            keys.append(("group", row["group_id"]))
        if row.get("augmented_from") is not None:
            # A paraphrase joins its source through the source's id.
            keys.append(("id", row["augmented_from"]))
        for key in keys:
            if key in first_with:
                groups.union(index, first_with[key])
            else:
                first_with[key] = index
    return [groups.find(index) for index in range(len(rows))]
