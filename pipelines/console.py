"""The console logger of command-line runs (pipelines/materialize.py and tune.py name it in their run
config; the definitions register it as ``console``): Dagster's colored console logger, without the
stack trace of a user error.

A step that fails with ``dagster.Failure`` (what ``assets.publishing.user_errors`` raises for a problem
the user fixes: a bad file, a setting, a refused input) already says what happened and what to do; the
frames of Dagster's executor below it only push that message off the screen, twice (the step's failure
and the run's). The trace stays in the run's event log, which the UI shows in full. Any other error
keeps its trace on the console too: that one is ours to debug.
"""

from __future__ import annotations

import logging

import dagster as dg

# How Dagster's event messages spell a Failure and where the trace it appends starts
# (dagster/_utils/error.py, SerializableErrorInfo.to_string).
_USER_FAILURE = "dagster._core.definitions.events.Failure: "
_TRACE = "\n\nStack Trace:\n"


def trim_user_failure_trace(record: logging.LogRecord) -> bool:
    """A logging filter: cut the stack trace from a message that reports a ``dagster.Failure``."""
    message = record.getMessage()
    if _USER_FAILURE in message and _TRACE in message:
        head, _, rest = message.partition(_TRACE)
        # The run's failure message may carry more after the trace (other steps' errors): keep those.
        tail = rest.split("\n\n", 1)[1] if "\n\n" in rest else ""
        record.msg, record.args = (head + ("\n\n" + tail if tail else "")), None
    return True


@dg.logger(
    dg.colored_console_logger.config_schema,
    description="Dagster's colored console logger, without stack traces of user errors (dagster.Failure).",
)
def console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    """Dagster's ``colored_console_logger`` (same config: ``log_level``, ``name``) with
    :func:`trim_user_failure_trace` on its handlers."""
    logger = dg.colored_console_logger.logger_fn(init_context)
    for handler in logger.handlers:
        handler.addFilter(trim_user_failure_trace)
    return logger
