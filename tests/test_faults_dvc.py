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


def test_a_stage_hands_dvc_the_md5s_of_the_inputs_it_read(tmp_path: Path) -> None:
    """Each step's loaded inputs carry the path and md5 of the bytes read (the UI shows them), and the
    stage records exactly those in DVC, even when an input is replaced before the stage ends."""
    import dagster as dg

    from assets.publishing import Stopwatch, artifact_store, record_stage, stage_config
    from assets.shared.schema import example_features, to_dataset
    from assets.stages import ARTIFACTS
    from pipelines.io_manager import ArtifactIOManager
    from resources.artifacts import READ_MD5, ArtifactStore, dvc_md5
    from resources.storage import StorageResource
    from tests.test_failures import example_rows

    class RecordingDvc(DvcResource):
        def record(self, stage, read=None, params=None):  # DVC itself is not under test here
            calls.append((stage, dict(read or {})))
            return True

    calls: list[tuple[str, dict[str, str]]] = []
    store = ArtifactStore(tmp_path, ARTIFACTS)
    store.write_dataset("clean_examples", to_dataset(example_rows(4), example_features()))
    read_md5 = store.md5("clean_examples")
    augment_config = stage_config("augmented_examples")

    @dg.asset(name="augmented_examples", required_resource_keys={"storage", "dvc"})
    def copy_of_clean(context, clean_examples):  # no annotations: this module postpones them
        config = augment_config()  # params.yaml's values, so the stage is recorded
        storage = context.resources.storage
        # Another process replaces the input after this step read it.
        store.write_dataset("clean_examples", to_dataset(example_rows(5), example_features()))
        artifact_store(storage).write_dataset("augmented_examples", clean_examples)
        metadata = {"augmented_examples": {"dagster/row_count": len(clean_examples)}}
        yield from record_stage(context, config, storage, context.resources.dvc, metadata, Stopwatch())

    @dg.asset(name="clean_examples")
    def upstream() -> None:
        raise AssertionError("read from its file, not run")

    storage = StorageResource(root=str(tmp_path))
    result = dg.materialize(
        [copy_of_clean, upstream],
        selection=["augmented_examples"],
        resources={
            "storage": storage,
            "io_manager": ArtifactIOManager(storage=storage),
            "dvc": RecordingDvc(root=str(tmp_path)),
        },
    )
    assert result.success
    loaded = [e for e in result.all_events if e.event_type_value == "LOADED_INPUT"]
    assert loaded[0].event_specific_data.metadata[READ_MD5].value == read_md5
    assert calls == [("augmented_examples", {str(store.path("clean_examples")): read_md5})]
    assert dvc_md5(store.path("clean_examples")) != read_md5
