"""Deciding whether a back-translated paraphrase is worth keeping.

A good paraphrase says the same thing in other words: close enough to the source that the meaning survived
the round trip, far enough that it adds variety, and of similar length. Closeness is chrF (Popović,
2015: the F-score of character n-grams up to 6, recall weighted twice, beta=2, sacrebleu's defaults) of
the paraphrase against its source, on a 0-1 scale: character n-grams tolerate the word-order and
inflection changes translation introduces better than word overlap does. Both texts are compared after
the project's one normalization (``normalize_text``), so a change of case or spacing is no paraphrase.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from assets.shared.text import normalize_text

if TYPE_CHECKING:
    from sacrebleu.metrics import CHRF

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
    """Bounds a paraphrase must meet: chrF to the source (0-1) and length ratio (paraphrase / source
    characters, normalized); values come from params.yaml, section ``augment``."""

    min_similarity: float
    max_similarity: float
    min_length_ratio: float
    max_length_ratio: float

    def __post_init__(self) -> None:
        validate_bounds(self, owner="ParaphraseFilterSettings")


@functools.cache
def _chrf() -> CHRF:
    from sacrebleu.metrics import CHRF

    return CHRF()


def chrf_similarity(source: str, paraphrase: str) -> float:
    """chrF of ``paraphrase`` against ``source`` after normalization, in [0, 1] (1.0 for equal texts)."""
    norm_source, norm_paraphrase = normalize_text(source), normalize_text(paraphrase)
    if norm_source == norm_paraphrase:
        return 1.0
    return _chrf().sentence_score(norm_paraphrase, [norm_source]).score / 100.0


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
    similarity = chrf_similarity(norm_source, norm_paraphrase)
    if similarity < settings.min_similarity:
        return TOO_DISSIMILAR
    if similarity > settings.max_similarity:
        return TOO_SIMILAR
    return None
