"""The raw-data sensor: retrain when the file at data.raw_path differs from what was last ingested."""

from __future__ import annotations

import dagster as dg

from assets.params import section
from pipelines.automation import raw_data_changed
from resources.artifacts import dvc_md5
from resources.project import resolve_path


def _evaluate(instance: dg.DagsterInstance) -> dg.SensorResult | dg.SkipReason:
    return raw_data_changed(dg.build_sensor_context(instance=instance))


def _ingested(instance: dg.DagsterInstance, md5: str) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization("raw_examples", metadata={"source_md5": md5}))


def test_sensor_waits_for_the_first_manual_run() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = _evaluate(instance)
        assert isinstance(result, dg.SkipReason)
        assert "never materialized" in result.skip_message


def test_sensor_skips_unchanged_data_and_requests_a_run_when_it_changes() -> None:
    current = dvc_md5(resolve_path(section("data")["raw_path"]))
    with dg.DagsterInstance.ephemeral() as instance:
        _ingested(instance, current)
        assert isinstance(_evaluate(instance), dg.SkipReason)

        _ingested(instance, "an-older-version")
        result = _evaluate(instance)
        assert isinstance(result, dg.SensorResult)
        [request] = result.run_requests
        assert request.run_key.startswith(current)
        assert _evaluate(instance).run_requests[0].run_key == request.run_key  # asks once per version


def test_returning_to_an_earlier_data_version_retrains_again() -> None:
    current = dvc_md5(resolve_path(section("data")["raw_path"]))
    with dg.DagsterInstance.ephemeral() as instance:
        _ingested(instance, "version-b")
        first = _evaluate(instance).run_requests[0].run_key
        _ingested(instance, current)  # that run ingested the current file ...
        _ingested(instance, "version-b")  # ... then someone went back to version b and ran again
        second = _evaluate(instance).run_requests[0].run_key
        assert first != second
