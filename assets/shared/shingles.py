"""What near duplicates are compared on: the comparison text, its character shingles, numbers and words.

The comparison text is the project's one normalization (:func:`assets.shared.text.normalize_text`: NFKC,
case-folded, invisible characters dropped) without punctuation, spaces, separators and control or format
characters, so case, spacing and punctuation-spacing changes cost nothing and one changed word alters at
most its length plus ``size - 1`` character ``size``-grams. Word shingles cannot do this for short rows (a
one-line question has few word 5-grams, and one edit breaks five of them) nor for scripts written without
spaces (a Chinese or Japanese sentence is one "word"). Shingles are hashed to 64 bits with numpy, all rows
of a batch at once. Framework-free; numpy is imported inside the functions that use it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from assets.shared.text import normalize_text

if TYPE_CHECKING:
    import numpy as np

# Characters of each batch hashed at once, to bound memory (about 40 bytes per character).
BATCH_CHARS = 500_000
# Odd 64-bit multiplier of the rolling shingle hash (the golden ratio, as in splitmix64).
MIX = 0x9E3779B97F4A7C15
# Scripts written without spaces between words: each character is a word for :func:`words`.
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
            hashes *= np.uint64(MIX)
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
                value = (value * MIX + ord(char)) % (1 << 64)
            whole[position] = value
        # Rows are in order and a short row has no window: it goes where the next row's windows start.
        hashes = np.insert(hashes, np.searchsorted(row_of, short), whole)
        row_of = np.insert(row_of, np.searchsorted(row_of, short), short)
    counts = np.bincount(row_of, minlength=len(texts))
    return _finalize(hashes), np.concatenate(([0], np.cumsum(counts)))


def distinct_shingles(texts: Sequence[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """The sorted, distinct shingle hashes of each text, row after row, and the row offsets: 8 bytes a
    shingle, where a Python set of strings would take some fifty."""
    import numpy as np

    flat, offsets = [], [np.zeros(1, dtype=np.int64)]
    for start, stop in char_batches(texts):
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


def sorted_jaccard(left: np.ndarray, right: np.ndarray) -> float:
    """Jaccard similarity of two sorted arrays of distinct hashes; two empty ones share nothing, so 0."""
    import numpy as np

    common = np.intersect1d(left, right, assume_unique=True).size
    union = left.size + right.size - common
    return common / union if union else 0.0


def char_batches(texts: Sequence[str], batch_chars: int = BATCH_CHARS) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` ranges of ``texts`` holding about ``batch_chars`` characters each (at least one
    text), so the shingle arrays of one batch stay small whatever the row count."""
    start = 0
    while start < len(texts):
        stop, chars = start, 0
        while stop < len(texts) and (chars < batch_chars or stop == start):
            chars += len(texts[stop])
            stop += 1
        yield start, stop
        start = stop
