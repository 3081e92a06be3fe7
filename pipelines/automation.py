"""When the pipeline runs without a person: weekly, and when the raw data changes."""

from __future__ import annotations

import json

import dagster as dg

from assets.params import section
from resources.artifacts import dvc_md5
from resources.project import resolve_path

FULL_JOB = "full_pipeline"

full_pipeline = dg.define_asset_job(
    FULL_JOB,
    selection=dg.AssetSelection.all(),
    description="Raw data to a promoted, merged model: every asset and every check.",
)

weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain",
    job=full_pipeline,
    cron_schedule="0 3 * * 1",  # Mondays 03:00 UTC, after a week of new data
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Retrain, evaluate and (if the gate passes) promote every Monday.",
)


@dg.sensor(
    job=full_pipeline,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts a full run when the file at data.raw_path differs from the one raw_examples "
    "last ingested. Before the first materialization it waits for a person to run the pipeline.",
)
def raw_data_changed(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    path = resolve_path(section("data")["raw_path"])
    if not path.is_file():
        return dg.SkipReason(f"{path} does not exist")
    # Hash the file only when its size or modification time moved since the last tick.
    stat = path.stat()
    stamp = f"{stat.st_mtime_ns}:{stat.st_size}"
    cursor = json.loads(context.cursor) if context.cursor else {}
    current = (
        cursor["md5"] if cursor.get("stamp") == stamp and cursor.get("path") == str(path) else dvc_md5(path)
    )
    context.update_cursor(json.dumps({"path": str(path), "stamp": stamp, "md5": current}))
    event = context.instance.get_latest_materialization_event(dg.AssetKey("raw_examples"))
    if event is None or event.asset_materialization is None:
        return dg.SkipReason("raw_examples was never materialized; run the pipeline once by hand")
    ingested = event.asset_materialization.metadata.get("source_md5")
    if ingested is not None and ingested.value == current:
        return dg.SkipReason(f"{path.name} unchanged since the last ingestion")
    # One run per (data version, last ingestion): however often the sensor ticks before that run
    # ingests the file, it asks once; and going back to an earlier version later still retrains.
    run_key = f"{current}-after-{event.run_id or event.timestamp}"
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=run_key, tags={"raw_md5": current})])
