"""Back-translation: paraphrase chosen turns of clean examples through one or more pivot languages.

An eligible example (not itself a paraphrase, its ``lang`` the source language or unknown, with at least
one turn of a chosen role, and drawn by the sample) has each chosen turn translated source -> pivot ->
source, once per pivot; the other turns are copied verbatim, so by default the answer stays the one a
person wrote. Each paraphrased conversation becomes a new row that points back to its source. A row is
kept only when every paraphrased turn passes the paraphrase filter; otherwise the first failing turn's
reason is counted, so the asset can show why paraphrases were dropped.

Each distinct text is translated once per direction, in batches the translator sorts by length; a
translation cache (``translation_cache``) supplies what an earlier run already translated, and gets what
this run translates, chunk by chunk, so an interrupted run loses at most one chunk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from assets.augment.paraphrase_filter import REASONS, judge_paraphrase
from assets.augment.settings import AugmentSettings
from assets.augment.translation_cache import TranslationStore, text_hash, translator_key

KEPT = "kept"
# Rows that are not augmented at all, counted apart from paraphrases that were tried and dropped.
SKIPPED_LANGUAGE = "skipped_language"
SKIPPED_AUGMENTED = "skipped_augmented"
NO_SELECTED_TURN = "no_selected_turn"
NOT_SAMPLED = "not_sampled"
SKIPS = (SKIPPED_AUGMENTED, SKIPPED_LANGUAGE, NO_SELECTED_TURN, NOT_SAMPLED)
COUNT_KEYS = (KEPT, *REASONS, *SKIPS)
# Texts sent to a translator per call, in batches: after each call its outputs are cached.
CHUNK_BATCHES = 16


class TextTranslator(Protocol):
    """What back-translation needs from a translator (``resources.translators.Translator`` has it):
    ``identity`` and ``backend`` say what its outputs depend on, for the cache."""

    identity: str
    backend: str

    def translate(
        self, texts: list[str], *, max_new_tokens: int, num_beams: int, batch_size: int
    ) -> list[str]:
        """Translate ``texts``, returning one output per input, in order."""
        ...


@dataclass(frozen=True)
class TranslatorPair:
    """The two directions of one pivot: source -> pivot and pivot -> source."""

    forward: TextTranslator
    backward: TextTranslator


@dataclass
class TranslationCounts:
    """Distinct texts per direction and pivot, summed: found in the cache, or translated now."""

    cache_hits: int = 0
    translated: int = 0


@dataclass(frozen=True)
class AugmentResult:
    """New rows only (the caller appends them to the clean rows), how many rows ended how, how many
    paraphrases each pivot gave, and how many translations came from the cache."""

    rows: list[dict[str, Any]]
    counts: dict[str, int]
    kept_by_pivot: dict[str, int] = field(default_factory=dict)
    translations: TranslationCounts = field(default_factory=TranslationCounts)


def sampled(row_id: str, *, seed: int, rate: float) -> bool:
    """Whether the row ``row_id`` is in the sample: a hash of the id and ``seed`` mapped to [0, 1), so a
    row's draw never depends on the other rows."""
    if rate >= 1.0:
        return True
    digest = hashlib.sha256(f"{seed}\0{row_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def _eligibility(row: dict[str, Any], settings: AugmentSettings) -> str | None:
    """``None`` when the row should be augmented, else why it is skipped."""
    if row.get("augmented_from") is not None:
        return SKIPPED_AUGMENTED
    lang = row.get("lang")
    if lang is not None and lang != settings.source_lang:
        return SKIPPED_LANGUAGE
    if not any(message["role"] in settings.turns for message in row["messages"]):
        return NO_SELECTED_TURN
    if not sampled(str(row["id"]), seed=settings.seed, rate=settings.sample_rate):
        return NOT_SAMPLED
    return None


def translate_cached(
    texts: list[str],
    translator: TextTranslator,
    *,
    settings: AugmentSettings,
    cache: TranslationStore | None,
    counts: TranslationCounts,
) -> dict[str, str]:
    """Translate distinct ``texts``: cached outputs first, the rest longest first in chunks, each chunk
    cached as soon as it is done. Returns text -> translation."""
    options = {"max_new_tokens": settings.max_new_tokens, "num_beams": settings.num_beams}
    key = translator_key(translator.identity, backend=translator.backend, **options)
    hashes = {text: text_hash(text) for text in texts}
    cached = cache.get(key, hashes.values()) if cache is not None else {}
    results = {text: cached[hashes[text]] for text in texts if hashes[text] in cached}
    missing = sorted((text for text in texts if text not in results), key=lambda text: -len(text))
    counts.cache_hits += len(results)
    counts.translated += len(missing)
    chunk_size = settings.batch_size * CHUNK_BATCHES
    for start in range(0, len(missing), chunk_size):
        chunk = missing[start : start + chunk_size]
        outputs = translator.translate(chunk, batch_size=settings.batch_size, **options)
        if len(outputs) != len(chunk):
            raise RuntimeError(
                f"A translator returned {len(outputs)} texts for {len(chunk)} inputs; a translator must "
                "return exactly one output per input."
            )
        results.update(zip(chunk, outputs, strict=True))
        if cache is not None:
            cache.put(key, {hashes[text]: output for text, output in zip(chunk, outputs, strict=True)})
    return results


def _round_trip(
    texts: list[str],
    pair: TranslatorPair,
    *,
    settings: AugmentSettings,
    cache: TranslationStore | None,
    counts: TranslationCounts,
) -> dict[str, str]:
    """Paraphrase each distinct text through one pivot: text -> back-translation."""
    pivots = translate_cached(texts, pair.forward, settings=settings, cache=cache, counts=counts)
    distinct_pivots = list(dict.fromkeys(pivots[text] for text in texts))
    back = translate_cached(distinct_pivots, pair.backward, settings=settings, cache=cache, counts=counts)
    return {text: back[pivots[text]] for text in texts}


def _paraphrase_row(
    row: dict[str, Any], paraphrases: dict[str, str], settings: AugmentSettings
) -> tuple[list[dict[str, str]] | None, str | None]:
    """The row's messages with chosen turns paraphrased, or ``None`` and the first failing turn's reason.
    Every other field of a turn (its weight, its tool calls) is kept as it is."""
    messages: list[dict[str, str]] = []
    for message in row["messages"]:
        if message["role"] not in settings.turns or not message["content"]:
            messages.append(dict(message))
            continue
        paraphrase = paraphrases[message["content"]]
        reason = judge_paraphrase(message["content"], paraphrase, settings)
        if reason is not None:
            return None, reason
        messages.append({**message, "content": paraphrase})
    return messages, None


def back_translate_rows(
    rows: list[dict[str, Any]],
    *,
    translators: Mapping[str, TranslatorPair],
    settings: AugmentSettings,
    cache: TranslationStore | None = None,
) -> AugmentResult:
    """Paraphrase the chosen turns of eligible ``rows`` through every pivot of ``settings``
    (``translators`` holds each pivot's pair). Returns the new rows, in input order and pivot order within
    a row, and the counts: skips per row, kept and drop reasons per row and pivot."""
    if set(translators) != set(settings.pivot_langs):
        raise ValueError(
            f"back_translate_rows: translators are given for {sorted(translators)}, but the pivot languages "
            f"are {list(settings.pivot_langs)}."
        )
    counts = dict.fromkeys(COUNT_KEYS, 0)
    eligible: list[dict[str, Any]] = []
    for row in rows:
        skip = _eligibility(row, settings)
        if skip is None:
            eligible.append(row)
        else:
            counts[skip] += 1

    texts = list(
        dict.fromkeys(
            m["content"] for row in eligible for m in row["messages"] if m["role"] in settings.turns
        )
    )
    translations = TranslationCounts()
    paraphrases = {
        pivot: _round_trip(texts, translators[pivot], settings=settings, cache=cache, counts=translations)
        for pivot in settings.pivot_langs
        if texts
    }

    kept_by_pivot = dict.fromkeys(settings.pivot_langs, 0)
    new_rows: list[dict[str, Any]] = []
    for row in eligible:
        for pivot in settings.pivot_langs:
            messages, reason = _paraphrase_row(row, paraphrases[pivot], settings)
            if reason is not None:
                counts[reason] += 1
                continue
            counts[KEPT] += 1
            kept_by_pivot[pivot] += 1
            new_rows.append(
                {
                    "id": f"{row['id']}#bt-{pivot}",
                    "messages": messages,
                    "created_at": row.get("created_at"),
                    "category": row.get("category"),
                    "lang": row.get("lang"),
                    "source": settings.source_tag(pivot),
                    "augmented_from": row["id"],
                    "group_id": row.get("group_id"),
                }
            )
    return AugmentResult(rows=new_rows, counts=counts, kept_by_pivot=kept_by_pivot, translations=translations)
