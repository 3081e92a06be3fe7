"""Near duplicates: the project's one notion, used by the clean stage's dedup and by the split (its groups
and its leakage check).

Two conversations are near duplicates when

- the Jaccard similarity of their sets of character ``shingle_size``-grams, taken on the comparison text
  (:mod:`assets.shared.shingles`: normalized, without punctuation and spaces), is at least ``threshold``;
- they hold the same numbers in the same order ("Convert 103 °C to Fahrenheit" and "Convert 114 °C ..."
  have different correct answers). The numbers are part of every LSH bucket key, so such rows are never
  even compared;
- when their (prompt, answer) parts are given: the answer does not follow the question. When the same
  word (or character, in scripts without spaces) was swapped in both the prompt and the answer ("How many
  strings does a violin have?" / "A violin has four strings" next to the hexagon's sides), the rows are two
  questions with their own answers. A copy with an edited question and the same answer, or the same
  question and an edited answer, is a near duplicate;
- and they are not in one group (same non-null ``groups`` label): the clean stage passes ``group_id`` (a
  tree's sibling answers are alike by construction), the split its own groups (already kept together).

Candidates come from MinHash signatures (Broder, 1997) computed by the rensa library (R-MinHash, in
Rust), banded for LSH (Leskovec, Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3); every candidate
is verified with the exact Jaccard of its shingle sets. Defaults (params.yaml ``clean``, read by the
split too): character 5-grams and Jaccard 0.7, the defaults of Data-Juicer's MinHash deduplicator (window
5, threshold 0.7), whose character tokenization it recommends for Chinese-like text (Chen et al., 2024,
"Data-Juicer: A One-Stop Data Processing System for Large Language Models"); 128 permutations,
datasketch's default, which is enough as the signatures only find candidates.

Memory: the texts are read in batches of about :data:`assets.shared.shingles.BATCH_CHARS` characters;
only the signatures (``n x num_permutations`` uint32) and one salt per row stay for the whole run; a band's
candidate pairs are int64 codes, estimated by the signatures in chunks, and only the likely ones are kept;
the shingles of the rows of a batch of likely pairs are computed for its verification and dropped after
it. The 1M-row benchmark measured where the memory went before (docs/benchmarks.md).

Clusters (:func:`find_near_duplicates`) are the connected components of the verified pairs
(:class:`assets.shared.groups.UnionFind`); the earliest row of each cluster is the one kept, and the
cluster is named after it. Seeded and deterministic. Framework-free.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from assets.shared.groups import UnionFind, same_group
from assets.shared.shingles import (
    MIX,
    char_batches,
    comparison_text,
    distinct_shingles,
    numbers,
    shingle_hashes,
    sorted_jaccard,
    words,
)
from assets.shared.text import normalize_text

if TYPE_CHECKING:
    import numpy as np

# Seed of the MinHash permutations; fixed so that the same data always gives the same clusters.
MINHASH_SEED = 1
# LSH bands are chosen so that a pair exactly at the threshold becomes a candidate with at least this
# probability (at 0.7 and 128 permutations: 25 bands of 5, 0.99 at 0.7 and 0.999 at 0.75); every
# candidate is then verified, so the rest is a trade of candidates (time) against recall.
_CANDIDATE_RECALL = 0.98
# In a band bucket each row is paired with the next this many rows of the bucket (in file order), so a
# bucket of thousands of templated rows stays linear; a true pair shares several of the buckets.
_BUCKET_WINDOW = 32
# Before the exact check, a candidate must agree on at least (threshold - this) of its MinHash values:
# 3.7 standard deviations of the estimate at Jaccard 0.7 and 128 permutations (sqrt(0.21 / 128) = 0.04).
# On the planted benchmark no pair at Jaccard >= 0.7 agreed on fewer than 0.60 of them.
_ESTIMATE_MARGIN = 0.15
# Rows whose words the answer-follows-question rule keeps at hand.
_PART_CACHE = 4096
# Candidate pairs whose MinHash agreement is computed at once, and pairs verified together (the shingles
# of their rows are computed for them and dropped after): both bound memory, not results.
_ESTIMATE_CHUNK = 1 << 16
_VERIFY_CHUNK = 1 << 14


@dataclass(frozen=True)
class NearDuplicateSettings:
    """What makes two rows near duplicates; the values of params.yaml ``clean.near_dup_threshold``,
    ``clean.minhash_permutations`` and ``clean.shingle_size`` (the split reads the same entries).
    Raises ValueError naming the setting when a value is out of range."""

    threshold: float
    num_permutations: int
    shingle_size: int
    seed: int = MINHASH_SEED

    def __post_init__(self) -> None:
        checks = (
            ("near_dup_threshold", self.threshold, (int, float), lambda v: 0 < v <= 1, "a number in (0, 1]"),
            ("minhash_permutations", self.num_permutations, int, lambda v: v >= 1, "a whole number >= 1"),
            ("shingle_size", self.shingle_size, int, lambda v: v >= 1, "a whole number >= 1"),
        )
        for name, value, kind, rule, wanted in checks:
            if isinstance(value, bool) or not isinstance(value, kind) or not rule(value):
                raise ValueError(f"clean.{name} must be {wanted}, got {value!r}; fix it in params.yaml")

    @classmethod
    def from_params(cls, values: Mapping[str, object]) -> NearDuplicateSettings:
        """From a stage's settings holding the three ``clean`` entries by their params.yaml names."""
        return cls(
            threshold=values["near_dup_threshold"],  # type: ignore[arg-type]
            num_permutations=values["minhash_permutations"],  # type: ignore[arg-type]
            shingle_size=values["shingle_size"],  # type: ignore[arg-type]
        )

    def describe(self) -> str:
        """The rule in words, for messages: the metric, the threshold and the setting it comes from."""
        return (
            f"character {self.shingle_size}-gram Jaccard >= clean.near_dup_threshold {self.threshold}, "
            "same numbers"
        )


def contents(messages: Sequence[Mapping[str, str | None]]) -> str:
    """The text of every turn, in order, without role names (which would make short rows look alike);
    a turn's tool calls count (two calls with other arguments are other examples)."""
    return "\n".join(
        (m["content"] or "") + (f" {m['tool_calls']}" if m.get("tool_calls") else "") for m in messages
    )


def prompt_and_answer(messages: Sequence[Mapping[str, str | None]]) -> tuple[str, str]:
    """A conversation as (prompt, answer): the text of its system and user turns, and of its assistant
    turns, each joined with line breaks."""
    prompt = "\n".join(m["content"] or "" for m in messages if m["role"] != "assistant")
    return prompt, "\n".join(m["content"] or "" for m in messages if m["role"] == "assistant")


class ConversationParts(Sequence[tuple[str, str]]):
    """The (prompt, answer) of each conversation, made when asked for: the rule that uses them reads only
    the rows of verified pairs, so a million rows need not hold a million pairs of strings."""

    def __init__(self, conversations: Sequence[Sequence[Mapping[str, str | None]]]) -> None:
        self._conversations = conversations

    def __len__(self) -> int:
        return len(self._conversations)

    def __getitem__(self, index: int) -> tuple[str, str]:  # type: ignore[override]
        return prompt_and_answer(self._conversations[index])


@dataclass(frozen=True)
class _Part:
    """One prompt or answer as the answer-follows-question rule sees it."""

    words: frozenset[str]
    text: str

    @classmethod
    def of(cls, text: str) -> _Part:
        normalized = normalize_text(text)
        return cls(words(normalized, normalized=True), comparison_text(normalized, normalized=True))


def _changed_words(left: _Part, right: _Part) -> set[str]:
    """Words of either part that the other lacks, even run together (``"f i v e x"`` has ``"fivex"``)."""
    changed = {word for word in left.words - right.words if word not in right.text}
    return changed | {word for word in right.words - left.words if word not in left.text}


def answer_follows_question(left: tuple[str, str], right: tuple[str, str]) -> bool:
    """Whether two (prompt, answer) pairs changed a word in both parts: then the answer changed because
    the question did, and the rows are two examples of one template, not copies."""
    return _follows(tuple(map(_Part.of, left)), tuple(map(_Part.of, right)))


def _follows(left: Sequence[_Part], right: Sequence[_Part]) -> bool:
    return bool(_changed_words(left[0], right[0]) & _changed_words(left[1], right[1]))


def minhash_signatures(texts: Sequence[str], *, num_permutations: int, seed: int, size: int) -> np.ndarray:
    """R-MinHash signatures (rensa) of comparison texts' shingle sets, shape (n, num_permutations), uint32.

    An empty text gets the all-max signature. rensa rather than datasketch or our numpy code: on the planted
    benchmark its signatures cost a few microseconds a row against hundreds for datasketch's
    ``MinHash.update_batch`` (see docs/benchmarks.md); the shingles are hashed here, vectorized, and passed
    to it pre-hashed. Its signatures change between minor versions (0.5 is its algorithm version 2); none
    is stored, so only candidates could differ, and every candidate is verified exactly."""
    import numpy as np

    signatures = np.empty((len(texts), num_permutations), dtype=np.uint32)
    for start, stop in char_batches(texts):
        signatures[start:stop] = _sign(texts[start:stop], num_permutations, seed, size)
    return signatures


def _sign(texts: Sequence[str], num_permutations: int, seed: int, size: int) -> np.ndarray:
    import numpy as np
    from rensa import RMinHash

    hashes, offsets = shingle_hashes(texts, size)
    matrix = RMinHash.digest_matrix_from_flat_token_hashes(
        hashes, offsets.astype(np.uint64), num_permutations, seed
    )
    return np.array(matrix.to_rows(), dtype=np.uint32).reshape(-1, num_permutations)


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


def _band_pairs(signatures: np.ndarray, salts: np.ndarray, columns: range) -> np.ndarray:
    """Pair codes ``i * n + j`` (``i < j``) of rows that share these signature columns and their salt;
    within a bucket each row is paired with the next :data:`_BUCKET_WINDOW` rows of the bucket."""
    import numpy as np

    n = signatures.shape[0]
    key = salts.copy()
    with np.errstate(over="ignore"):
        for column in columns:
            key *= np.uint64(MIX)
            key += signatures[:, column]
    # Stable: inside a bucket the rows stay in file order, so each pair is (earlier, later).
    order = np.argsort(key, kind="stable")
    sorted_keys = key[order]
    del key
    shared = sorted_keys[1:] == sorted_keys[:-1]
    members = np.zeros(n, dtype=bool)
    members[1:] |= shared
    members[:-1] |= shared
    order, sorted_keys = order[members], sorted_keys[members]
    found = [np.zeros(0, dtype=np.int64)]
    for distance in range(1, _BUCKET_WINDOW + 1):
        same = np.flatnonzero(sorted_keys[distance:] == sorted_keys[:-distance])
        if not same.size:
            break
        found.append(order[same] * n + order[same + distance])
    return np.unique(np.concatenate(found))


def candidate_pairs(
    signatures: np.ndarray, salts: np.ndarray, *, bands: int, rows: int, min_agreement: float = 0.0
) -> np.ndarray:
    """Pairs ``(i, j)``, ``i < j``, that share a band of MinHash values and their salt, sorted, shape (m, 2),
    keeping only those whose signatures agree on at least ``min_agreement`` of their values.

    Band by band, the pairs not yet found likely are estimated and only the likely ones are kept: nothing
    holds every pair met so far, so memory follows the likely pairs (8 bytes each). An unlikely pair is
    estimated again in each band it shares, which is rare: a pair at Jaccard s shares a given band of r
    rows with probability s**r (0.03 at s = 0.5 and r = 5).
    """
    import numpy as np

    n = signatures.shape[0]
    likely = np.zeros(0, dtype=np.int64)
    for band in range(bands):
        codes = _band_pairs(signatures, salts, range(band * rows, (band + 1) * rows))
        if likely.size:
            at = np.minimum(np.searchsorted(likely, codes), likely.size - 1)
            codes = codes[likely[at] != codes]
        found = [likely]
        for start in range(0, codes.size, _ESTIMATE_CHUNK):
            chunk = codes[start : start + _ESTIMATE_CHUNK]
            agreement = (signatures[chunk // n] == signatures[chunk % n]).mean(axis=1)
            found.append(chunk[agreement >= min_agreement])
        # Both runs are sorted: the stable sort merges them.
        likely = np.sort(np.concatenate(found), kind="stable")
    return np.stack((likely // n, likely % n), axis=1) if n else np.zeros((0, 2), dtype=np.int64)


def _salt(normalized: str, compared: str, index: int) -> int:
    """A row's bucket salt: a digest of its numbers, so rows with other numbers never share a bucket; a
    row without shingles gets one of its own (its all-max signature would match every other empty row)."""
    key = " ".join(numbers(normalized, normalized=True)) if compared else f"\0empty {index}"
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


@dataclass(frozen=True)
class NearDuplicatePairs:
    """Every verified near-duplicate pair, as parallel numpy arrays sorted by (first, second).

    ``first`` and ``second`` are row indices (int64, ``first < second``), ``jaccard`` their similarity
    (float64). ``candidates`` counts the LSH candidate pairs likely by their signatures, ``verified`` those
    at or over the threshold, ``kept_apart`` those a rule kept apart (``same_group``,
    ``answer_follows_question``).
    """

    first: np.ndarray
    second: np.ndarray
    jaccard: np.ndarray
    candidates: int = 0
    verified: int = 0
    kept_apart: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.first)


def _check_length(name: str, values: Sequence[object] | None, size: int) -> None:
    if values is not None and len(values) != size:
        raise ValueError(f"got {size} rows but {len(values)} {name}; pass one per row")


def near_duplicate_pairs(
    texts: Sequence[str],
    settings: NearDuplicateSettings,
    *,
    groups: Sequence[Hashable | None] | None = None,
    parts: Sequence[tuple[str, str]] | None = None,
) -> NearDuplicatePairs:
    """Every pair of ``texts`` that are near duplicates by the rules of this module.

    ``groups`` (one label or None per text) keeps rows with the same non-null label apart; ``parts`` (one
    (prompt, answer) per text, e.g. :class:`ConversationParts`) turns on the answer-follows-question rule.
    Raises ValueError when ``groups`` or ``parts`` do not have one entry per text.
    """
    import numpy as np

    _check_length("group ids", groups, len(texts))
    _check_length("(prompt, answer) parts", parts, len(texts))
    size, permutations = settings.shingle_size, settings.num_permutations
    signatures = np.empty((len(texts), permutations), dtype=np.uint32)
    salts = np.empty(len(texts), dtype=np.uint64)
    for start, stop in char_batches(texts):
        compared = []
        for index in range(start, stop):
            normalized = normalize_text(texts[index])
            compared.append(comparison_text(normalized, normalized=True))
            salts[index] = _salt(normalized, compared[-1], index)
        signatures[start:stop] = _sign(compared, permutations, settings.seed, size)
    bands, rows = lsh_bands(permutations, settings.threshold)
    likely = candidate_pairs(
        signatures, salts, bands=bands, rows=rows, min_agreement=settings.threshold - _ESTIMATE_MARGIN
    )
    del signatures, salts

    @functools.lru_cache(maxsize=_PART_CACHE)
    def parts_of(index: int) -> tuple[_Part, _Part]:
        prompt, answer = parts[index]  # type: ignore[index]
        return _Part.of(prompt), _Part.of(answer)

    kept_apart = {"same_group": 0, "answer_follows_question": 0}
    found: list[tuple[int, int, float]] = []
    verified = 0
    for start in range(0, len(likely), _VERIFY_CHUNK):
        chunk = likely[start : start + _VERIFY_CHUNK]
        needed = np.unique(chunk)
        hashes, offsets = distinct_shingles([comparison_text(texts[index]) for index in needed], size)
        slots = np.searchsorted(needed, chunk)
        for (left, right), (left_slot, right_slot) in zip(chunk.tolist(), slots.tolist(), strict=True):
            similarity = sorted_jaccard(
                hashes[offsets[left_slot] : offsets[left_slot + 1]],
                hashes[offsets[right_slot] : offsets[right_slot + 1]],
            )
            if similarity < settings.threshold:
                continue
            verified += 1
            if same_group(groups, left, right):
                kept_apart["same_group"] += 1
            elif parts is not None and _follows(parts_of(left), parts_of(right)):
                kept_apart["answer_follows_question"] += 1
            else:
                found.append((left, right, similarity))
    table = np.array(found, dtype=np.float64).reshape(-1, 3)
    return NearDuplicatePairs(
        first=table[:, 0].astype(np.int64),
        second=table[:, 1].astype(np.int64),
        jaccard=table[:, 2],
        candidates=len(likely),
        verified=verified,
        kept_apart=kept_apart,
    )


@dataclass(frozen=True)
class NearDuplicate:
    """A row that is dropped as a near duplicate: the kept row of its cluster (which names the cluster),
    its closest verified match, their Jaccard similarity and the number of rows in the cluster."""

    index: int
    kept_index: int
    match_index: int
    jaccard: float
    cluster_size: int


@dataclass(frozen=True)
class NearDuplicateReport:
    """What :func:`find_near_duplicates` found and how.

    ``duplicates`` maps every dropped row to its :class:`NearDuplicate`; ``clusters`` counts the clusters
    of two rows or more; ``candidates``, ``verified`` and ``kept_apart`` are those of
    :class:`NearDuplicatePairs`.
    """

    duplicates: dict[int, NearDuplicate]
    clusters: int = 0
    candidates: int = 0
    verified: int = 0
    kept_apart: dict[str, int] = field(default_factory=dict)


def find_near_duplicates(
    texts: Sequence[str],
    *,
    threshold: float,
    num_permutations: int,
    shingle_size: int,
    seed: int = MINHASH_SEED,
    groups: Sequence[str | None] | None = None,
    parts: Sequence[tuple[str, str]] | None = None,
) -> NearDuplicateReport:
    """Cluster near-duplicate texts (see the module docstring) and pick the row each cluster keeps.

    ``match_index`` is the verified neighbour with the highest Jaccard (earliest on ties); clusters are
    transitive, so the kept row itself may be less similar than the threshold to a distant member. A row of
    the kept row's own group is kept too (see :meth:`UnionFind.duplicates`). ``groups`` and ``parts`` as
    for :func:`near_duplicate_pairs`; ValueError on a setting out of range or a length mismatch.
    """
    settings = NearDuplicateSettings(threshold, num_permutations, shingle_size, seed)
    pairs = near_duplicate_pairs(texts, settings, groups=groups, parts=parts)
    clusters = UnionFind(len(texts))
    # (similarity, -index) of each row's best verified neighbour: higher similarity, then earlier row wins.
    best_match: dict[int, tuple[float, int]] = {}
    for left, right, similarity in zip(
        pairs.first.tolist(), pairs.second.tolist(), pairs.jaccard.tolist(), strict=True
    ):
        clusters.union(left, right)
        for index, other in ((left, right), (right, left)):
            if index not in best_match or (similarity, -other) > best_match[index]:
                best_match[index] = (similarity, -other)
    members = sorted(best_match)
    sizes: dict[int, int] = {}
    for index in members:
        sizes[clusters.find(index)] = sizes.get(clusters.find(index), 0) + 1
    duplicates: dict[int, NearDuplicate] = {}
    for index, root in clusters.duplicates(members, groups).items():
        similarity, negative_match = best_match[index]
        duplicates[index] = NearDuplicate(index, root, -negative_match, similarity, sizes[root])
    return NearDuplicateReport(
        duplicates,
        clusters=len(sizes),
        candidates=pairs.candidates,
        verified=pairs.verified,
        kept_apart=pairs.kept_apart,
    )
