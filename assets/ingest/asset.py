"""raw_examples: the input file, every row of it, in the canonical schema."""

from collections import Counter
from collections.abc import Iterator

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
)
from resources.artifacts import dvc_md5
from resources.dvc import DvcResource
from resources.project import resolve_path
from resources.storage import StorageResource

RawExamplesConfig = stage_config("raw_examples")
# The run tag that says which raw file content a run ingested (the sensor sets it when it asks).
RAW_MD5_TAG = "raw_md5"


@dg.asset(
    group_name="data",
    kinds={"parquet", "dvc"},
    **stage_policy("raw_examples"),
)
def raw_examples(
    context: dg.AssetExecutionContext, config: RawExamplesConfig, storage: StorageResource, dvc: DvcResource
) -> Iterator[dg.MaterializeResult]:
    """Every row of the input at `data.raw_path` (JSONL, JSON, Parquet, CSV or a saved Hugging Face
    dataset; alpaca, chat, ShareGPT, OpenAI tool-call or OpenAssistant rows), normalized to the canonical
    schema, with its source line and original text. Rows that could not be normalized are kept here with
    an `error`; clean_examples moves them to rejected_examples. `created_at_source` says which rows carry
    their own time and which were given one from their place in the file (`data.missing_created_at`)."""
    from assets.ingest.normalize import created_at_sources, mixed_created_at_warning, normalize_file
    from assets.ingest.readers import IngestError
    from assets.ingest.settings import IngestOptions
    from assets.shared.schema import raw_features, to_dataset

    stopwatch = Stopwatch()
    options = stage_settings(IngestOptions, config.model_dump())
    if not isinstance(config.raw_path, str) or not config.raw_path.strip():
        raise fail(
            "data.raw_path is empty: set it in params.yaml to your data file (JSONL, JSON, CSV, Parquet)."
        )
    path = resolve_path(config.raw_path)
    # a directory written by Dataset.save_to_disk has a DVC md5 too
    before = dvc_md5(path) if path.exists() else None
    try:
        # The configured path, not the absolute one: the same input gives the same bytes anywhere.
        rows = normalize_file(path, max_chars=config.max_chars, source_file=config.raw_path, options=options)
    except IngestError as exc:
        raise fail(str(exc)) from None
    mixed = mixed_created_at_warning(rows)
    if mixed is not None:
        context.log.warning(mixed)
    if dvc_md5(path) != before:
        raise fail(f"data.raw_path: {path} changed while it was being read; materialize raw_examples again.")
    dataset = to_dataset(rows, raw_features())
    artifact_store(storage).write_dataset("raw_examples", dataset)
    # The run says what it ingested, whatever the sensor saw when it asked for the run.
    context.instance.add_run_tags(context.run_id, {RAW_MD5_TAG: before})
    errors = Counter(str(e).split(":", 1)[0] for e in dataset["error"] if e)
    metadata = {
        **dataset_metadata(dataset),
        "source_file": dg.MetadataValue.path(str(path)),
        # The sensor compares the file's current md5 with this to decide whether to retrain.
        "source_md5": before,
        "rows_with_errors": sum(errors.values()),
        "errors_by_reason": count_table(errors.items(), "error"),
        # which rows carry their own created_at (file) and which got one from their line (row_order)
        "created_at_sources": count_table(created_at_sources(rows).items(), "created_at_source"),
        "created_at_policy": options.missing_created_at,
        "created_at_mixed": dg.MetadataValue.md(mixed or "no"),
    }
    # dvc.lock records the file as it was read, even if it changes before the commit.
    read = {str(path): before} if before is not None else None
    yield from record_stage(context, config, storage, dvc, {"raw_examples": metadata}, stopwatch, read)
