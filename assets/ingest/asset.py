"""raw_examples: the input file, every row of it, in the canonical schema."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from assets.publishing import (
    Stopwatch,
    artifact_store,
    count_table,
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
# A large file logs its progress every this many rows.
PROGRESS_ROWS = 100_000


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
    their own time and which were given one from their place in the file (`data.missing_created_at`).
    With `data.pii_redaction`, e-mail addresses, phone numbers, card numbers, IBANs and IP addresses are
    typed placeholders (<EMAIL>, <PHONE>, ...) in every text column, the original text included."""
    from assets.ingest.normalize import normalize_chunks
    from assets.ingest.readers import IngestError
    from assets.ingest.settings import IngestOptions
    from assets.ingest.summary import IngestSummary
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
    features = raw_features()
    summary = IngestSummary()

    def tables() -> Iterator[Any]:
        # The configured path, not the absolute one: the same input gives the same bytes anywhere.
        chunks = normalize_chunks(
            path, max_chars=config.max_chars, source_file=config.raw_path, options=options, summary=summary
        )
        logged = 0
        for chunk in chunks:
            yield to_dataset(chunk, features).data.table
            if summary.rows - logged >= PROGRESS_ROWS:
                logged = summary.rows
                context.log.info(f"raw_examples: {logged} rows read from {config.raw_path}")

    try:
        # Streamed: one chunk of rows in memory at a time; the file replaces the last version only
        # once every row is written (and not at all when the input holds no valid row).
        artifact_store(storage).write_dataset_stream("raw_examples", features.arrow_schema, tables())
    except IngestError as exc:
        raise fail(str(exc)) from None
    mixed = summary.mixed_created_at_warning()
    if mixed is not None:
        context.log.warning(mixed)
    if dvc_md5(path) != before:
        raise fail(f"data.raw_path: {path} changed while it was being read; materialize raw_examples again.")
    # The run says what it ingested, whatever the sensor saw when it asked for the run.
    context.instance.add_run_tags(context.run_id, {RAW_MD5_TAG: before})
    metadata = {
        "dagster/row_count": summary.rows,
        **({"oldest": summary.oldest.isoformat()} if summary.oldest else {}),
        **({"newest": summary.newest.isoformat()} if summary.newest else {}),
        "source_file": dg.MetadataValue.path(str(path)),
        # The sensor compares the file's current md5 with this to decide whether to retrain.
        "source_md5": before,
        "rows_with_errors": sum(summary.errors.values()),
        "errors_by_reason": count_table(summary.errors.items(), "error"),
        # which rows carry their own created_at (file) and which got one from their line (row_order)
        "created_at_sources": count_table(summary.created_at_sources.items(), "created_at_source"),
        "created_at_policy": options.missing_created_at,
        "created_at_mixed": dg.MetadataValue.md(mixed or "no"),
        # PII spans replaced by placeholders, by type (data.pii_redaction, data.pii_types)
        "pii_redacted": dg.MetadataValue.md(
            summary.pii_table(options.pii_types)
            if options.pii_redaction
            else "off (data.pii_redaction is false): text is written as it was read"
        ),
    }
    # dvc.lock records the file as it was read, even if it changes before the commit.
    read = {str(path): before} if before is not None else None
    yield from record_stage(context, config, storage, dvc, {"raw_examples": metadata}, stopwatch, read)
