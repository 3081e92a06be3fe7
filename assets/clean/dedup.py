"""Exact, prefix and near-duplicate detection on conversations.

Exact: texts are compared after normalization (:func:`assets.shared.text.normalize_text`).
Prefix: a conversation whose normalized messages are the first messages of a longer one.

Near: the Jaccard similarity of the rows' sets of character ``shingle_size``-grams, taken on the
normalized text with punctuation, spaces and invisible characters removed (:func:`comparison_text`), so
case, spacing and punctuation-spacing changes cost nothing and one changed word alters at most its length
plus ``shingle_size - 1`` shingles. Word shingles cannot do this for short rows (a one-line question has
few word 5-grams, and one edit breaks five of them) nor for scripts written without spaces (a Chinese or
Japanese sentence is one "word"). Candidates come from MinHash signatures (Broder, 1997) computed by the
rensa library (R-MinHash, in Rust), banded for LSH (Leskovec, Rajaraman & Ullman, *Mining of Massive
Datasets*, ch. 3); every candidate is verified with the exact Jaccard of its shingle sets and two rules
that keep distinct examples of one template apart:

- numbers: two rows are near duplicates only when they hold the same numbers in the same order
  ("Convert 103 °C to Fahrenheit" and "Convert 114 °C ..." have different correct answers: case 10). The
  numbers are part of every LSH bucket key, so such rows are never even compared;
- the answer follows the question: when the same word (or character, in scripts without spaces) was
  swapped in both the prompt and the answer ("How many strings does a violin have?" / "A violin has four
  strings" next to the hexagon's sides), the rows are two questions with their own answers. A copy with
  an edited question and the same answer, or the same question and an edited answer, is a near duplicate.

Defaults (params.yaml ``clean``): character 5-grams and Jaccard 0.7, the defaults of Data-Juicer's
MinHash deduplicator (window 5, threshold 0.7), whose character tokenization it recommends for Chinese-like
text (Chen et al., 2024, "Data-Juicer: A One-Stop Data Processing System for Large Language Models");
128 permutations, datasketch's default, which is enough as the signatures only find candidates.

Clusters are the connected components of the verified pairs; the earliest row of each cluster is the one
kept, and the cluster is named after it. Rows of one group (a conversation tree, a thread: same non-null
``group_id``) are never near duplicates of each other: they are sibling answers to one prompt or
continuations of one conversation, alike by construction, and the split already keeps them together.
Exact copies are still duplicates. Seeded and deterministic.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from assets.shared.groups import UnionFind, same_group
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
# Characters of each batch hashed at once, to bound memory (about 40 bytes per character).
_BATCH_CHARS = 500_000
# Odd 64-bit multiplier of the rolling shingle hash and the band keys (the golden ratio, as in splitmix64).
_MIX = 0x9E3779B97F4A7C15
# Scripts written without spaces between words: each character is a word for the answer-follows rule.
_UNSPACED = re.compile(
    "([\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff])"
)
_NUMBER = re.compile(r"\d+")


class _Separators(dict[int, int | None]):
    """``str.translate`` table: punctuation, separators and control or format characters (Unicode
    categories P, Z, C) map to ``value``; every other character to itself. Filled as characters are met."""

    def __init__(self, value: int | None) -> None:
        super().__init__()
        self.value = value

    def __missing__(self, code: int) -> int | None:
        mapped = self.value if unicodedata.category(chr(code))[0] in "PZC" else code
        self[code] = mapped
        return mapped


_DROP_SEPARATORS = _Separators(None)
_SPACE_SEPARATORS = _Separators(ord(" "))


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


def _check_length(name: str, values: Sequence[object] | None, size: int) -> None:
    if values is not None and len(values) != size:
        raise ValueError(f"got {size} rows but {len(values)} {name}; pass one per row")


def prompt_and_answer(messages: Sequence[Mapping[str, str]]) -> tuple[str, str]:
    """A conversation as (prompt, answer): the text of its system and user turns, and of its assistant
    turns, each joined with line breaks."""
    prompt = "\n".join(m["content"] for m in messages if m["role"] != "assistant")
    return prompt, "\n".join(m["content"] for m in messages if m["role"] == "assistant")


def contents(messages: Sequence[Mapping[str, str]]) -> str:
    """The text of every turn, in order, without role names (which would make short rows look alike)."""
    return "\n".join(m["content"] for m in messages)


def comparison_text(text: str, *, normalized: bool = False) -> str:
    """The text near duplicates are compared on: :func:`normalize_text` (unless ``normalized`` says it
    was applied), then without punctuation, spaces and other separators, control and format characters.
    Letters, digits, marks and symbols remain."""
    return (text if normalized else normalize_text(text)).translate(_DROP_SEPARATORS)


def numbers(text: str, *, normalized: bool = False) -> tuple[str, ...]:
    """The numbers of a text in order (runs of decimal digits, in any script after NFKC)."""
    return tuple(_NUMBER.findall(text if normalized else normalize_text(text)))


def words(text: str, *, normalized: bool = False) -> frozenset[str]:
    """The words of a text, split at punctuation and spaces; in scripts written without spaces (Chinese,
    Japanese, Thai, ...) every character is a word."""
    spaced = (text if normalized else normalize_text(text)).translate(_SPACE_SEPARATORS)
    return frozenset(_UNSPACED.sub(r" \1 ", spaced).split())


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


def _finalize(hashes: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, in place: nearby inputs give unrelated 64-bit hashes."""
    import numpy as np

    with np.errstate(over="ignore"):
        hashes ^= hashes >> np.uint64(30)
        hashes *= np.uint64(0xBF58476D1CE4E5B9)
        hashes ^= hashes >> np.uint64(27)
        hashes *= np.uint64(0x94D049BB133111EB)
        hashes ^= hashes >> np.uint64(31)
    return hashes


def shingle_hashes(texts: Sequence[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """A 64-bit hash of every character ``size``-gram of each text, row after row (with repeats), and the
    row offsets (``len(texts) + 1``). A text shorter than ``size`` is one shingle; an empty text has none."""
    import numpy as np

    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    codes = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    codes = codes.astype(np.uint64)
    windows = max(len(codes) - size + 1, 0)
    hashes = np.zeros(windows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(size):
            hashes *= np.uint64(_MIX)
            hashes += codes[offset : offset + windows]
    # A window belongs to a row when it ends inside it.
    row_of = np.repeat(np.arange(len(texts)), lengths)[:windows]
    inside = np.arange(windows) + size <= np.cumsum(lengths)[row_of]
    hashes, row_of = hashes[inside], row_of[inside]
    short = np.flatnonzero((lengths > 0) & (lengths < size))
    if short.size:
        whole = np.zeros(short.size, dtype=np.uint64)
        for position, index in enumerate(short.tolist()):
            value = 0
            for char in texts[index]:
                value = (value * _MIX + ord(char)) % (1 << 64)
            whole[position] = value
        # Rows are in order and a short row has no window: it goes where the next row's windows start.
        hashes = np.insert(hashes, np.searchsorted(row_of, short), whole)
        row_of = np.insert(row_of, np.searchsorted(row_of, short), short)
    counts = np.bincount(row_of, minlength=len(texts))
    return _finalize(hashes), np.concatenate(([0], np.cumsum(counts)))


def shingle_set(text: str, size: int) -> frozenset[str]:
    """The distinct character ``size``-grams of one comparison text (the whole text when shorter)."""
    if len(text) <= size:
        return frozenset([text]) if text else frozenset()
    return frozenset({text[start : start + size] for start in range(len(text) - size + 1)})


def jaccard(left: frozenset[str], right: frozenset[str]) -> float:
    """Jaccard similarity of two sets; two empty sets share nothing, so 0."""
    common = len(left & right)
    union = len(left) + len(right) - common
    return common / union if union else 0.0


def _distinct_shingles(texts: Sequence[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """The sorted, distinct shingle hashes of each text, row after row, and the row offsets: 8 bytes a
    shingle, where a Python set of strings would take some fifty."""
    import numpy as np

    flat, offsets = [], [np.zeros(1, dtype=np.int64)]
    for start, stop in _char_batches(texts):
        hashes, bounds = shingle_hashes(texts[start:stop], size)
        rows = np.repeat(np.arange(stop - start), np.diff(bounds))
        order = np.lexsort((hashes, rows))
        hashes, rows = hashes[order], rows[order]
        distinct = np.ones(len(hashes), dtype=bool)
        distinct[1:] = (hashes[1:] != hashes[:-1]) | (rows[1:] != rows[:-1])
        flat.append(hashes[distinct])
        counts = np.bincount(rows[distinct], minlength=stop - start)
        offsets.append(offsets[-1][-1] + np.cumsum(counts))
    return np.concatenate(flat) if flat else np.zeros(0, dtype=np.uint64), np.concatenate(offsets)


def _sorted_jaccard(left: np.ndarray, right: np.ndarray) -> float:
    """Jaccard similarity of two sorted arrays of distinct hashes; two empty ones share nothing, so 0."""
    import numpy as np

    common = np.intersect1d(left, right, assume_unique=True).size
    union = left.size + right.size - common
    return common / union if union else 0.0


def minhash_signatures(texts: Sequence[str], *, num_permutations: int, seed: int, size: int) -> np.ndarray:
    """R-MinHash signatures (rensa) of the texts' shingle sets, shape (n, num_permutations), uint32.

    An empty text gets the all-max signature. rensa rather than datasketch or our numpy code: on the planted
    benchmark its signatures cost a few microseconds a row against hundreds for datasketch's
    ``MinHash.update_batch`` (see docs/benchmarks.md); the shingles are hashed here, vectorized, and passed
    to it pre-hashed. Its signatures change between minor versions (0.5 is its algorithm version 2); none
    is stored, so only candidates could differ, and every candidate is verified exactly."""
    import numpy as np
    from rensa import RMinHash

    signatures = np.empty((len(texts), num_permutations), dtype=np.uint32)
    for start, stop in _char_batches(texts):
        hashes, offsets = shingle_hashes(texts[start:stop], size)
        matrix = RMinHash.digest_matrix_from_flat_token_hashes(
            hashes, offsets.astype(np.uint64), num_permutations, seed
        )
        signatures[start:stop] = np.array(matrix.to_rows(), dtype=np.uint32).reshape(-1, num_permutations)
    return signatures


def _char_batches(texts: Sequence[str]) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` ranges of ``texts`` holding about ``_BATCH_CHARS`` characters each (at least one
    text), so the shingle arrays of one batch stay small whatever the row count."""
    start = 0
    while start < len(texts):
        stop, chars = start, 0
        while stop < len(texts) and (chars < _BATCH_CHARS or stop == start):
            chars += len(texts[stop])
            stop += 1
        yield start, stop
        start = stop


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


def candidate_pairs(signatures: np.ndarray, salts: np.ndarray, *, bands: int, rows: int) -> np.ndarray:
    """Pairs ``(i, j)``, ``i < j``, that share a band of MinHash values and their salt, sorted, shape (m, 2).

    Within a bucket each row is paired with the next :data:`_BUCKET_WINDOW` rows of the bucket.
    """
    import numpy as np

    n = signatures.shape[0]
    found = [np.zeros(0, dtype=np.int64)]
    with np.errstate(over="ignore"):
        for band in range(bands):
            key = salts.copy()
            for column in range(band * rows, (band + 1) * rows):
                key = key * np.uint64(_MIX) + signatures[:, column].astype(np.uint64)
            # Stable: inside a bucket the rows stay in file order, so each pair is (earlier, later).
            order = np.argsort(key, kind="stable")
            sorted_keys = key[order]
            shared = sorted_keys[1:] == sorted_keys[:-1]
            members = np.zeros(n, dtype=bool)
            members[1:] |= shared
            members[:-1] |= shared
            order, sorted_keys = order[members], sorted_keys[members]
            for distance in range(1, _BUCKET_WINDOW + 1):
                same = np.flatnonzero(sorted_keys[distance:] == sorted_keys[:-distance])
                if not same.size:
                    break
                found.append(order[same] * n + order[same + distance])
    codes = np.sort(np.concatenate(found))
    codes = codes[np.concatenate(([True], codes[1:] != codes[:-1]))] if codes.size else codes
    return np.stack((codes // n, codes % n), axis=1) if n else np.zeros((0, 2), dtype=np.int64)


def _salts(normalized: Sequence[str], compared: Sequence[str]) -> np.ndarray:
    """Per row: a digest of its numbers, so rows with other numbers never share a bucket; a row without
    shingles gets one of its own (its signature is all-max and would match every other empty row)."""
    import numpy as np

    salts = np.empty(len(normalized), dtype=np.uint64)
    for index, (text, shingled) in enumerate(zip(normalized, compared, strict=True)):
        key = " ".join(numbers(text, normalized=True)) if shingled else f"\0empty {index}"
        salts[index] = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return salts


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
    of two rows or more; ``candidates`` the LSH candidate pairs, ``verified`` those checked exactly, and
    ``kept_apart`` the pairs at or over the threshold that a rule kept apart (``same_group``,
    ``answer_follows_question``).
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
    """Cluster texts whose character-shingle Jaccard is >= ``threshold`` (see the module docstring).

    ``match_index`` is the verified neighbour with the highest Jaccard (earliest on ties); clusters are
    transitive, so the kept row itself may be less similar than the threshold to a distant member.
    ``groups`` (one group id or None per text) keeps rows of one group apart; ``parts`` (one (prompt,
    answer) per text) turns on the answer-follows-question rule.
    """
    import numpy as np

    _check_length("group ids", groups, len(texts))
    _check_length("(prompt, answer) parts", parts, len(texts))
    normalized = [normalize_text(text) for text in texts]
    compared = [comparison_text(text, normalized=True) for text in normalized]
    signatures = minhash_signatures(compared, num_permutations=num_permutations, seed=seed, size=shingle_size)
    bands, rows = lsh_bands(num_permutations, threshold)
    pairs = candidate_pairs(signatures, _salts(normalized, compared), bands=bands, rows=rows)
    agreement = np.empty(len(pairs))
    for start in range(0, len(pairs), 1 << 16):
        chunk = pairs[start : start + (1 << 16)]
        agreement[start : start + len(chunk)] = (signatures[chunk[:, 0]] == signatures[chunk[:, 1]]).mean(1)
    likely = pairs[agreement >= threshold - _ESTIMATE_MARGIN].tolist()

    # The distinct shingles of every row of a likely pair, computed at once.
    needed = sorted({index for pair in likely for index in pair})
    position = {index: slot for slot, index in enumerate(needed)}
    hashes, offsets = _distinct_shingles([compared[index] for index in needed], shingle_size)

    def shingles_of(index: int) -> np.ndarray:
        return hashes[offsets[position[index]] : offsets[position[index] + 1]]

    # Pairs come sorted by their first row, so a small cache serves most lookups.
    @functools.lru_cache(maxsize=_PART_CACHE)
    def parts_of(index: int) -> tuple[_Part, _Part]:
        prompt, answer = parts[index]  # type: ignore[index]
        return _Part.of(prompt), _Part.of(answer)

    kept_apart = {"same_group": 0, "answer_follows_question": 0}
    clusters = UnionFind(len(texts))
    # (similarity, -index) of each row's best verified neighbour: higher similarity, then earlier row wins.
    best_match: dict[int, tuple[float, int]] = {}
    for left, right in likely:
        similarity = _sorted_jaccard(shingles_of(left), shingles_of(right))
        if similarity < threshold:
            continue
        if same_group(groups, left, right):
            kept_apart["same_group"] += 1
            continue
        if parts is not None and _follows(parts_of(left), parts_of(right)):
            kept_apart["answer_follows_question"] += 1
            continue
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
        candidates=len(pairs),
        verified=len(likely),
        kept_apart=kept_apart,
    )
