"""The approve_candidate job on a real local registry: it promotes a `pending` version, records who
approved it on registered_adapter, fails clearly for a version that is not pending, and with
`export: true` its sensor asks for a merged_model run."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines.approval import APPROVED_VERSION_TAG, approve_candidate_job, export_after_approval
from tests.test_failures import assert_says
from tests.test_promotion import _inputs, _registry, _run, empty_db, tiny_base, tmp_path

__all__ = ["empty_db", "tiny_base", "tmp_path"]  # fixtures shared with test_promotion
NAME = "finetuned-adapter"


def _approve(
    root: Path, instance: dg.DagsterInstance, version: str, *, export: bool = False
) -> dg.ExecuteInProcessResult:
    config = {"version": version, "export": export, "model_name": NAME}
    return approve_candidate_job.execute_in_process(
        run_config={"ops": {"approve_version": {"config": config}}},
        resources={"registry": _registry(root)},
        instance=instance,
        raise_on_error=False,
    )


def _failure(result: dg.ExecuteInProcessResult) -> str:
    [event] = [e for e in result.all_events if e.is_step_failure]
    return event.step_failure_data.user_failure_data.description


def _sensor(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> object:
    context = dg.build_run_status_sensor_context(
        sensor_name="export_after_approval",
        dagster_event=result.get_run_success_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    )
    return export_after_approval(context)


def test_the_job_approves_a_pending_version_and_refuses_one_that_is_not(
    tmp_path: Path, tiny_base: Path
) -> None:
    _inputs(tmp_path, tiny_base)
    assert _run(tmp_path, {"require_approval": True}).get_asset_check_evaluations()[0].passed
    registry = _registry(tmp_path)
    assert registry.version(NAME, "1")["tags"]["promotion"] == "pending"
    assert registry.champion(NAME) is None

    with dg.DagsterInstance.ephemeral() as instance:
        result = _approve(tmp_path, instance, "1")
        assert result.success
        assert registry.champion(NAME)["version"] == "1"
        assert registry.version(NAME, "1")["tags"]["promotion"] == "champion"
        [observation] = [
            e.asset_observation_data.asset_observation
            for e in result.all_events
            if e.event_type_value == "ASSET_OBSERVATION"
        ]
        assert observation.asset_key == dg.AssetKey("registered_adapter")
        assert observation.metadata["promotion"].value == "champion (approved)"
        assert observation.metadata["previous_champion"].value == "none"
        # Approved without export: the sensor asks for nothing.
        assert isinstance(_sensor(instance, result), dg.SkipReason)

        # Approving again: version 1 is the champion now, not pending; nothing moves.
        again = _approve(tmp_path, instance, "1")
        assert not again.success
        assert_says(_failure(again), "version 1", "not pending approval", "promotion=champion")
        missing = _approve(tmp_path, instance, "7")
        assert not missing.success
        assert_says(_failure(missing), "nothing was promoted", "pipelines.registry status")
    assert registry.champion(NAME)["version"] == "1"


def test_with_export_the_sensor_requests_the_merged_model_run_once(tmp_path: Path, tiny_base: Path) -> None:
    _inputs(tmp_path, tiny_base)
    _run(tmp_path, {"require_approval": True})
    with dg.DagsterInstance.ephemeral() as instance:
        result = _approve(tmp_path, instance, "1", export=True)
        assert result.success
        request = _sensor(instance, result)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == result.run_id  # one export per approval run
    assert set(request.run_config["ops"]) == {"merged_model"}
    assert request.tags[APPROVED_VERSION_TAG] == "1"
