"""The raw-data sensor and the weekly schedule: they read params.yaml at every evaluation, hand every op
its current settings, and tag the run with what they read; raw_examples tags what it really ingested."""

from __future__ import annotations

import datetime
import json
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from assets.params import section, setting_values
from assets.stages import STAGES
from pipelines.automation import (
    PARAMS_HASH_TAG,
    RAW_MD5_REQUESTED_TAG,
    RAW_PATH_REQUESTED_TAG,
    raw_data_changed,
    weekly_retrain,
)
from pipelines.definitions import defs
from resources.artifacts import dvc_md5
from resources.project import resolve_path

MONDAY_3AM = datetime.datetime(2026, 11, 23, 3, 0, tzinfo=datetime.UTC)


def _evaluate(instance: dg.DagsterInstance) -> dg.SensorResult | dg.SkipReason:
    return raw_data_changed(dg.build_sensor_context(instance=instance))


def _ingested(instance: dg.DagsterInstance, md5: str) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization("raw_examples", metadata={"source_md5": md5}))


def _configured_ops() -> set[str]:
    """The job's nodes that take config: exactly the stages of the table."""
    job = defs.resolve_job_def("full_pipeline")
    return {
        node.name
        for node in job.graph.node_defs
        if node.config_schema.config_type.kind.name != "ANY"  # the checks take no config
    }


def test_sensor_waits_for_the_first_manual_run() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = _evaluate(instance)
        assert isinstance(result, dg.SkipReason)
        assert "never materialized" in result.skip_message


def test_sensor_skips_unchanged_data_and_requests_a_run_when_it_changes() -> None:
    raw_path = section("data")["raw_path"]
    current = dvc_md5(resolve_path(raw_path))
    with dg.DagsterInstance.ephemeral() as instance:
        _ingested(instance, current)
        assert isinstance(_evaluate(instance), dg.SkipReason)

        _ingested(instance, "an-older-version")
        result = _evaluate(instance)
        assert isinstance(result, dg.SensorResult)
        [request] = result.run_requests
        assert request.run_key.startswith(current)
        assert _evaluate(instance).run_requests[0].run_key == request.run_key  # asks once per version
        # The run reads the file the sensor hashed, and says what the sensor saw; `raw_md5` is left to
        # raw_examples, which writes what it really ingested.
        assert request.run_config["ops"]["raw_examples"]["config"]["raw_path"] == raw_path
        assert request.tags[RAW_PATH_REQUESTED_TAG] == raw_path
        assert request.tags[RAW_MD5_REQUESTED_TAG] == current
        assert "raw_md5" not in request.tags
        assert len(request.tags[PARAMS_HASH_TAG]) == 12


def test_returning_to_an_earlier_data_version_retrains_again() -> None:
    current = dvc_md5(resolve_path(section("data")["raw_path"]))
    with dg.DagsterInstance.ephemeral() as instance:
        _ingested(instance, "version-b")
        first = _evaluate(instance).run_requests[0].run_key
        _ingested(instance, current)  # that run ingested the current file ...
        _ingested(instance, "version-b")  # ... then someone went back to version b and ran again
        second = _evaluate(instance).run_requests[0].run_key
        assert first != second


def test_schedule_and_sensor_give_every_op_its_params_yaml_config() -> None:
    job = defs.resolve_job_def("full_pipeline")
    with dg.DagsterInstance.ephemeral() as instance:
        scheduled = weekly_retrain(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=MONDAY_3AM)
        )
        _ingested(instance, "an-older-version")
        [sensed] = _evaluate(instance).run_requests
    for request in (scheduled, sensed):
        assert isinstance(request, dg.RunRequest)
        ops = request.run_config["ops"]
        assert set(ops) == {stage.name for stage in STAGES} == _configured_ops()
        for stage in STAGES:
            expected = {
                key: value
                for key, value in setting_values(stage.params).items()
                if key not in stage.config_exclude
            }
            assert ops[stage.name]["config"] == expected, stage.name
        dg.validate_run_config(job, request.run_config)  # what the daemon checks before launching
    assert scheduled.tags[PARAMS_HASH_TAG] == sensed.tags[PARAMS_HASH_TAG]


def test_schedule_is_weekly_and_running_by_default() -> None:
    schedule = defs.resolve_schedule_def("weekly_retrain")
    assert schedule.cron_schedule == "0 3 * * 1"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "full_pipeline"
    assert defs.resolve_sensor_def("raw_data_changed").default_status == dg.DefaultSensorStatus.RUNNING


# Runs in a copy of the project whose params.yaml is edited after the definitions were imported, as in
# a long-running `dagster dev`. Prints what the loaded definitions default to and what the sensor and
# the schedule ask for.
EDITED_AFTER_IMPORT = textwrap.dedent(
    """
    import datetime, json, re, shutil
    import dagster as dg
    from pipelines.definitions import defs
    from pipelines.automation import raw_data_changed, weekly_retrain
    from assets.ingest.asset import RawExamplesConfig
    from assets.train.asset import AdapterConfig
    from resources.artifacts import dvc_md5
    from resources.project import PROJECT_ROOT

    params = PROJECT_ROOT / "params.yaml"
    old_path = re.search(r"^  raw_path: (.+)$", params.read_text(), re.M).group(1).strip()
    old_md5 = dvc_md5(PROJECT_ROOT / old_path)
    out = {"old_path": old_path, "old_md5": old_md5}
    with dg.DagsterInstance.ephemeral() as instance:
        # The last run ingested the old file; the sensor has been watching it.
        instance.report_runless_asset_event(
            dg.AssetMaterialization("raw_examples", metadata={"source_md5": old_md5})
        )
        context = dg.build_sensor_context(instance=instance)
        out["before"] = type(raw_data_changed(context)).__name__
        cursor = context.cursor

        # Someone points data.raw_path at a new file and edits a training setting.
        new_file = PROJECT_ROOT / "data" / "incoming" / "support.jsonl"
        new_file.parent.mkdir(parents=True)
        shutil.copyfile(PROJECT_ROOT / old_path, new_file)
        with new_file.open("a") as handle:
            handle.write(
                '{"created_at": "2026-11-20T09:00:00Z", "instruction": "A new question?", '
                '"output": "A new answer."}\\n'
            )
        text, n = re.subn(r"^  raw_path: .+$", "  raw_path: data/incoming/support.jsonl", params.read_text(),
                          flags=re.M)
        text, m = re.subn(r"^  epochs: .+$", "  epochs: 7", text, flags=re.M)
        assert n == m == 1, (n, m)
        params.write_text(text)
        out["new_md5"] = dvc_md5(new_file)

        context = dg.build_sensor_context(instance=instance, cursor=cursor)
        result = raw_data_changed(context)
        out["after"] = type(result).__name__
        out["cursor"] = json.loads(context.cursor)
        requests = getattr(result, "run_requests", None) or []
        out["sensor"] = [{"run_config": r.run_config, "tags": r.tags} for r in requests]
        scheduled = weekly_retrain(dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime.datetime(2026, 11, 23, 3, tzinfo=datetime.timezone.utc),
        ))
        out["schedule"] = {"run_config": scheduled.run_config, "tags": scheduled.tags}
        # The loaded definitions still default to the old settings, and accept the new run config.
        out["stale_defaults"] = {
            "raw_path": RawExamplesConfig.model_fields["raw_path"].default,
            "epochs": AdapterConfig.model_fields["epochs"].default,
        }
        job = defs.resolve_job_def("full_pipeline")
        dg.validate_run_config(job, scheduled.run_config)
        for r in requests:
            dg.validate_run_config(job, r.run_config)
    print("RESULT " + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def edited_after_import(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    from pipelines.workspace import copy_project, run_in

    root = copy_project(tmp_path_factory.mktemp("project"))
    script = root / "edited_after_import.py"
    script.write_text(EDITED_AFTER_IMPORT)
    done = run_in(root, [sys.executable, str(script)], timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout + done.stderr
    yield root, json.loads(lines[-1].removeprefix("RESULT "))
    shutil.rmtree(root, ignore_errors=True)


def test_sensor_watches_the_raw_path_params_yaml_names_now(
    edited_after_import: tuple[Path, dict[str, Any]],
) -> None:
    root, out = edited_after_import
    new_path = "data/incoming/support.jsonl"
    assert out["before"] == "SkipReason"  # the old file was already ingested
    assert out["stale_defaults"]["raw_path"] == out["old_path"] != new_path  # definitions not reloaded
    assert out["after"] == "SensorResult"
    assert out["cursor"]["path"] == str(root.resolve() / new_path)
    assert out["cursor"]["md5"] == out["new_md5"] != out["old_md5"]
    [request] = out["sensor"]
    assert request["run_config"]["ops"]["raw_examples"]["config"]["raw_path"] == new_path
    assert request["run_config"]["ops"]["adapter"]["config"]["epochs"] == 7
    assert request["tags"][RAW_PATH_REQUESTED_TAG] == new_path
    assert request["tags"][RAW_MD5_REQUESTED_TAG] == out["new_md5"]
    assert "raw_md5" not in request["tags"]


def test_schedule_gives_every_op_the_params_yaml_of_now(
    edited_after_import: tuple[Path, dict[str, Any]],
) -> None:
    root, out = edited_after_import
    assert out["stale_defaults"]["epochs"] != 7  # the loaded Config class still has the old default
    ops = out["schedule"]["run_config"]["ops"]
    assert set(ops) == {stage.name for stage in STAGES}
    for stage in STAGES:
        expected = {
            key: value
            for key, value in setting_values(stage.params, root).items()
            if key not in stage.config_exclude
        }
        assert ops[stage.name]["config"] == expected, stage.name
    assert ops["adapter"]["config"]["epochs"] == 7
    assert ops["raw_examples"]["config"]["raw_path"] == "data/incoming/support.jsonl"
    # Both read the same params.yaml, so their runs carry the same params hash.
    [sensed] = out["sensor"]
    assert out["schedule"]["tags"][PARAMS_HASH_TAG] == sensed["tags"][PARAMS_HASH_TAG]


def test_a_run_tags_the_raw_md5_it_ingested_not_the_one_it_was_started_with(tmp_path: Path) -> None:
    from assets.ingest.asset import RAW_MD5_TAG, raw_examples
    from pipelines.io_manager import ArtifactIOManager
    from resources.dvc import DvcResource
    from resources.storage import StorageResource

    raw = tmp_path / "raw.jsonl"
    raw.write_text(
        '{"created_at": "2026-01-05T10:00:00Z", "instruction": "What is 2 + 2?", "output": "4."}\n',
        encoding="utf-8",
    )
    storage = StorageResource(root=str(tmp_path))
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [raw_examples],
            instance=instance,
            resources={
                "storage": storage,
                "io_manager": ArtifactIOManager(storage=storage),
                "dvc": DvcResource(root=str(tmp_path), enabled=False),
            },
            run_config={"ops": {"raw_examples": {"config": {"raw_path": str(raw)}}}},
            tags={RAW_MD5_TAG: "stale", RAW_MD5_REQUESTED_TAG: "what-the-sensor-saw"},
        )
        assert result.success
        tags = instance.get_run_by_id(result.run_id).tags
    assert tags[RAW_MD5_TAG] == dvc_md5(raw) != "stale"
    assert tags[RAW_MD5_REQUESTED_TAG] == "what-the-sensor-saw"
