"""When the pipeline runs without a person: weekly, and when the raw data changes.

The schedule and the sensor read params.yaml at every evaluation and hand every op of the job its config
from it (:func:`current_run_config`). The job's Config classes are generated from params.yaml when the
definitions are imported, so in a long-running code server their defaults go stale after an edit until
the definitions are reloaded; a run started here never relies on them. Each run is tagged with what was
read: ``params_hash`` (of that run config) and, for the sensor, the raw file path and md5 it saw
(``raw_path_requested``, ``raw_md5_requested``). ``raw_md5`` itself is written by raw_examples with the md5
of the content it actually ingested.

Neither asks for a run whose settings fail :func:`assets.preflight.preflight`: the tick is skipped with
the problems as its reason (and in its log), instead of a run that fails at adapter after the data stages.

Both also fail runs a killed process left STARTED (pipelines/instance.py), which would otherwise hold the
one run slot and keep every queued run waiting.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import dagster as dg

from assets import stages
from assets.params import ParamsError, settings_hash
from assets.preflight import preflight
from assets.publishing import current_config
from assets.shared.errors import InputError
from pipelines.instance import fail_orphaned_runs
from resources.artifacts import dvc_md5
from resources.project import resolve_path

FULL_JOB = "full_pipeline"
# Run tags saying what the schedule or the sensor read when it asked for the run.
PARAMS_HASH_TAG = "params_hash"
RAW_PATH_REQUESTED_TAG = "raw_path_requested"
RAW_MD5_REQUESTED_TAG = "raw_md5_requested"
INGEST_STAGE = "raw_examples"

full_pipeline = dg.define_asset_job(
    FULL_JOB,
    selection=dg.AssetSelection.all(),
    description="Raw data to a promoted, merged model: every asset and every check.",
)


def current_run_config(stage_names: Iterable[str] | None = None) -> dict[str, Any]:
    """Run config giving each stage's op (every stage of the table by default) its config values from
    params.yaml as it is now, whatever defaults the loaded definitions carry."""
    names = [stage.name for stage in stages.STAGES] if stage_names is None else list(stage_names)
    return {"ops": {name: {"config": current_config(name)} for name in names}}


def checked_run_config() -> dict[str, Any] | dg.SkipReason:
    """:func:`current_run_config` once every setting in it passed :func:`assets.preflight.preflight`,
    else a SkipReason naming each bad setting: a run that would fail at its adapter step after every data
    stage is never launched, and the tick (and its log) says what to fix in params.yaml."""
    try:
        run_config = current_run_config()
        preflight(run_config=run_config)
    except (ParamsError, InputError) as exc:
        return dg.SkipReason(f"not launched: {exc}")
    return run_config


def _raw_path(run_config: dict[str, Any]) -> str:
    return run_config["ops"][INGEST_STAGE]["config"]["raw_path"]


@dg.schedule(
    name="weekly_retrain",
    job=full_pipeline,
    cron_schedule="0 3 * * 1",  # Mondays 03:00 UTC, after a week of new data
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Retrain, evaluate and (if the gate passes) promote every Monday, with the settings "
    "params.yaml holds at that moment.",
)
def weekly_retrain(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:
        instance = None  # evaluated outside a deployment (a test, `dagster schedule preview`)
    if instance is not None:
        fail_orphaned_runs(instance, by="schedule weekly_retrain")
    run_config = checked_run_config()
    if isinstance(run_config, dg.SkipReason):
        context.log.error(run_config.skip_message or "")
        return run_config
    return dg.RunRequest(run_config=run_config, tags={PARAMS_HASH_TAG: settings_hash(run_config)})


@dg.sensor(
    job=full_pipeline,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts a full run when the file at data.raw_path (read from params.yaml at every tick) "
    "differs from the one raw_examples last ingested. Before the first materialization it waits for a "
    "person to run the pipeline.",
)
def raw_data_changed(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    # Every tick (a minute) also frees the run slot from runs a killed process left STARTED, so runs
    # queued from the UI, the schedule or this sensor never wait on them.
    for run_id in fail_orphaned_runs(context.instance, by="sensor raw_data_changed"):
        context.log.warning(f"run {run_id} was left STARTED by a process that is gone; marked it failed")
    # Watch what the next run will read: the run gets this very config.
    run_config = checked_run_config()
    if isinstance(run_config, dg.SkipReason):
        context.log.error(run_config.skip_message or "")
        return run_config
    raw_path = _raw_path(run_config)
    if not isinstance(raw_path, str) or not raw_path.strip():
        return dg.SkipReason("data.raw_path is empty in params.yaml: nothing to watch")
    path = resolve_path(raw_path)
    if not path.is_file():
        return dg.SkipReason(f"{path} (data.raw_path) does not exist")
    # Hash the file only when its path, size or modification time moved since the last tick.
    stat = path.stat()
    stamp = f"{stat.st_mtime_ns}:{stat.st_size}"
    cursor = json.loads(context.cursor) if context.cursor else {}
    current = (
        cursor["md5"] if cursor.get("stamp") == stamp and cursor.get("path") == str(path) else dvc_md5(path)
    )
    context.update_cursor(json.dumps({"path": str(path), "stamp": stamp, "md5": current}))
    event = context.instance.get_latest_materialization_event(dg.AssetKey(INGEST_STAGE))
    if event is None or event.asset_materialization is None:
        return dg.SkipReason("raw_examples was never materialized; run the pipeline once by hand")
    ingested = event.asset_materialization.metadata.get("source_md5")
    if ingested is not None and ingested.value == current:
        return dg.SkipReason(f"{path.name} unchanged since the last ingestion")
    # One run per (data version, last ingestion): however often the sensor ticks before that run
    # ingests the file, it asks once; and going back to an earlier version later still retrains.
    run_key = f"{current}-after-{event.run_id or event.timestamp}"
    tags = {
        PARAMS_HASH_TAG: settings_hash(run_config),
        RAW_PATH_REQUESTED_TAG: raw_path,
        RAW_MD5_REQUESTED_TAG: current,
    }
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=run_key, run_config=run_config, tags=tags)])
