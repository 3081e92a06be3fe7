"""Exact, prefix and near-duplicate detection on conversations.

Exact: texts are compared after normalization (Unicode NFKC, case folding, whitespace collapsing).
Prefix: a conversation whose normalized messages are the first messages of a longer one.
Near: MinHash signatures over word shingles (Broder, 1997), LSH banding to find candidate pairs, then the
true Jaccard similarity of the shingle sets decides; clusters are the connected components of the
verified pairs and the earliest row of each cluster is the one kept. numpy only, seeded, deterministic.

Rows of one group (a conversation tree, a thread: same non-null ``group_id``) are never near duplicates
of each other: they are sibling answers to one prompt or continuations of one conversation, alike by
construction, and the split already keeps them together. Exact copies are still duplicates.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from assets.shared.groups import UnionFind, same_group
from assets.shared.text import normalize_text

if TYPE_CHECKING:
    import numpy as np

# Universal hashing modulo the Mersenne prime 2**31 - 1: products of two values below it fit in uint64.
_PRIME = (1 << 31) - 1
# Seed of the MinHash permutations; fixed so that the same data always gives the same clusters.
MINHASH_SEED = 1
# LSH bands are chosen so that a pair exactly at the threshold becomes a candidate with at least this
# probability; false candidates are cheap because every candidate is verified with the true Jaccard.
_CANDIDATE_RECALL = 0.99


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


def _check_groups(groups: Sequence[str | None] | None, size: int) -> None:
    if groups is not None and len(groups) != size:
        raise ValueError(f"got {size} rows but {len(groups)} group ids; pass one group id (or None) per row")


def word_shingles(text: str, size: int) -> frozenset[str]:
    """Word ``size``-grams of the normalized text; a text shorter than ``size`` words is one shingle."""
    words = normalize_text(text).split()
    if len(words) <= size:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[start : start + size]) for start in range(len(words) - size + 1))


def jaccard(left: frozenset[str], right: frozenset[str]) -> float:
    """Jaccard similarity of two sets; two empty sets share nothing, so 0."""
    union = len(left | right)
    return len(left & right) / union if union else 0.0


def candidate_probability(similarity: float, *, bands: int, rows: int) -> float:
    """Probability that a pair with this Jaccard agrees on all rows of at least one band."""
    return 1 - math.pow(1 - math.pow(similarity, rows), bands)


def lsh_bands(num_permutations: int, threshold: float) -> tuple[int, int]:
    """Pick (bands, rows per band) so a pair at ``threshold`` is a candidate with high probability.

    The largest ``r`` that still reaches the target recall gives the fewest false candidates.
    """
    best = (num_permutations, 1)
    for rows in range(1, num_permutations + 1):
        bands = num_permutations // rows
        if candidate_probability(threshold, bands=bands, rows=rows) >= _CANDIDATE_RECALL:
            best = (bands, rows)
    return best


def _shingle_hashes(shingles: frozenset[str]) -> np.ndarray:
    import numpy as np

    values = [
        int.from_bytes(hashlib.blake2b(shingle.encode("utf-8"), digest_size=8).digest(), "little") % _PRIME
        for shingle in sorted(shingles)
    ]
    return np.asarray(values, dtype=np.uint64)


def minhash_signatures(shingle_sets: list[frozenset[str]], *, num_permutations: int, seed: int) -> np.ndarray:
    """One MinHash signature per set, shape (n, num_permutations); empty sets get the all-max signature."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a = rng.integers(1, _PRIME, size=num_permutations, dtype=np.uint64)[:, None]
    b = rng.integers(0, _PRIME, size=num_permutations, dtype=np.uint64)[:, None]
    signatures = np.full((len(shingle_sets), num_permutations), _PRIME, dtype=np.uint64)
    for index, shingles in enumerate(shingle_sets):
        if shingles:
            hashes = _shingle_hashes(shingles)[None, :]
            signatures[index] = ((a * hashes + b) % _PRIME).min(axis=1)
    return signatures


def candidate_pairs(signatures: np.ndarray, *, bands: int, rows: int) -> list[tuple[int, int]]:
    """Pairs (i < j) whose signatures agree on every row of at least one band, sorted."""
    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        block = signatures[:, band * rows : (band + 1) * rows]
        for index in range(signatures.shape[0]):
            buckets[block[index].tobytes()].append(index)
        for members in buckets.values():
            for position, left in enumerate(members):
                pairs.update((left, right) for right in members[position + 1 :])
    return sorted(pairs)


@dataclass(frozen=True)
class NearDuplicate:
    """A row that is dropped as a near duplicate: the kept row of its cluster and its closest match."""

    index: int
    kept_index: int
    match_index: int
    jaccard: float


def find_near_duplicates(
    texts: list[str],
    *,
    threshold: float,
    num_permutations: int,
    shingle_size: int,
    seed: int = MINHASH_SEED,
    groups: Sequence[str | None] | None = None,
) -> dict[int, NearDuplicate]:
    """Cluster texts whose shingle Jaccard is >= ``threshold``; map every non-first member to its cluster.

    ``match_index`` is the verified neighbour with the highest Jaccard (earliest on ties); clusters are
    transitive, so the kept row itself may be less similar than the threshold to a distant member.
    ``groups`` (one group id or None per text) keeps rows of one group apart: see the module docstring.
    """
    _check_groups(groups, len(texts))
    shingle_sets = [word_shingles(text, shingle_size) for text in texts]
    signatures = minhash_signatures(shingle_sets, num_permutations=num_permutations, seed=seed)
    bands, rows = lsh_bands(num_permutations, threshold)
    clusters = UnionFind(len(texts))
    # (similarity, -index) of each row's best verified neighbour: higher similarity, then earlier row wins.
    best_match: dict[int, tuple[float, int]] = {}
    for left, right in candidate_pairs(signatures, bands=bands, rows=rows):
        if same_group(groups, left, right):
            continue
        similarity = jaccard(shingle_sets[left], shingle_sets[right])
        if similarity < threshold:
            continue
        clusters.union(left, right)
        for index, other in ((left, right), (right, left)):
            if index not in best_match or (similarity, -other) > best_match[index]:
                best_match[index] = (similarity, -other)
    duplicates: dict[int, NearDuplicate] = {}
    for index, root in clusters.duplicates(sorted(best_match), groups).items():
        similarity, negative_match = best_match[index]
        duplicates[index] = NearDuplicate(index, root, -negative_match, similarity)
    return duplicates
