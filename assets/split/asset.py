"""train_split, validation_split, test_split: a time-based, leakage-safe split."""

from collections.abc import Iterator

import dagster as dg

from assets import stages
from assets.publishing import (
    Stopwatch,
    artifact_store,
    current_config,
    dataset_metadata,
    fail,
    record_stage,
    recorded_settings,
    refuse_other_upstream_settings,
    stage_config,
    stage_policy,
    stage_settings,
    user_errors,
)
from assets.types import Dataset
from resources.dvc import DvcResource
from resources.storage import StorageResource

SplitConfig = stage_config("split")
_DESCRIPTIONS = {
    "train_split": "Examples older than the validation cutoff (less the embargo gap), with every "
    "back-translated paraphrase.",
    "validation_split": "Examples between the validation and test cutoffs; original rows only.",
    "test_split": "The newest examples, from the test cutoff on; original rows only.",
}


@dg.multi_asset(
    name="split",
    # A selection may name one split; all three are always written (see record_stage).
    can_subset=True,
    specs=[
        dg.AssetSpec(
            key, deps=["augmented_examples"], description=_DESCRIPTIONS[key], kinds={"parquet", "dvc"}
        )
        for key in stages.stage("split").keys
    ],
    group_name="data",
    **stage_policy("split", multi_asset=True),
)
def split(
    context: dg.AssetExecutionContext,
    config: SplitConfig,
    augmented_examples: Dataset,
    storage: StorageResource,
    dvc: DvcResource,
) -> Iterator[dg.MaterializeResult]:
    from assets.shared.schema import example_features, to_dataset
    from assets.split.leakage import find_leaks
    from assets.split.timesplit import SplitSettings, split_by_time

    stopwatch = Stopwatch()
    settings = stage_settings(SplitSettings, config.model_dump())
    # One notion of near duplicate: the clean.* settings must be those clean_examples was made with.
    refuse_other_upstream_settings("split", context, config, artifact_store(storage), "clean_examples")
    with user_errors("split"):
        result = split_by_time(augmented_examples.to_list(), settings)
    # Checked here as well as by the split_leakage check: a selection of one split runs no check on
    # train_split, and leaky splits must never be written.
    leaks = find_leaks(result.train, result.validation, result.test, settings.near_duplicates)
    if leaks:
        raise fail("split: the splits would leak; nothing was written:\n" + "\n".join(leaks[:20]))
    parts = {"train_split": result.train, "validation_split": result.validation, "test_split": result.test}
    datasets = {key: to_dataset(rows, example_features()) for key, rows in parts.items()}
    artifact_store(storage).write_datasets(datasets)
    log = dg.get_dagster_logger()
    for warning in result.warnings:
        log.warning(f"split: {warning}")
    warnings = dg.MetadataValue.md("\n".join(f"- {warning}" for warning in result.warnings) or "none")
    outputs = {}
    for key, rows in parts.items():
        outputs[key] = {
            **dataset_metadata(datasets[key]),
            **result.summary[key.removesuffix("_split")],
            "augmented_rows": sum(1 for r in rows if r.get("augmented_from")),
            "validation_start": result.validation_start.isoformat(),
            "test_start": result.test_start.isoformat(),
            "groups_per_split": dg.MetadataValue.json(result.groups),
            "near_duplicate_groups_joined": result.near_duplicate_joins,
            "warning_count": len(result.warnings),
            "warnings": warnings,
        }
    outputs["train_split"]["augmented_dropped_from_eval_groups"] = result.dropped_augmented
    yield from record_stage(context, config, storage, dvc, outputs, stopwatch)


@dg.asset_check(
    asset="train_split",
    additional_ins={
        "validation_split": dg.AssetIn("validation_split"),
        "test_split": dg.AssetIn("test_split"),
    },
    blocking=True,
    description="No id, group, conversation or near-duplicate conversation in two splits; validation and "
    "test newer than train; paraphrases only in train.",
)
def split_leakage(
    context: dg.AssetCheckExecutionContext,
    train_split: Dataset,
    validation_split: Dataset,
    test_split: Dataset,
    storage: StorageResource,
) -> dg.AssetCheckResult:
    from assets.split.leakage import find_leaks
    from assets.split.timesplit import SplitSettings

    # Near duplicates by the settings the split that wrote these bytes ran with (its recorded config);
    # params.yaml as it is now only when no materialization recorded them (e.g. after `dvc checkout`).
    md5 = artifact_store(storage).md5("train_split")
    recorded = recorded_settings(context, "train_split", md5) or {}  # type: ignore[arg-type]
    settings = stage_settings(SplitSettings, {**current_config("split"), **recorded})
    source = "as the split ran" if "near_dup_threshold" in recorded else "params.yaml now"
    leaks = find_leaks(
        train_split.to_list(), validation_split.to_list(), test_split.to_list(), settings.near_duplicates
    )
    return dg.AssetCheckResult(
        passed=not leaks,
        metadata={
            "leaks": len(leaks),
            "details": dg.MetadataValue.md("\n".join(f"- {leak}" for leak in leaks[:50]) or "none"),
            "near_duplicate_rule": f"{settings.near_duplicates.describe()} ({source})",
        },
    )
