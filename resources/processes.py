"""Is the process that started some work still running? And a crash-test hook.

Used to tell the leftovers of a killed run (a Dagster run left STARTED, a half-committed write, a
scratch directory) from the work of a run that is still going. Plain Python: no dagster.

A pid alone is not enough: pids are reused. A process counts as the owner only if it is running *and*
started no later than the moment the work was recorded (its start time comes from /proc on Linux;
elsewhere only the pid is checked).
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

# Crash tests (tests/test_faults_*.py) set this to a point name; the process kills itself with SIGKILL
# when it reaches that point, exactly as `kill -9` from outside would at that moment.
FAILPOINT_ENV = "PIPELINE_FAILPOINT"
# Start times from /proc are in clock ticks (1/100 s); allow for that and for clock rounding.
_START_SLACK_S = 1.0


def hostname() -> str:
    return socket.gethostname()


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started, in seconds since the epoch; None when no such process runs (a
    zombie counts as gone) or the start time cannot be read (not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
    except (OSError, StopIteration, ValueError):
        return None
    # Fields after the command name (which may hold spaces and parentheses): state is field 3,
    # starttime field 22 (proc(5)).
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def process_alive(pid: int, *, started_by: float | None = None) -> bool:
    """True when process ``pid`` runs on this host and, if ``started_by`` (epoch seconds) is given,
    started no later than that: a process that started afterwards only reuses the pid."""
    if pid <= 0:
        return False
    if Path("/proc/self/stat").exists():
        start = process_start_time(pid)
        if start is None:
            return False
        return started_by is None or start <= started_by + _START_SLACK_S
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def owner_token() -> str:
    """``<pid>-<start time>`` of this process, for names of files it alone writes (temporary files,
    scratch directories), so a later run can tell whether their writer is gone."""
    start = process_start_time(os.getpid())
    return f"{os.getpid()}-{int(start) if start is not None else 0}"


def owner_alive(token: str) -> bool:
    """Whether the process an :func:`owner_token` names still runs (a malformed token counts as gone)."""
    try:
        pid_text, start_text = token.split("-", 1)
        pid, start = int(pid_text), int(start_text)
    except ValueError:
        return False
    return process_alive(pid, started_by=start + 1 if start else None)


def failpoint(name: str) -> None:
    """Crash here when PIPELINE_FAILPOINT names this point (crash tests only; a no-op otherwise)."""
    if os.environ.get(FAILPOINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
