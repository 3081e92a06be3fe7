"""A killed run never jams the queue: its Dagster run is failed with a reason before the next run, and
what it was writing is rolled back. Real CLI runs in a project copy, killed by a real SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from pipelines.instance import DEFAULT_SETTINGS, fail_orphaned_runs
from pipelines.workspace import copy_project, run_in
from resources.processes import FAILPOINT_ENV, owner_alive, owner_token, process_alive


def test_a_pid_reused_by_a_newer_process_is_not_the_owner() -> None:
    assert process_alive(os.getpid(), started_by=time.time())
    assert not process_alive(os.getpid(), started_by=time.time() - 10 * 365 * 86400)
    assert owner_alive(owner_token())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not process_alive(child.pid)
    assert not owner_alive("not-a-token")


def test_new_instances_run_monitoring() -> None:
    import yaml

    settings = yaml.safe_load(DEFAULT_SETTINGS)
    assert settings["run_monitoring"]["enabled"] is True
    assert settings["run_monitoring"]["start_timeout_seconds"] > 0
    assert settings["run_monitoring"]["cancel_timeout_seconds"] > 0
    assert settings["concurrency"]["runs"]["max_concurrent_runs"] == 1


def test_a_live_run_is_left_alone(tmp_path: Path) -> None:
    """The sweep must not fail a run whose process still runs: here the run of this very process."""

    @dg.op
    def sweep(context) -> list[str]:  # no annotation: this module postpones them
        return fail_orphaned_runs(context.instance, by="test")

    @dg.job(executor_def=dg.in_process_executor)
    def sweeping():
        sweep()

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = sweeping.execute_in_process(instance=instance)
        assert result.success
        assert result.output_for_node("sweep") == []


@pytest.mark.slow
def test_a_killed_cli_run_is_failed_with_a_reason_and_the_next_run_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_project(tmp_path / "project")
    # The run kills itself with SIGKILL after staging raw_examples' new file, before renaming it.
    monkeypatch.setenv(FAILPOINT_ENV, "datasets:staged-one")
    killed = run_in(root, [sys.executable, "-m", "pipelines.materialize", "raw_examples"], timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    leftovers = list((root / "data").glob(".raw_examples.parquet.tmp-*"))
    assert leftovers, "the killed run should have left its staged file"
    assert not (root / "data" / "raw_examples.parquet").exists()

    os.environ["DAGSTER_HOME"] = str(root / ".dagster")
    with dg.DagsterInstance.get() as instance:
        [orphan] = instance.get_runs()
        assert orphan.status == dg.DagsterRunStatus.STARTED  # what jammed the queue before

    monkeypatch.delenv(FAILPOINT_ENV)
    again = run_in(root, [sys.executable, "-m", "pipelines.materialize", "raw_examples"], timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"run {orphan.run_id} was left STARTED" in again.stderr
    assert (root / "data" / "raw_examples.parquet").exists()
    assert not list((root / "data").glob(".raw_examples.parquet.*")), "leftovers were not removed"
    assert "data/raw_examples.parquet" in (root / "dvc.lock").read_text()  # recorded in DVC

    with dg.DagsterInstance.get() as instance:
        runs = {run.run_id: run for run in instance.get_runs()}
        assert runs[orphan.run_id].status == dg.DagsterRunStatus.FAILURE
        assert sum(run.status == dg.DagsterRunStatus.SUCCESS for run in runs.values()) == 1
        [failure] = instance.get_records_for_run(
            orphan.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
        ).records
        message = failure.event_log_entry.dagster_event.message
        assert "is no longer running (killed or crashed)" in message
        assert "the command line" in message
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


def test_the_sensor_fails_an_orphan_so_queued_runs_can_start(tmp_path: Path) -> None:
    """The daemon path: a run launched from the UI whose worker was killed is failed at the next
    sensor tick (the sensor ticks every minute while the daemon runs)."""
    from dagster._core.events import EngineEventData

    from pipelines.automation import raw_data_changed

    @dg.op
    def step() -> None:
        pass

    @dg.job
    def launched():
        step()

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        run = instance.create_run_for_job(launched, status=dg.DagsterRunStatus.STARTED)
        instance.report_engine_event(
            f"Started process for run (pid: {dead.pid}).", run, EngineEventData.in_process(dead.pid)
        )
        raw_data_changed(dg.build_sensor_context(instance=instance))
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


@pytest.mark.slow
def test_a_clean_run_killed_between_its_renames_never_feeds_a_mismatched_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: `kill -9` during the clean stage's writes left clean_examples new and
    rejected_examples old, and the next stage used the pair. Now the next run rolls the pair back
    before anything reads it, and a clean re-run accounts for every raw row."""
    from assets.stages import ARTIFACTS
    from resources.artifacts import ArtifactStore, dvc_md5

    root = copy_project(
        tmp_path / "project", {"augment": {"enabled": False}, "clean": {"cleanlab_enabled": False}}
    )

    def materialize(stage: str) -> subprocess.CompletedProcess[str]:
        return run_in(root, [sys.executable, "-m", "pipelines.materialize", stage], timeout=900)

    for stage in ("raw_examples", "base_model", "clean"):
        done = materialize(stage)
        assert done.returncode == 0, done.stderr[-3000:]
    paths = {key: root / "data" / f"{key}.parquet" for key in ("clean_examples", "rejected_examples")}
    old = {key: dvc_md5(path) for key, path in paths.items()}

    raw = root / "data" / "sample" / "examples.jsonl"
    lines = raw.read_text().splitlines(keepends=True)
    raw.write_text("".join(lines[: len(lines) // 2]))  # new data: a different pair
    assert materialize("raw_examples").returncode == 0
    monkeypatch.setenv(FAILPOINT_ENV, "datasets:renamed-1")
    assert materialize("clean").returncode == -signal.SIGKILL
    on_disk = {key: dvc_md5(path) for key, path in paths.items()}
    assert on_disk["clean_examples"] != old["clean_examples"]  # the mismatch the kill left on disk
    assert on_disk["rejected_examples"] == old["rejected_examples"]

    monkeypatch.delenv(FAILPOINT_ENV)
    downstream = materialize("augmented_examples")
    assert downstream.returncode == 0, downstream.stderr[-3000:]
    assert {key: dvc_md5(path) for key, path in paths.items()} == old  # rolled back, then read

    again = materialize("clean")
    assert again.returncode == 0, again.stderr[-3000:]
    store = ArtifactStore(root, ARTIFACTS)
    raw_rows = len(store.read_dataset("raw_examples"))
    assert raw_rows == len(store.read_dataset("clean_examples")) + len(
        store.read_dataset("rejected_examples")
    )


def test_settings_this_project_wrote_earlier_get_run_monitoring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.instance import PREVIOUS_SETTINGS, ensure_dagster_home

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text(PREVIOUS_SETTINGS[0])
    ensure_dagster_home()
    assert (tmp_path / "dagster.yaml").read_text() == DEFAULT_SETTINGS
    edited = PREVIOUS_SETTINGS[0] + "run_retries:\n  enabled: true\n"
    (tmp_path / "dagster.yaml").write_text(edited)
    ensure_dagster_home()
    assert (tmp_path / "dagster.yaml").read_text() == edited  # a file someone edited is theirs


def test_a_command_line_run_is_refused_while_another_run_is_executing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI does not go through the run queue: it refuses to start beside a live run (here, the run
    of this very process asks), and starts once that run has ended."""
    from pipelines.instance import RunInProgress, command_line_instance

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / ".dagster"))
    (tmp_path / ".dagster").mkdir()

    @dg.op
    def start_another(context) -> str:  # no annotation: this module postpones them
        try:
            command_line_instance()
        except RunInProgress as exc:
            return str(exc)
        return "started"

    @dg.job(executor_def=dg.in_process_executor)
    def busy():
        start_another()

    instance = dg.DagsterInstance.get()
    result = busy.execute_in_process(instance=instance)
    message = result.output_for_node("start_another")
    assert message.startswith(f"run {result.run_id} (busy) is running now"), message
    assert command_line_instance() is not None  # that run has ended
