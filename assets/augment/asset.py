"""augmented_examples: clean examples plus back-translated paraphrases of their user turns."""

from collections.abc import Iterator

import dagster as dg

from assets.publishing import (
    Stopwatch,
    artifact_store,
    count_table,
    dataset_metadata,
    record_stage,
    stage_config,
    stage_policy,
    stage_settings,
)
from assets.types import Dataset
from resources.dvc import DvcResource
from resources.models import ModelLoader
from resources.storage import StorageResource

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
    language, MarianMT models). A paraphrase row has `augmented_from` = its source id and the source's
    `created_at`, so it always follows its source into the training split. Paraphrases that fail the
    quality filter (too close, too far, wrong length) are dropped and counted by reason."""
    from assets.augment.backtranslate import AugmentSettings, back_translate_rows
    from assets.shared.schema import example_features, to_dataset

    stopwatch = Stopwatch()
    rows = clean_examples.to_list()
    counts: dict[str, int] = {}
    new_rows: list[dict] = []
    if config.enabled:
        settings = stage_settings(AugmentSettings, config.model_dump())
        pair = (config.source_lang, config.pivot_lang)
        # A model that is not on this machine, or is no translation model, fails with a message naming
        # the setting (ModelLoader); any other error is a bug and keeps its traceback.
        forward = models.translator(
            config.forward_model, direction=pair, seed=config.seed, setting="augment.forward_model"
        )
        backward = models.translator(
            config.backward_model, direction=pair[::-1], seed=config.seed, setting="augment.backward_model"
        )
        result = back_translate_rows(rows, forward=forward, backward=backward, settings=settings)
        new_rows, counts = result.rows, result.counts
    dataset = to_dataset(rows + new_rows, example_features())
    artifact_store(storage).write_dataset("augmented_examples", dataset)
    metadata = {
        **dataset_metadata(dataset),
        "clean_rows": len(rows),
        "augmented_rows": len(new_rows),
        "paraphrases_by_outcome": count_table(counts.items(), "outcome"),
        "translators": f"{config.forward_model} / {config.backward_model}" if config.enabled else "disabled",
    }
    yield from record_stage(context, config, storage, dvc, {"augmented_examples": metadata}, stopwatch)
