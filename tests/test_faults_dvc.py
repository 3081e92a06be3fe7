"""A DVC repository lock held by another DVC process is a transient fault: recording waits for it
(with backoff, bounded), and past the bound fails with a message that names the lock."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from resources.dvc import DvcError, DvcResource

HOLD_LOCK = """
import sys, time
from dvc.lock import make_lock
lock = make_lock(sys.argv[1], tmp_dir=sys.argv[2])
lock.lock()
print("locked", flush=True)
time.sleep(float(sys.argv[3]))
lock.unlock()
"""


def _repo(root: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True, timeout=120)
    (root / "dvc.yaml").write_text("stages:\n  s:\n    cmd: echo\n    outs:\n    - out.txt\n")
    (root / "out.txt").write_text("x\n")


def _hold(root: Path, seconds: float) -> subprocess.Popen[str]:
    tmp = root / ".dvc" / "tmp"
    tmp.mkdir(exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp / "lock"), str(tmp), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_commit_waits_for_another_dvc_process(tmp_path: Path) -> None:
    _repo(tmp_path)
    holder = _hold(tmp_path, 5)  # longer than DVC's own 3 s of retries
    start = time.monotonic()
    assert DvcResource(root=str(tmp_path), lock_timeout_s=60).record("s")
    assert time.monotonic() - start >= 3
    holder.wait(timeout=30)
    assert "out.txt" in (tmp_path / "dvc.lock").read_text()


def test_a_lock_held_too_long_is_named(tmp_path: Path) -> None:
    _repo(tmp_path)
    holder = _hold(tmp_path, 60)
    try:
        with pytest.raises(DvcError, match=r"waited 4 s for the DVC repository lock .*\.dvc/tmp/lock"):
            DvcResource(root=str(tmp_path), lock_timeout_s=4).record("s")
    finally:
        holder.kill()
        holder.wait()


def test_dvc_lock_records_what_was_read_not_what_is_there_after(tmp_path: Path) -> None:
    """The issue's case: rows appended to the raw file after raw_examples read it were recorded in
    dvc.lock as if ingested, so `dvc status` was clean and `dvc repro` skipped the stage."""
    from resources.artifacts import dvc_md5

    _repo(tmp_path)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: echo\n    deps:\n    - in.txt\n    outs:\n    - out.txt\n"
    )
    (tmp_path / "in.txt").write_text("row 1\n")
    read = {str(tmp_path / "in.txt"): dvc_md5(tmp_path / "in.txt")}
    dvc = DvcResource(root=str(tmp_path))

    assert dvc.record("s", read=read)
    assert _status(tmp_path) == {}  # nothing changed underneath: recorded as usual

    with (tmp_path / "in.txt").open("a") as handle:
        handle.write("row 2, appended while the stage ran\n")
    assert dvc.record("s", read=read)
    assert read[str(tmp_path / "in.txt")] in (tmp_path / "dvc.lock").read_text()
    assert _status(tmp_path) == {"s": [{"changed deps": {"in.txt": "modified"}}]}


def _status(root: Path) -> dict:
    import json

    done = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
