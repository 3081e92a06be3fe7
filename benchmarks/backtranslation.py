"""Back-translation speed: batched, length-sorted generation against one text at a time, and a cached re-run.

    .venv/bin/python benchmarks/backtranslation.py [--texts 128] [--repeats 3] [--threads N]
                                                   [--pivots de fr]
                                                   [--out benchmarks/results/backtranslation.json]

Uses the embedded tiny Marian pairs (random weights, built in a temporary directory) and the user turns
of the shipped sample data, with the ``augment`` settings of params.yaml but pivots de and fr
(``--pivots``). Every ratio is against a baseline measured in the same run, on the same model and texts:

- generation: sentences per second of the forward model (source -> first pivot) translating the texts
  one at a time (the baseline), in batches of ``augment.batch_size`` in input order, and in batches
  sorted by length (what the stage does); with ctranslate2 installed, the same model converted to
  CTranslate2. Target: batched and sorted at least 3x the baseline. The outputs are compared text by text.
- cache: the whole augment logic (every pivot, both directions, the quality filter) on the sample rows
  with a cold translation cache, then again with fresh translators and the warm cache (target: at most
  10% of the first run's time, the same rows, nothing translated), then on the rows plus 10% new ones.

Figures for real opus-mt models need real models (a hub id or directory in ``augment.forward_model``);
the tiny model's cost is mostly per-step overhead, so its ratios overstate what batching gains on a
real model. Prints the figures and writes them as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assets.augment.backtranslate import TranslatorPair, back_translate_rows
from assets.augment.settings import AugmentSettings
from assets.augment.translation_cache import TranslationCache
from assets.ingest.normalize import normalize_file
from assets.params import section, settings_from
from benchmarks.results import machine_facts, write_results
from resources.project import PROJECT_ROOT
from resources.translators import load_translator, resolve_translator

SAMPLE = PROJECT_ROOT / "data" / "sample" / "examples.jsonl"
TARGET_BATCHED = 3.0
TARGET_CACHED = 0.10


def timed(action: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``repeats`` runs of ``action`` and its last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def sample_rows() -> list[dict[str, Any]]:
    rows = normalize_file(SAMPLE, max_chars=section("data")["max_chars"])
    return [row for row in rows if row["error"] is None]


def generation(
    settings: AugmentSettings, embedded_root: Path, texts: list[str], repeats: int, converted: Path
) -> dict[str, Any]:
    pivot = settings.pivot_langs[0]
    direction = (settings.source_lang, pivot)
    location = resolve_translator(
        settings.model_spec("forward", pivot),
        direction=direction,
        embedded_root=embedded_root,
        seed=settings.seed,
    )
    translator = load_translator(location)
    options = {"max_new_tokens": settings.max_new_tokens, "num_beams": settings.num_beams}
    batch = settings.batch_size
    translator.translate(texts[:batch], batch_size=batch, **options)  # load the weights, warm up

    def one_at_a_time() -> list[str]:
        return [translator.translate([text], batch_size=1, **options)[0] for text in texts]

    def batched_unsorted() -> list[str]:
        # Each call gets one batch, so the translator's length sort cannot reorder across batches.
        return [
            out
            for i in range(0, len(texts), batch)
            for out in translator.translate(texts[i : i + batch], batch_size=batch, **options)
        ]

    def batched_sorted() -> list[str]:
        return translator.translate(texts, batch_size=batch, **options)

    single_s, single = timed(one_at_a_time, repeats)
    unsorted_s, unsorted = timed(batched_unsorted, repeats)
    sorted_s, batched = timed(batched_sorted, repeats)
    figures: dict[str, Any] = {
        "model": f"{settings.model_spec('forward', pivot)} {direction[0]}->{direction[1]}",
        "texts": len(texts),
        "batch_size": batch,
        **options,
        "one_at_a_time": {"seconds": round(single_s, 3), "sentences_per_s": round(len(texts) / single_s, 1)},
        "batched_input_order": {
            "seconds": round(unsorted_s, 3),
            "sentences_per_s": round(len(texts) / unsorted_s, 1),
            "speedup": round(single_s / unsorted_s, 2),
            "outputs_differing_from_one_at_a_time": sum(
                a != b for a, b in zip(unsorted, single, strict=True)
            ),
        },
        "batched_length_sorted": {
            "seconds": round(sorted_s, 3),
            "sentences_per_s": round(len(texts) / sorted_s, 1),
            "speedup": round(single_s / sorted_s, 2),
            "outputs_differing_from_one_at_a_time": sum(a != b for a, b in zip(batched, single, strict=True)),
        },
        "target_speedup": TARGET_BATCHED,
        "meets_target": single_s / sorted_s >= TARGET_BATCHED,
    }
    try:
        fast = load_translator(location, backend="ctranslate2", converted_root=converted)
        fast.translate(texts[:batch], batch_size=batch, **options)  # convert, load, warm up
    except OSError as err:
        figures["ctranslate2"] = f"not measured: {err}"
        return figures
    fast_s, fast_out = timed(lambda: fast.translate(texts, batch_size=batch, **options), repeats)
    figures["ctranslate2_batched"] = {
        "seconds": round(fast_s, 3),
        "sentences_per_s": round(len(texts) / fast_s, 1),
        "speedup_over_one_at_a_time": round(single_s / fast_s, 2),
        "speedup_over_transformers_batched_sorted": round(sorted_s / fast_s, 2),
        "outputs_differing_from_transformers_batched": sum(
            a != b for a, b in zip(fast_out, batched, strict=True)
        ),
    }
    return figures


def cached_reruns(
    settings: AugmentSettings, embedded_root: Path, rows: list[dict[str, Any]], cache_path: Path
) -> dict[str, Any]:
    locations = {
        pivot: tuple(
            resolve_translator(
                settings.model_spec(direction, pivot),
                direction=languages,
                embedded_root=embedded_root,
                seed=settings.seed,
            )
            for direction, languages in (
                ("forward", (settings.source_lang, pivot)),
                ("backward", (pivot, settings.source_lang)),
            )
        )
        for pivot in settings.pivot_langs
    }

    def run(run_rows: list[dict[str, Any]]) -> tuple[float, Any]:
        # Fresh translators each time, as a new run of the stage makes them: weights load on first use.
        start = time.perf_counter()
        translators = {
            pivot: TranslatorPair(load_translator(forward), load_translator(backward))
            for pivot, (forward, backward) in locations.items()
        }
        with TranslationCache(cache_path) as cache:
            result = back_translate_rows(run_rows, translators=translators, settings=settings, cache=cache)
        return time.perf_counter() - start, result

    first_s, first = run(rows)
    again_s, again = run(rows)
    # 10% new rows: copies of existing rows under new ids, with a new user turn so their texts are new.
    extra = [
        {
            **row,
            "id": f"{row['id']}-new",
            "messages": [
                {**m, "content": f"{m['content']} (follow-up {i})"} if m["role"] in settings.turns else m
                for m in row["messages"]
            ],
        }
        for i, row in enumerate(rows[: max(1, len(rows) // 10)])
    ]
    grown_s, grown = run(rows + extra)
    return {
        "rows": len(rows),
        "pivots": list(settings.pivot_langs),
        "first_run": {
            "seconds": round(first_s, 3),
            "translated_texts": first.translations.translated,
            "paraphrase_rows": len(first.rows),
            "outcomes": {k: v for k, v in first.counts.items() if v},
        },
        "rerun_unchanged": {
            "seconds": round(again_s, 3),
            "ratio_to_first": round(again_s / first_s, 4),
            "translated_texts": again.translations.translated,
            "cache_hits": again.translations.cache_hits,
            "same_rows": again.rows == first.rows and again.counts == first.counts,
        },
        "rerun_with_10pct_new_rows": {
            "new_rows": len(extra),
            "seconds": round(grown_s, 3),
            "ratio_to_first": round(grown_s / first_s, 4),
            "translated_texts": grown.translations.translated,
            "cache_hits": grown.translations.cache_hits,
        },
        "target_ratio": TARGET_CACHED,
        "meets_target": again_s / first_s <= TARGET_CACHED,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--texts", type=int, default=128, help="distinct user turns in the generation test")
    parser.add_argument("--repeats", type=int, default=3, help="runs per generation measurement (median)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own)")
    parser.add_argument("--pivots", nargs="+", default=["de", "fr"], help="pivot languages (embedded)")
    parser.add_argument("--out", default="benchmarks/results/backtranslation.json")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    # The params.yaml defaults, but the embedded models (this benchmark never loads a real one) and
    # several pivots.
    settings = dataclasses.replace(
        settings_from(AugmentSettings, section("augment")),
        forward_model="embedded",
        backward_model="embedded",
        pivot_langs=tuple(args.pivots),
    )
    rows = sample_rows()
    texts = list(
        dict.fromkeys(m["content"] for row in rows for m in row["messages"] if m["role"] in settings.turns)
    )
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-bt-") as tmp:
        embedded_root = Path(tmp) / "embedded"
        gen = generation(
            settings, embedded_root, texts[: args.texts], args.repeats, Path(tmp) / "ctranslate2"
        )
        cache = cached_reruns(settings, embedded_root, rows, Path(tmp) / "cache" / "translations.sqlite3")
    figures = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_facts(
            torch=torch.__version__,
            torch_threads=torch.get_num_threads(),
            load_average_1m_before=round(load_before[0], 2),
        ),
        "model": "embedded tiny Marian pairs (random weights); real opus-mt figures need a real model",
        "generation": gen,
        "cache": cache,
    }
    print(json.dumps(figures, indent=2))
    sorted_speedup = gen["batched_length_sorted"]["speedup"]
    print(
        f"\nbatched+sorted vs one-at-a-time: {sorted_speedup}x (target >= {TARGET_BATCHED}x); "
        f"cached re-run / first run: {cache['rerun_unchanged']['ratio_to_first']:.1%} "
        f"(target <= {TARGET_CACHED:.0%})"
    )
    if "ctranslate2_batched" in gen:
        fast = gen["ctranslate2_batched"]["speedup_over_transformers_batched_sorted"]
        print(f"ctranslate2 vs transformers, both batched and sorted: {fast}x")
    out = Path(args.out)
    write_results(figures, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
