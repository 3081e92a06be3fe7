"""The console logger (pipelines/console.py): a user error's message without Dagster's stack trace,
any other error with it."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import pytest

from pipelines.console import console_logger, trim_user_failure_trace

TRACE = '\n\nStack Trace:\n  File "x.py", line 1, in f\n    raise fail(str(exc)) from None\n'


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("dagster", logging.ERROR, __file__, 1, message, None, None)


def test_a_user_failure_loses_its_trace_and_keeps_what_follows() -> None:
    message = "STEP_FAILURE\n\ndagster._core.definitions.events.Failure: data.raw_path is empty" + TRACE
    record = _record(message + "\nanother step's error")
    assert trim_user_failure_trace(record) is True
    assert record.getMessage() == (
        "STEP_FAILURE\n\ndagster._core.definitions.events.Failure: data.raw_path is empty\n\n"
        "another step's error"
    )


def test_any_other_error_keeps_its_trace() -> None:
    message = "STEP_FAILURE\n\nZeroDivisionError: division by zero" + TRACE
    record = _record(message)
    trim_user_failure_trace(record)
    assert record.getMessage() == message


def test_a_run_prints_the_failure_once_without_frames(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    @dg.op
    def refuse(context) -> None:  # no annotation: this module postpones them
        raise dg.Failure(description="train.method 'qloraa' is not a method: choose qlora")

    @dg.job(logger_defs={"console": console_logger}, executor_def=dg.in_process_executor)
    def failing():
        refuse()

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        # As pipelines/materialize.py runs it: the run config names the console logger.
        run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
        result = failing.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)
    assert not result.success
    err = capsys.readouterr().err
    assert "train.method 'qloraa' is not a method" in err
    assert "Stack Trace" not in err and 'File "' not in err
