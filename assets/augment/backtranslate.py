"""Back-translation: paraphrase the user turns of clean examples through a pivot language.

Each eligible example (its ``lang`` is the source language, or unknown) has every user turn translated
source -> pivot -> source; system and assistant turns are copied verbatim, so the answer stays the one a
person wrote. The paraphrased conversation becomes a new row that points back to its source. A row is kept
only when every one of its user turns passes the paraphrase filter; otherwise the first failing turn's
reason is counted, so the asset can show why paraphrases were dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from assets.augment.paraphrase_filter import REASONS, judge_paraphrase, validate_bounds

KEPT = "kept"
# Rows that are not augmented at all, counted apart from paraphrases that were tried and dropped.
SKIPPED_LANGUAGE = "skipped_language"
SKIPPED_AUGMENTED = "skipped_augmented"
NO_USER_TURN = "no_user_turn"
COUNT_KEYS = (KEPT, *REASONS, SKIPPED_LANGUAGE, SKIPPED_AUGMENTED, NO_USER_TURN)


class TextTranslator(Protocol):
    """What back-translation needs from a translator (``resources.translators.Translator`` has it)."""

    def translate(
        self, texts: list[str], *, max_new_tokens: int, num_beams: int, batch_size: int
    ) -> list[str]:
        """Translate ``texts``, returning one output per input, in order."""
        ...


@dataclass(frozen=True)
class AugmentSettings:
    """Back-translation settings; values come from params.yaml, section ``augment``.

    ``seed`` seeds the embedded translator weights; decoding itself is greedy or beam search, never
    sampled, so the same models and rows always give the same paraphrases.
    """

    source_lang: str
    pivot_lang: str
    max_new_tokens: int
    num_beams: int
    batch_size: int
    min_similarity: float
    max_similarity: float
    min_length_ratio: float
    max_length_ratio: float
    seed: int

    def __post_init__(self) -> None:
        for name in ("source_lang", "pivot_lang"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(
                    f"AugmentSettings.{name} must be a language code such as 'en', got {value!r}."
                )
        if self.source_lang == self.pivot_lang:
            raise ValueError(
                f"AugmentSettings.pivot_lang must differ from source_lang (both {self.source_lang!r}): a "
                "round trip through the same language paraphrases nothing."
            )
        for name in ("max_new_tokens", "num_beams", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"AugmentSettings.{name} must be a positive integer, got {value!r}.")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"AugmentSettings.seed must be a non-negative integer, got {self.seed!r}.")
        validate_bounds(self, owner="AugmentSettings")

    @property
    def source_tag(self) -> str:
        """The ``source`` value of rows this augmentation produces."""
        return f"back_translation:{self.source_lang}->{self.pivot_lang}"


@dataclass(frozen=True)
class AugmentResult:
    """New rows only (the caller appends them to the clean rows) and how many rows ended how."""

    rows: list[dict[str, Any]]
    counts: dict[str, int]


def _eligibility(row: dict[str, Any], settings: AugmentSettings) -> str | None:
    """``None`` when the row should be augmented, else why it is skipped."""
    if row.get("augmented_from") is not None:
        return SKIPPED_AUGMENTED
    lang = row.get("lang")
    if lang is not None and lang != settings.source_lang:
        return SKIPPED_LANGUAGE
    if not any(message["role"] == "user" for message in row["messages"]):
        return NO_USER_TURN
    return None


def _round_trip(
    texts: list[str], *, forward: TextTranslator, backward: TextTranslator, settings: AugmentSettings
) -> dict[str, str]:
    """Paraphrase each distinct text once, in one batched pass per direction."""
    unique = list(dict.fromkeys(texts))
    if not unique:
        return {}
    options = {
        "max_new_tokens": settings.max_new_tokens,
        "num_beams": settings.num_beams,
        "batch_size": settings.batch_size,
    }
    pivots = forward.translate(unique, **options)
    back = backward.translate(pivots, **options)
    if len(pivots) != len(unique) or len(back) != len(unique):
        raise RuntimeError(
            f"A translator returned {len(pivots)} then {len(back)} texts for {len(unique)} inputs; "
            "a translator must return exactly one output per input."
        )
    return dict(zip(unique, back, strict=True))


def back_translate_rows(
    rows: list[dict[str, Any]],
    *,
    forward: TextTranslator,
    backward: TextTranslator,
    settings: AugmentSettings,
) -> AugmentResult:
    """Paraphrase the user turns of eligible ``rows``; returns the new rows (in input order) and counts."""
    counts = dict.fromkeys(COUNT_KEYS, 0)
    eligible: list[dict[str, Any]] = []
    for row in rows:
        skip = _eligibility(row, settings)
        if skip is None:
            eligible.append(row)
        else:
            counts[skip] += 1

    user_texts = [m["content"] for row in eligible for m in row["messages"] if m["role"] == "user"]
    paraphrases = _round_trip(user_texts, forward=forward, backward=backward, settings=settings)

    new_rows: list[dict[str, Any]] = []
    for row in eligible:
        messages: list[dict[str, str]] = []
        reason: str | None = None
        for message in row["messages"]:
            if message["role"] != "user":
                messages.append({"role": message["role"], "content": message["content"]})
                continue
            paraphrase = paraphrases[message["content"]]
            reason = judge_paraphrase(message["content"], paraphrase, settings)
            if reason is not None:
                break
            messages.append({"role": "user", "content": paraphrase})
        if reason is not None:
            counts[reason] += 1
            continue
        counts[KEPT] += 1
        new_rows.append(
            {
                "id": f"{row['id']}#bt-{settings.pivot_lang}",
                "messages": messages,
                "created_at": row.get("created_at"),
                "category": row.get("category"),
                "lang": row.get("lang"),
                "source": settings.source_tag,
                "augmented_from": row["id"],
                "group_id": row.get("group_id"),
            }
        )
    return AugmentResult(rows=new_rows, counts=counts)
