"""Exact, prefix and near-duplicate detection on conversations.

Exact: texts are compared after normalization (:func:`assets.shared.text.normalize_text`).
Prefix: a conversation whose normalized messages are the first messages of a longer one.
Near: the project's one notion of a near duplicate, :mod:`assets.shared.neardup` (character shingles,
MinHash-LSH candidates from rensa, exact Jaccard, the numbers and answer-follows-question rules), which
the split uses too; its names are re-exported here for the clean stage. :func:`largest_clusters` sums up
the near-duplicate clusters of a cleaning result for the people reading its metadata.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from assets.shared.neardup import (
    ConversationParts,
    NearDuplicate,
    NearDuplicateReport,
    NearDuplicateSettings,
    answer_follows_question,
    contents,
    find_near_duplicates,
    prompt_and_answer,
)
from assets.shared.shingles import comparison_text, numbers, shingle_set
from assets.shared.text import normalize_text

__all__ = [
    "ConversationParts",
    "NearDuplicate",
    "NearDuplicateReport",
    "NearDuplicateSettings",
    "answer_follows_question",
    "comparison_text",
    "contents",
    "find_exact_duplicates",
    "find_near_duplicates",
    "find_prefix_duplicates",
    "largest_clusters",
    "normalize_text",
    "numbers",
    "prompt_and_answer",
    "shingle_set",
    "text_hash",
]

# Rejection reasons whose ``duplicate_of`` names a near-duplicate cluster (by its kept row).
NEAR_DUPLICATE_REASONS = ("near_duplicate", "cleanlab_near_duplicate")


def text_hash(text: str) -> str:
    """A stable hex digest of the normalized text (Python's ``hash`` is salted per process)."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


def find_exact_duplicates(texts: list[str]) -> dict[int, int]:
    """Map the index of every repeated text to the index of its first occurrence."""
    first_seen: dict[str, int] = {}
    duplicates: dict[int, int] = {}
    for index, text in enumerate(texts):
        digest = text_hash(text)
        if digest in first_seen:
            duplicates[index] = first_seen[digest]
        else:
            first_seen[digest] = index
    return duplicates


def _message_key(message: Mapping[str, str]) -> bytes:
    """One normalized message, length-prefixed so that a sequence of keys has only one reading."""
    data = normalize_text(f"{message['role']}: {message['content']}").encode("utf-8")
    return len(data).to_bytes(8, "little") + data


def find_prefix_duplicates(conversations: Sequence[Sequence[Mapping[str, str]]]) -> dict[int, int]:
    """Map every conversation that is a proper prefix of another to the longest one that contains it.

    A prefix is compared message by message after :func:`normalize_text`, and counts only when it ends
    at an assistant turn of the longer conversation. Of several conversations that contain it, the one
    with the most messages is chosen, the earliest on ties; it is never itself a prefix of another, as
    a longer container would also contain the prefix. Each conversation is hashed once, incrementally, and
    every hash of a prefix ending at an assistant turn goes into one index: linear in the messages.
    """
    # Incremental digest of each prefix length: digest i covers messages[: i + 1].
    chains: list[list[bytes]] = []
    for messages in conversations:
        running = hashlib.sha256()
        chain = []
        for message in messages:
            running.update(_message_key(message))
            chain.append(running.copy().digest())
        chains.append(chain)
    # prefix digest -> (-messages, index) of the best container so far; min() picks longest, then earliest
    containers: dict[bytes, tuple[int, int]] = {}
    for index, (messages, chain) in enumerate(zip(conversations, chains, strict=True)):
        for end in range(len(messages) - 1):
            if messages[end]["role"] == "assistant":
                candidate = (-len(messages), index)
                containers[chain[end]] = min(containers.get(chain[end], candidate), candidate)
    return {
        index: containers[chain[-1]][1]
        for index, chain in enumerate(chains)
        if chain and chain[-1] in containers
    }


@dataclass(frozen=True)
class ClusterSummary:
    """One near-duplicate cluster of a cleaning result: its id (the kept row's id), the reason its other
    members were rejected, its size (the kept row included), the kept row and the first removed member."""

    cluster_id: str
    reason: str
    size: int
    kept: Mapping[str, Any] | None
    removed: Mapping[str, Any]


def largest_clusters(
    kept: Sequence[Mapping[str, Any]], rejected: Sequence[Mapping[str, Any]], limit: int = 10
) -> list[ClusterSummary]:
    """The ``limit`` largest near-duplicate clusters, largest first (then by cluster id).

    A cluster is named after the row it keeps: every removed member carries that id in ``duplicate_of``
    (with a reason of :data:`NEAR_DUPLICATE_REASONS`). ``kept`` is that row from ``kept``, or from
    ``rejected`` when a later step removed it too (cleanlab may drop the kept row of a MinHash cluster);
    None when neither holds it. ``size`` counts the removed members and the kept row.
    """
    members: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rejected:
        if row.get("reason") in NEAR_DUPLICATE_REASONS and row.get("duplicate_of") is not None:
            members.setdefault((str(row["duplicate_of"]), str(row["reason"])), []).append(row)
    by_id = {str(row["id"]): row for row in rejected}
    by_id.update({str(row["id"]): row for row in kept})
    ranked = sorted(members.items(), key=lambda item: (-len(item[1]), item[0]))[:limit]
    return [
        ClusterSummary(cluster_id, reason, len(removed) + 1, by_id.get(cluster_id), removed[0])
        for (cluster_id, reason), removed in ranked
    ]
