"""Materialize one dvc.yaml stage, or the whole graph, through Dagster from the command line.

    python -m pipelines.materialize clean      # what `dvc repro` runs for stage `clean`
    python -m pipelines.materialize --all      # what `make demo` runs

Runs land in the persistent Dagster instance (DAGSTER_HOME, `.dagster/` in the project by default), so
they show in the UI with their metadata and lineage like runs launched there.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from assets.stages import stage
from pipelines.instance import HOST_TAG, command_line_run
from resources.processes import hostname


def stage_keys(name: str) -> list[str]:
    try:
        return list(stage(name).keys)
    except KeyError as exc:
        raise SystemExit(exc.args[0]) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("stage", nargs="?", help="a dvc.yaml stage name")
    target.add_argument("--all", action="store_true", help="every asset and check, in order")
    args = parser.parse_args(argv)

    from assets.params import ParamsError
    from assets.preflight import preflight
    from assets.shared.errors import InputError

    # Every setting the run will use is checked first: a bad train.method fails here in a second, not
    # at adapter after every data stage has run.
    try:
        preflight(None if args.all else [args.stage])
    except (ParamsError, InputError) as exc:
        print(f"error: nothing was run. {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:
        raise SystemExit(exc.args[0]) from None

    # A run a killed process left STARTED would hold the one run slot forever (and its half-done
    # writes are rolled back as this run starts, by the storage resource).
    opened = command_line_run()
    if opened is None:
        return 2
    instance, defs = opened
    import dagster as dg

    from pipelines.automation import FULL_JOB

    tags = {HOST_TAG: hostname()}
    # Step-level progress is enough on a terminal; the UI keeps the full debug log of every run.
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    if args.all:
        job = defs.resolve_job_def(FULL_JOB)
        result = job.execute_in_process(
            instance=instance, run_config=run_config, tags=tags, raise_on_error=False
        )
    else:
        job = defs.resolve_implicit_global_asset_job_def()
        selection = [dg.AssetKey(key) for key in stage_keys(args.stage)]
        result = job.execute_in_process(
            instance=instance,
            run_config=run_config,
            asset_selection=selection,
            tags=tags,
            raise_on_error=False,
        )
    if result.success:
        print(f"run {result.run_id} succeeded; DAGSTER_HOME={os.environ['DAGSTER_HOME']}")
        return 0
    report_failure(result)
    return 1


def report_failure(result: Any) -> None:
    """Say on stderr which steps failed and, for failed checks, why (their metadata explains)."""
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and not event.event_specific_data.passed:
            evaluation = event.event_specific_data
            details = {
                label: getattr(value, "md_str", None) or getattr(value, "value", value)
                for label, value in evaluation.metadata.items()
                if label in ("reasons", "problems", "details")
            }
            print(
                f"check {evaluation.check_name} on {evaluation.asset_key.to_user_string()} failed:",
                file=sys.stderr,
            )
            for text in details.values():
                print(f"{text}", file=sys.stderr)
        elif event.is_failure and event.step_key:
            # A Failure's description is the message for the user; other errors keep Dagster's text.
            data = getattr(event, "event_specific_data", None)
            failure = getattr(data, "user_failure_data", None)
            message = failure.description if failure is not None and failure.description else event.message
            print(f"step {event.step_key} failed: {message}", file=sys.stderr)
    print(
        f"run {result.run_id} failed; open the run in the Dagster UI (make ui) for details.", file=sys.stderr
    )


if __name__ == "__main__":
    sys.exit(main())
