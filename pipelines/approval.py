"""Manual approval in Dagster: the `approve_candidate` job and the export that may follow it.

With `registry.require_approval: true` a candidate that passes the promotion gate waits as `pending`.
Launch `approve_candidate` from the UI (Jobs → approve_candidate → Launchpad) with

    ops:
      approve_version:
        config: {version: "3", export: true}

It promotes the version as `python -m pipelines.registry approve 3` does. With `export: true`, the
`export_after_approval` sensor (run by the Dagster daemon, which `make ui` starts) then launches
`export_champion`, a merged_model run with params.yaml's settings as they are at that moment, so the
export follows the new champion. A job cannot materialize an asset after an op in the same run, hence a
second run; the sensor's run key (the approval run's id) asks for it once.
"""

from __future__ import annotations

import dagster as dg

from assets.params import ParamsError, settings_hash
from assets.preflight import preflight
from assets.registry.approval import approve_version
from assets.shared.errors import InputError
from pipelines.automation import PARAMS_HASH_TAG, current_run_config

EXPORT_STAGE = "merged_model"
APPROVED_VERSION_TAG = "approved_version"


@dg.job(
    name="approve_candidate",
    description="Promote a registry version that waits as `pending` (registry.require_approval). Config: "
    "`version`, and `export: true` to re-export merged_model afterwards.",
    tags={"kind": "mlflow"},
)
def approve_candidate_job() -> None:
    approve_version()


export_champion = dg.define_asset_job(
    "export_champion",
    selection=[EXPORT_STAGE],
    description="Merge and export the current champion (merged_model alone).",
)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="export_after_approval",
    monitored_jobs=[approve_candidate_job],
    request_job=export_champion,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After an approve_candidate run with `export: true` succeeds, launches export_champion "
    "with params.yaml's merged_model settings as they are now.",
)
def export_after_approval(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    approval = context.dagster_run.run_config.get("ops", {}).get("approve_version", {}).get("config", {})
    if not approval.get("export"):
        return dg.SkipReason(f"run {context.dagster_run.run_id} approved without export: true")
    run_config = current_run_config([EXPORT_STAGE])
    try:
        preflight([EXPORT_STAGE], run_config=run_config)
    except (ParamsError, InputError) as exc:
        context.log.error(f"export not launched: {exc}")
        return dg.SkipReason(f"export not launched: {exc}")
    return dg.RunRequest(
        run_key=context.dagster_run.run_id,
        run_config=run_config,
        tags={PARAMS_HASH_TAG: settings_hash(run_config), APPROVED_VERSION_TAG: str(approval["version"])},
    )
