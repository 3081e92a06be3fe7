"""The project's Dagster instance home (DAGSTER_HOME, `.dagster/` by default), its settings, and the
repair of runs a killed process left STARTED."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from resources.processes import hostname, process_alive
from resources.project import PROJECT_ROOT

if TYPE_CHECKING:
    import dagster as dg

# Written once into a new DAGSTER_HOME; edit the file afterwards to change storage (e.g. PostgreSQL).
# One run at a time: every run writes the same data/ and models/ paths, so queued runs (the schedule,
# the sensor, the UI) must not overlap. Run monitoring (the daemon, `make ui`) fails a run whose worker
# never started or never finished cancelling, so neither can hold the one slot forever; runs left
# STARTED by a killed process are failed by fail_orphaned_runs. No max_runtime: training a real model
# legitimately takes hours (give a run the `dagster/max_runtime` tag to bound it).
DEFAULT_SETTINGS = """\
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 1
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  cancel_timeout_seconds: 300
  poll_interval_seconds: 60
"""
# How Dagster's engine events name the process executing a run (dagster/_core/executor/in_process.py,
# dagster/_cli/api.py).
RUN_PROCESS_MESSAGES = ("Executing steps in process", "Started process for run")
# Earlier versions of DEFAULT_SETTINGS: a file that still holds one exactly was never edited by hand, so
# it is brought up to date (run monitoring on) rather than left as it was.
PREVIOUS_SETTINGS = (
    """\
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 1
""",
)
# Tag on runs started by this project's CLI: the host whose process ids the run's events refer to.
HOST_TAG = "pipeline/host"


def ensure_dagster_home() -> Path:
    """Set DAGSTER_HOME to the project's `.dagster/` unless already set, and give a new one settings (or
    bring ones this project wrote earlier, unedited, up to date)."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster")))
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists() or settings.read_text(encoding="utf-8") in PREVIOUS_SETTINGS:
        settings.write_text(DEFAULT_SETTINGS, encoding="utf-8")
    return home


def run_process(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid of the process that executes ``run_id``'s steps and when it said so (epoch seconds),
    from the run's engine events: Dagster's in-process executor logs "Executing steps in process
    (pid: N)", a launched run worker "Started process for run (pid: N)". None before either."""
    import dagster as dg

    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, ascending=False, limit=200
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        metadata = getattr(event.event_specific_data, "metadata", None) or {}
        pid = metadata.get("pid")
        # Only the process that runs the whole run: a multiprocess executor also logs the pids of its
        # step subprocesses, which end normally while the run goes on.
        if pid is not None and (event.message or "").startswith(RUN_PROCESS_MESSAGES):
            return int(getattr(pid, "value", pid)), record.event_log_entry.timestamp
    return None


def fail_orphaned_runs(instance: dg.DagsterInstance, *, by: str) -> list[str]:
    """Mark failed every STARTED run whose process is gone (killed, crashed, machine restarted), so it
    stops holding the one run slot; ``by`` says who noticed (for the message). Returns their run ids.

    Only runs of this host are judged (the CLI tags its runs with the host; runs without the tag are
    taken as local, as with the project's default local instance). A run whose process id is now held
    by a newer process counts as gone.
    """
    import dagster as dg

    here = hostname()
    failed = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        if run.tags.get(HOST_TAG, here) != here:
            continue
        process = run_process(instance, run.run_id)
        if process is None:
            continue  # not executing steps yet; run monitoring's start timeout covers a stuck start
        pid, since = process
        if process_alive(pid, started_by=since):
            continue
        instance.report_run_failed(
            run,
            message=(
                f"Run failed by {by}: its process (pid {pid} on {here}) is no longer running (killed or "
                "crashed), so the run could not finish. Outputs it was writing are rolled back to their "
                "last good version when the next run starts; materialize again to redo its steps."
            ),
        )
        failed.append(run.run_id)
    return failed


if __name__ == "__main__":
    print(ensure_dagster_home())


class RunInProgress(RuntimeError):
    """Another run of this project is executing now (its process is alive)."""


def command_line_instance(by: str = "the command line before a new run") -> dg.DagsterInstance:
    """The persistent instance for a command-line run (DAGSTER_HOME set up first), with the runs a
    killed process left STARTED failed and named on stderr, so a new run never queues behind them.

    Raises RunInProgress when a run is executing now: a command-line run does not go through the run
    queue (``max_concurrent_runs: 1``), and two runs writing the same data/ and models/ paths would
    train, register and export each other's outputs.
    """
    import sys

    import dagster as dg

    ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    for run_id in fail_orphaned_runs(instance, by=by):
        print(f"run {run_id} was left STARTED by a process that is gone; marked it failed", file=sys.stderr)
    running = instance.get_run_records(
        dg.RunsFilter(
            statuses=[
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
                dg.DagsterRunStatus.CANCELING,
            ]
        )
    )
    if running:
        run = running[0].dagster_run
        raise RunInProgress(
            f"run {run.run_id} ({run.job_name}) is running now; this project runs one at a time: wait for "
            "it to finish, or cancel it in the Dagster UI (make ui), then run again."
        )
    return instance


def command_line_run() -> tuple[dg.DagsterInstance, dg.Definitions] | None:
    """The instance (:func:`command_line_instance`) and the project's definitions for a command-line
    run; None, after saying why on stderr, when another run is executing or params.yaml cannot be
    read (the definitions read it when they load)."""
    import sys

    from assets.params import ParamsError

    try:
        instance = command_line_instance()
    except RunInProgress as exc:
        print(f"error: nothing was run. {exc}", file=sys.stderr)
        return None
    try:
        from pipelines.definitions import defs
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    return instance, defs
