"""Deciding whether a back-translated paraphrase is worth keeping.

A good paraphrase says the same thing in other words: close enough to the source that the meaning survived
the round trip, far enough that it adds variety, and of similar length. Closeness is the Sørensen-Dice
coefficient of character-trigram sets, which tolerates the word-order and inflection changes translation
introduces better than word overlap does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from assets.shared.text import normalize_text

# Reason codes, in the order they are checked.
EMPTY = "empty"
IDENTICAL = "identical"
LENGTH_RATIO = "length_ratio"
TOO_DISSIMILAR = "too_dissimilar"
TOO_SIMILAR = "too_similar"
REASONS = (EMPTY, IDENTICAL, LENGTH_RATIO, TOO_DISSIMILAR, TOO_SIMILAR)


class ParaphraseBounds(Protocol):
    """Anything carrying the four filter bounds (``ParaphraseFilterSettings`` or the augment settings)."""

    @property
    def min_similarity(self) -> float: ...
    @property
    def max_similarity(self) -> float: ...
    @property
    def min_length_ratio(self) -> float: ...
    @property
    def max_length_ratio(self) -> float: ...


def validate_bounds(bounds: ParaphraseBounds, *, owner: str) -> None:
    """Raise ``ValueError`` naming the field when the bounds cannot select anything sensible."""
    for field in ("min_similarity", "max_similarity"):
        value = getattr(bounds, field)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{owner}.{field} must lie in [0, 1], got {value!r}.")
    if bounds.min_similarity > bounds.max_similarity:
        raise ValueError(
            f"{owner}.min_similarity ({bounds.min_similarity}) must not exceed "
            f"{owner}.max_similarity ({bounds.max_similarity})."
        )
    for field in ("min_length_ratio", "max_length_ratio"):
        value = getattr(bounds, field)
        if not value > 0.0:
            raise ValueError(f"{owner}.{field} must be positive, got {value!r}.")
    if bounds.min_length_ratio > bounds.max_length_ratio:
        raise ValueError(
            f"{owner}.min_length_ratio ({bounds.min_length_ratio}) must not exceed "
            f"{owner}.max_length_ratio ({bounds.max_length_ratio})."
        )


@dataclass(frozen=True)
class ParaphraseFilterSettings:
    """Bounds a paraphrase must meet; values come from params.yaml, section ``augment``."""

    min_similarity: float
    max_similarity: float
    min_length_ratio: float
    max_length_ratio: float

    def __post_init__(self) -> None:
        validate_bounds(self, owner="ParaphraseFilterSettings")


def trigrams(text: str) -> frozenset[str]:
    """Character trigrams of an already normalized text, padded so that short words still count."""
    padded = f"  {text} "
    return frozenset(padded[i : i + 3] for i in range(len(padded) - 2))


def dice_similarity(a: str, b: str) -> float:
    """Sørensen-Dice coefficient of the character-trigram sets of two texts (1.0 for identical texts)."""
    grams_a, grams_b = trigrams(normalize_text(a)), trigrams(normalize_text(b))
    if not grams_a and not grams_b:
        return 1.0
    return 2 * len(grams_a & grams_b) / (len(grams_a) + len(grams_b))


def judge_paraphrase(source: str, paraphrase: str, settings: ParaphraseBounds) -> str | None:
    """``None`` to keep ``paraphrase`` of ``source``, otherwise the reason code for dropping it."""
    norm_source, norm_paraphrase = normalize_text(source), normalize_text(paraphrase)
    if not norm_source or not norm_paraphrase:
        return EMPTY
    if norm_source == norm_paraphrase:
        return IDENTICAL
    ratio = len(norm_paraphrase) / len(norm_source)
    if not settings.min_length_ratio <= ratio <= settings.max_length_ratio:
        return LENGTH_RATIO
    similarity = dice_similarity(norm_source, norm_paraphrase)
    if similarity < settings.min_similarity:
        return TOO_DISSIMILAR
    if similarity > settings.max_similarity:
        return TOO_SIMILAR
    return None
