"""Outputs survive a kill at every write step: readers see the last good version or the new complete
one, never a half-written output, a mismatched pair of one stage's outputs, or an absent directory.

Each case runs a real writer process that kills itself with SIGKILL at one named point
(resources/processes.py failpoint), then reads back in this process as the next run would.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from assets.stages import ARTIFACTS
from resources import artifacts
from resources.artifacts import ArtifactStore, WriteInProgressError
from resources.processes import FAILPOINT_ENV, owner_token
from resources.project import PROJECT_ROOT

WRITER = textwrap.dedent(
    """
    import datetime as dt, sys
    from pathlib import Path
    from assets.stages import ARTIFACTS
    from resources import artifacts

    root, what, version, exchange = sys.argv[1:]
    if exchange == "no":
        artifacts._exchange = lambda a, b: False  # a system without renameat2
    store = artifacts.ArtifactStore(Path(root), ARTIFACTS)

    def rows(n):
        from assets.shared.schema import example_features, to_dataset

        return to_dataset(
            [
                {
                    "id": f"{version}{i}",
                    "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                    "created_at": dt.datetime(2025, 1, 1 + i, tzinfo=dt.timezone.utc),
                }
                for i in range(n)
            ],
            example_features(),
        )

    if what == "datasets":
        clean, rejected = (3, 1) if version == "old" else (5, 2)
        store.write_datasets({"clean_examples": rows(clean), "rejected_examples": rows(rejected)})
    else:
        with artifacts.atomic_directory(store.path("merged_model")) as staging:
            (staging / "weights.bin").write_text(version)
    """
)
PAIR_FAILPOINTS = [
    "datasets:staged-one",
    "datasets:backed-up",
    "datasets:journal-written",
    "datasets:renamed-1",
    "datasets:renamed-2",
]


def write(root: Path, what: str, version: str, *, kill_at: str = "", exchange: bool = True) -> int:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), FAILPOINT_ENV: kill_at}
    args = [sys.executable, "-c", WRITER, str(root), what, version, "yes" if exchange else "no"]
    return subprocess.run(args, env=env, capture_output=True, timeout=300).returncode


def write_here(root: Path, version: str) -> None:
    """The same write as the writer process, without a process of its own (no kill needed)."""
    clean, rejected = (3, 1) if version == "old" else (5, 2)
    ArtifactStore(root, ARTIFACTS).write_datasets(
        {"clean_examples": _dataset(clean), "rejected_examples": _dataset(rejected)}
    )


def pair(store: ArtifactStore) -> tuple[int, int]:
    return len(store.read_dataset("clean_examples")), len(store.read_dataset("rejected_examples"))


def hidden(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob(".*") if p.parent.name in ("data", "models"))


@pytest.mark.parametrize("point", PAIR_FAILPOINTS)
def test_a_kill_before_the_commit_leaves_the_previous_pair(tmp_path: Path, point: str) -> None:
    write_here(tmp_path, "old")
    assert write(tmp_path, "datasets", "new", kill_at=point) == -signal.SIGKILL
    store = ArtifactStore(tmp_path, ARTIFACTS)
    assert pair(store) == (3, 1)  # both old, never new clean with old rejected
    store.recover()
    assert hidden(tmp_path) == []
    write_here(tmp_path, "new")
    assert pair(store) == (5, 2)


def test_a_kill_after_the_commit_leaves_the_new_pair_and_the_next_run_tidies(tmp_path: Path) -> None:
    write_here(tmp_path, "old")
    assert write(tmp_path, "datasets", "new", kill_at="datasets:committed") == -signal.SIGKILL
    store = ArtifactStore(tmp_path, ARTIFACTS)
    assert pair(store) == (5, 2)
    assert hidden(tmp_path), "the killed writer left its backups"
    assert store.recover()
    assert hidden(tmp_path) == []


def test_a_first_write_killed_midway_leaves_nothing_half_there(tmp_path: Path) -> None:
    assert write(tmp_path, "datasets", "new", kill_at="datasets:renamed-1") == -signal.SIGKILL
    store = ArtifactStore(tmp_path, ARTIFACTS)
    with pytest.raises(artifacts.MissingArtifactError):
        store.require("rejected_examples")
    assert not store.path("clean_examples").exists()


def test_readers_wait_for_a_live_writer(tmp_path: Path) -> None:
    """A journal whose writer still runs is a commit in progress: a reader refuses, naming the stage,
    and nothing is rolled back under the writer's feet."""
    write_here(tmp_path, "old")
    store = ArtifactStore(tmp_path, ARTIFACTS)
    store._journal("clean").write_text(f'{{"writer": "{owner_token()}", "files": []}}')
    with pytest.raises(WriteInProgressError, match="Stage 'clean' is writing its outputs"):
        store.read_dataset("rejected_examples")
    assert store.recover() == []
    assert store._journal("clean").exists()


@pytest.mark.parametrize(
    ("point", "exchange", "seen"),
    [
        ("directory:staged", True, "old"),
        ("directory:exchanged", True, "new"),
        ("directory:staged", False, "old"),
        ("directory:moved-aside", False, "old"),
    ],
)
def test_a_killed_directory_swap_never_leaves_the_path_empty(
    tmp_path: Path, point: str, exchange: bool, seen: str
) -> None:
    assert write(tmp_path, "directory", "old") == 0
    assert write(tmp_path, "directory", "new", kill_at=point, exchange=exchange) == -signal.SIGKILL
    target = tmp_path / "models" / "merged_model"
    if exchange:
        assert target.is_dir(), "an atomic exchange never leaves the path absent"
    store = ArtifactStore(tmp_path, ARTIFACTS)
    assert (store.require("merged_model") / "weights.bin").read_text() == seen
    store.recover()
    assert hidden(tmp_path) == []
    assert write(tmp_path, "directory", "new", exchange=exchange) == 0
    assert (target / "weights.bin").read_text() == "new"


def test_outputs_get_the_users_umask(tmp_path: Path) -> None:
    """Temporary files are created private (0600); what is committed must be readable as the user's
    umask says, like any file they write."""
    previous = os.umask(0o002)
    try:
        store = ArtifactStore(tmp_path, ARTIFACTS)
        store.write_json("evaluation_report", {"a": 1})
        with artifacts.atomic_directory(store.path("adapter")) as staging:
            (staging / "adapter_model.safetensors").write_bytes(b"w")
            os.chmod(staging / "adapter_model.safetensors", 0o600)  # as a tempfile-based writer leaves it
            (staging / "sub").mkdir(mode=0o700)
        with artifacts.atomic_directory(store.path("adapter")) as staging:  # the exchange path
            (staging / "adapter_model.safetensors").write_bytes(b"w2")
    finally:
        os.umask(previous)
    assert store.path("evaluation_report").stat().st_mode & 0o777 == 0o664
    assert store.path("adapter").stat().st_mode & 0o777 == 0o775
    assert (store.path("adapter") / "adapter_model.safetensors").stat().st_mode & 0o777 == 0o664
    previous = os.umask(0o022)
    try:
        store.write_datasets({"train_split": _dataset(), "test_split": _dataset()})
    finally:
        os.umask(previous)
    assert store.path("train_split").stat().st_mode & 0o777 == 0o644  # this process's umask: 022


def _dataset(n: int = 1):
    from assets.shared.schema import example_features, to_dataset

    rows = [
        {
            "id": f"r{i}",
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            "created_at": dt.datetime(2025, 1, 1 + i, tzinfo=dt.UTC),
        }
        for i in range(n)
    ]
    return to_dataset(rows, example_features())


def test_each_run_has_its_own_scratch_and_a_killed_runs_is_removed(tmp_path: Path) -> None:
    """Training checkpoints and downloaded champions (tempfile users) land in the run's scratch folder;
    the next run removes folders of processes that are gone, and the run removes its own at the end."""
    import tempfile

    import dagster as dg

    from resources.storage import SCRATCH_DIR, StorageResource

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / SCRATCH_DIR / f"{dead.pid}-1" / "train-scratch-abc"
    left.mkdir(parents=True)
    seen = {}

    @dg.asset(required_resource_keys={"storage"})
    def scratch_user() -> None:
        seen["tempdir"] = tempfile.gettempdir()

    before = tempfile.gettempdir()
    result = dg.materialize([scratch_user], resources={"storage": StorageResource(root=str(tmp_path))})
    assert result.success
    assert seen["tempdir"] == str(tmp_path / SCRATCH_DIR / owner_token())
    assert not left.parent.exists()
    assert tempfile.gettempdir() == before
    assert list((tmp_path / SCRATCH_DIR).iterdir()) == []


def test_weights_saved_by_transformers_get_the_users_umask(tmp_path: Path) -> None:
    """transformers writes model.safetensors with mode 0600 whatever the umask; the directory swap
    gives it the umask's mode like every other file of the model."""
    from resources.model_loading import prepare_base_model

    previous = os.umask(0o002)
    try:
        prepare_base_model("embedded", tmp_path / "base_model", seed=0)
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "base_model").iterdir()}
    assert modes["model.safetensors"] == 0o664
    assert set(modes.values()) == {0o664}
