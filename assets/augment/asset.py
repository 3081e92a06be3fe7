"""augmented_examples: clean examples plus back-translated paraphrases of their user turns (or the turns
chosen by ``augment.turns``), through each pivot language of ``augment.pivot_langs``."""

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import dagster as dg

from assets.publishing import (
    Stopwatch,
    artifact_store,
    count_table,
    dataset_metadata,
    fail,
    record_stage,
    stage_config,
    stage_policy,
    stage_settings,
    stage_value,
)
from assets.types import Dataset
from resources.dvc import DvcResource
from resources.model_source import ModelSourceError
from resources.models import ModelLoader
from resources.storage import StorageResource

if TYPE_CHECKING:
    from resources.translators import Translator

AugmentConfig = stage_config("augmented_examples")


@dg.asset(
    group_name="data",
    kinds={"parquet", "dvc", "transformers"},
    **stage_policy("augmented_examples"),
)
def augmented_examples(
    context: dg.AssetExecutionContext,
    config: AugmentConfig,
    clean_examples: Dataset,
    storage: StorageResource,
    dvc: DvcResource,
    models: ModelLoader,
) -> Iterator[dg.MaterializeResult]:
    """The clean examples plus paraphrases made by back-translation (source -> pivot -> source
    language, MarianMT models, one pair per pivot language). A paraphrase row has `augmented_from` = its
    source id and the source's `created_at` and group, so it always follows its source into the training
    split. Paraphrases that fail the quality filter (too close or too far from the source by chrF, wrong
    length) are dropped and counted by reason. Translations are cached (`.cache/backtranslation/`), so a
    re-run translates only new texts; the cache never changes the output."""
    from assets.augment.backtranslate import TranslatorPair, back_translate_rows
    from assets.augment.settings import AugmentSettings
    from assets.augment.translation_cache import CACHE_DIR, CACHE_FILE, TranslationCache
    from assets.shared.schema import example_features, to_dataset

    stopwatch = Stopwatch()
    rows = clean_examples.to_list()
    counts: dict[str, int] = {}
    new_rows: list[dict] = []
    metadata: dict[str, object] = {"translators": "disabled"}
    if stage_value(config, "enabled", bool):
        settings = stage_settings(AugmentSettings, config.model_dump())
        cache_dir = Path(storage.root) / CACHE_DIR

        def load(direction: Literal["forward", "backward"], pivot: str) -> "Translator":
            # A model that is not on this machine, or is no translation model, fails with a message
            # naming the setting (ModelLoader); any other error is a bug and keeps its traceback.
            languages = (settings.source_lang, pivot)
            return models.translator(
                settings.model_spec(direction, pivot),
                direction=languages if direction == "forward" else languages[::-1],
                seed=settings.seed,
                setting=f"augment.{direction}_model",
                backend=settings.backend,
                converted_root=str(cache_dir / "ctranslate2"),
            )

        translators = {
            pivot: TranslatorPair(forward=load("forward", pivot), backward=load("backward", pivot))
            for pivot in settings.pivot_langs
        }
        try:
            with TranslationCache(cache_dir / CACHE_FILE) as cache:
                result = back_translate_rows(rows, translators=translators, settings=settings, cache=cache)
        except ModelSourceError as exc:
            # Weights are loaded on first use; unusable ones are the user's to fix, as above.
            raise fail(f"augmented_examples: {exc}") from None
        new_rows, counts = result.rows, result.counts
        metadata = {
            "translators": ", ".join(
                f"{pivot}: {settings.model_spec('forward', pivot)} / {settings.model_spec('backward', pivot)}"
                for pivot in settings.pivot_langs
            ),
            "paraphrases_by_pivot": count_table(result.kept_by_pivot.items(), "pivot"),
            "translation_cache_hits": result.translations.cache_hits,
            "translation_cache_misses": result.translations.translated,
        }
    dataset = to_dataset(rows + new_rows, example_features())
    artifact_store(storage).write_dataset("augmented_examples", dataset)
    metadata = {
        **dataset_metadata(dataset),
        "clean_rows": len(rows),
        "augmented_rows": len(new_rows),
        "paraphrases_by_outcome": count_table(counts.items(), "outcome"),
        **metadata,
    }
    yield from record_stage(context, config, storage, dvc, {"augmented_examples": metadata}, stopwatch)
