"""Near-duplicate conversations between rows with different labels: character shingles, MinHash, LSH.

The split joins near-duplicate rows into one group before cutting (:func:`link_groups`: labels are the
:func:`group_rows` groups), so a cluster never straddles two splits; the leakage check links the rows of
the three splits the same way and reports every pair that lies in two splits. Texts are compared after
the project's one normalization (:func:`assets.shared.groups.conversation_key`). A pair is a near
duplicate when the Jaccard similarity of its character 5-gram sets is at least
:data:`NEAR_DUPLICATE_JACCARD` and both texts hold the same numbers in the same order: templated rows that
differ only in their numbers ("What is 30% of 200?" and "What is 40% of 300?") have different answers and
are different examples.

Candidates come from MinHash signatures (Broder, 1997) banded for LSH, computed with numpy over all rows
at once (no Python loop over shingles); every candidate is verified with the exact Jaccard of its shingle
sets. numpy only, seeded, deterministic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assets.shared.groups import UnionFind, conversation_key, group_rows

if TYPE_CHECKING:
    import numpy as np

# Character shingles: one changed character alters at most this many of them, so short texts with a typo
# still compare as near duplicates (word shingles cannot see a one-line question as anything but new).
SHINGLE_CHARS = 5
# Jaccard similarity of the shingle sets at or above which two conversations are near duplicates; the
# same value as clean.near_dup_threshold, on characters rather than words.
NEAR_DUPLICATE_JACCARD = 0.8
# LSH: 10 bands of 4 MinHash values. A pair exactly at the threshold becomes a candidate with probability
# 1 - (1 - 0.8**4)**10 = 0.995; one at Jaccard 0.3 with 0.08 (and is then rejected by verification).
_BANDS = 10
_ROWS_PER_BAND = 4
# In a band bucket each row is verified against at most this many others of similar size, so a bucket of
# thousands of templated rows stays linear. A true pair shares several of the 10 buckets.
_MAX_COMPARISONS = 64
# Rows per numpy batch, to bound memory on long texts.
_BATCH_CHARS = 4_000_000
_SEED = 1
# bytes.translate table: digits stay, every other byte becomes a space.
_DIGITS_ONLY = bytes(code if 48 <= code <= 57 else 32 for code in range(256))


@dataclass(frozen=True)
class NearDuplicate:
    """Two rows (by index, ``first < second``) whose texts are near duplicates, and their similarity."""

    first: int
    second: int
    jaccard: float


def shingles(text: str) -> set[str]:
    """The character 5-grams of a normalized text; a shorter text is its own single shingle."""
    if len(text) <= SHINGLE_CHARS:
        return {text}
    return {text[start : start + SHINGLE_CHARS] for start in range(len(text) - SHINGLE_CHARS + 1)}


def jaccard(left: set[str], right: set[str]) -> float:
    return len(left & right) / len(left | right) if left or right else 1.0


def numbers(text: str) -> bytes:
    """The ASCII numbers of a text in order, space-separated (NFKC has already folded other digit forms)."""
    return b" ".join(text.encode("utf-8", "surrogatepass").translate(_DIGITS_ONLY).split())


def _numbers_key(text: str) -> int:
    """A stable 63-bit digest of :func:`numbers`: part of every bucket key."""
    digest = hashlib.blake2b(numbers(text), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _signatures(texts: Sequence[str]) -> np.ndarray:
    """MinHash signatures (rows x bands*rows_per_band, uint32) of the texts' character shingles."""
    import numpy as np

    count = _BANDS * _ROWS_PER_BAND
    # Each permutation multiplies the 32-bit shingle hashes by an odd constant modulo 2**32 (a bijection
    # whose high bits depend on every bit of the hash), then adds an offset: one pass over the shingles.
    generator = np.random.default_rng(_SEED)
    multipliers = generator.integers(0, 2**31, size=count, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    offsets = generator.integers(0, 2**32, size=count, dtype=np.uint32)
    signatures = np.empty((len(texts), count), dtype=np.uint32)
    start = 0
    while start < len(texts):
        stop, size = start, 0
        while stop < len(texts) and (size < _BATCH_CHARS or stop == start):
            size += max(len(texts[stop]), SHINGLE_CHARS)
            stop += 1
        hashes, starts = _shingle_hashes(texts[start:stop])
        permuted = np.empty_like(hashes)
        with np.errstate(over="ignore"):
            for column in range(count):
                np.multiply(hashes, multipliers[column], out=permuted)
                permuted += offsets[column]
                signatures[start:stop, column] = np.minimum.reduceat(permuted, starts)
        start = stop
    return signatures


def _shingle_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A 32-bit hash of every character 5-gram of every text, row after row, and where each row starts."""
    import numpy as np

    padded = [text.ljust(SHINGLE_CHARS, "\0") for text in texts]
    codes = np.frombuffer("".join(padded).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lengths = np.fromiter((len(text) for text in padded), dtype=np.int64, count=len(padded))
    windows = len(codes) - SHINGLE_CHARS + 1
    hashes = codes[:windows].copy()
    with np.errstate(over="ignore"):
        for offset in range(1, SHINGLE_CHARS):
            hashes *= np.uint32(0x01000193)
            hashes += codes[offset : offset + windows]
        # murmur3's finalizer, so that nearby code points give unrelated hashes.
        hashes ^= hashes >> np.uint32(16)
        hashes *= np.uint32(0x85EBCA6B)
        hashes ^= hashes >> np.uint32(13)
        hashes *= np.uint32(0xC2B2AE35)
        hashes ^= hashes >> np.uint32(16)
    # A window belongs to a row when it ends inside it: the last SHINGLE_CHARS - 1 starts of each row
    # run into the next one. Every padded row keeps at least one window.
    ends = np.cumsum(lengths)
    inside = np.ones(windows, dtype=bool)
    for back in range(1, SHINGLE_CHARS):
        starts_past = ends - back
        inside[starts_past[starts_past < windows]] = False
    starts = np.concatenate(([0], np.cumsum(lengths - SHINGLE_CHARS + 1)[:-1]))
    return hashes[inside], starts


def _buckets(texts: Sequence[str]) -> list[list[int]]:
    """Rows that share a band of MinHash values and their numbers: every bucket of two rows or more."""
    import numpy as np

    signatures = _signatures(texts)
    numbers = np.fromiter((_numbers_key(text) for text in texts), dtype=np.uint64, count=len(texts))
    buckets: list[list[int]] = []
    with np.errstate(over="ignore"):
        for band in range(_BANDS):
            key = numbers.copy()
            for column in range(band * _ROWS_PER_BAND, (band + 1) * _ROWS_PER_BAND):
                key = key * np.uint64(0x9E3779B97F4A7C15) + signatures[:, column].astype(np.uint64)
            order = np.argsort(key, kind="stable")
            sorted_keys = key[order]
            edges = np.flatnonzero(np.diff(sorted_keys)) + 1
            run_starts = np.concatenate(([0], edges))
            run_stops = np.concatenate((edges, [len(order)]))
            shared = run_stops - run_starts > 1
            for run_start, run_stop in zip(
                run_starts[shared].tolist(), run_stops[shared].tolist(), strict=True
            ):
                buckets.append(order[run_start:run_stop].tolist())
    return buckets


def near_duplicates(texts: Sequence[str], labels: Sequence[Hashable]) -> list[NearDuplicate]:
    """Every verified near-duplicate pair of normalized ``texts`` whose ``labels`` differ, sorted.

    Pairs with equal labels (one group, one split) are never compared.
    """
    if len(set(labels)) < 2:
        return []
    sets: dict[int, set[str]] = {}

    def shingles_of(index: int) -> set[str]:
        if index not in sets:
            sets[index] = shingles(texts[index])
        return sets[index]

    found: dict[tuple[int, int], float] = {}
    seen: set[tuple[int, int]] = set()
    for bucket in _buckets(texts):
        if len({labels[index] for index in bucket}) < 2:
            continue
        # Sorted by shingle count: a pair at Jaccard t has a size ratio of at least t, so each row only
        # needs the rows just after it.
        members = sorted(bucket, key=lambda index: (len(shingles_of(index)), index))
        for position, left in enumerate(members):
            size = len(shingles_of(left))
            for right in members[position + 1 : position + 1 + _MAX_COMPARISONS]:
                if len(shingles_of(right)) * NEAR_DUPLICATE_JACCARD > size:
                    break
                pair = (min(left, right), max(left, right))
                if labels[left] == labels[right] or pair in seen:
                    continue
                seen.add(pair)
                if texts[left] == texts[right]:
                    found[pair] = 1.0
                    continue
                if numbers(texts[left]) != numbers(texts[right]):
                    continue
                similarity = jaccard(shingles_of(left), shingles_of(right))
                if similarity >= NEAR_DUPLICATE_JACCARD:
                    found[pair] = similarity
    return [NearDuplicate(first, second, found[(first, second)]) for first, second in sorted(found)]


@dataclass(frozen=True)
class LinkedGroups:
    """A group number per row (the smallest row index of its group), the near-duplicate pairs between
    rows of different :func:`group_rows` groups, and how many groups those pairs joined into others."""

    groups: list[int]
    pairs: list[NearDuplicate]
    joined: int


def link_groups(rows: Sequence[dict[str, Any]], texts: Sequence[str] | None = None) -> LinkedGroups:
    """:func:`assets.shared.groups.group_rows` joined with near-duplicate clusters: the split's groups.

    ``texts`` are the rows' :func:`conversation_key`, when the caller has them already.
    """
    rows = list(rows)
    groups = group_rows(rows)
    if texts is None:
        texts = [conversation_key(row["messages"]) for row in rows]
    pairs = near_duplicates(texts, groups)
    if not pairs:
        return LinkedGroups(groups=groups, pairs=[], joined=0)
    union = UnionFind(len(rows))
    for index, group in enumerate(groups):
        union.union(index, group)
    for pair in pairs:
        union.union(pair.first, pair.second)
    linked = [union.find(index) for index in range(len(rows))]
    return LinkedGroups(groups=linked, pairs=pairs, joined=len(set(groups)) - len(set(linked)))
