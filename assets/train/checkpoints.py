"""Checkpoints that survive a killed process: where they live, which are complete, and the marker.

transformers' Trainer writes ``checkpoint-<step>/`` (adapter or model weights, optimizer, scheduler,
RNG states, trainer state) into the run's work directory; :func:`completion_callback` then writes
``COMPLETE`` into it, last, after the files are flushed. A checkpoint without the marker was cut short
by a kill and is never loaded. Framework-free.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from assets.params import settings_hash

COMPLETE_MARKER = "COMPLETE"
WORK_DIR = Path(".cache") / "train"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# Settings that change what is reported or how often it is saved, never the weights: a run may resume
# with other values of these.
RESUME_NEUTRAL_SETTINGS = ("log_every_steps", "log_every_seconds", "save_steps")


def run_key(inputs: Mapping[str, str], settings: Mapping[str, Any], base_model_source: str) -> str:
    """The work directory name of a run: a hash of its inputs' md5s, the base and every setting that
    can change the result, so a run resumes only its own checkpoints."""
    decisive = {k: v for k, v in settings.items() if k not in RESUME_NEUTRAL_SETTINGS}
    return settings_hash({"inputs": dict(inputs), "settings": decisive, "base": base_model_source})


def work_dir_for(root: Path, key: str) -> Path:
    """The persistent work directory of one training run under a project ``root`` (git- and
    DVC-ignored); ``key`` fingerprints the run's inputs and settings, so another run never resumes it."""
    return Path(root) / WORK_DIR / key


def _fsync_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def mark_complete(checkpoint: Path) -> None:
    """Flush a checkpoint's files to disk, then write its marker (the order is the point)."""
    _fsync_tree(checkpoint)
    marker = checkpoint / COMPLETE_MARKER
    with marker.open("w", encoding="utf-8") as handle:
        handle.write("complete\n")
        handle.flush()
        os.fsync(handle.fileno())


def checkpoints(work_dir: Path) -> list[tuple[int, Path, bool]]:
    """(step, path, complete) of every checkpoint directory in ``work_dir``, by step."""
    if not Path(work_dir).is_dir():
        return []
    found = []
    for path in Path(work_dir).iterdir():
        match = _CHECKPOINT.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path, (path / COMPLETE_MARKER).is_file()))
    return sorted(found)


def last_complete_checkpoint(work_dir: Path, *, prune: bool = True) -> Path | None:
    """The complete checkpoint with the highest step; with ``prune``, incomplete ones are deleted (they
    are what a kill during a save leaves, and the Trainer's own rotation must not count them). In a
    multi-process run only the main process prunes; the others just skip them."""
    last = None
    for _step, path, complete in checkpoints(work_dir):
        if complete:
            last = path
        elif prune:
            shutil.rmtree(path, ignore_errors=True)
    return last


def completion_callback() -> Any:
    """A transformers ``TrainerCallback`` that marks each checkpoint complete once the Trainer has
    written all of it (``on_save`` runs after the whole checkpoint is saved). In a multi-process run
    every process writes its own RNG state into the checkpoint, so all of them wait at a barrier and
    the main process alone writes the marker."""
    from transformers import TrainerCallback

    from assets.train.distributed import barrier

    class MarkComplete(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            barrier()
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and checkpoint.is_dir():
                mark_complete(checkpoint)

    return MarkComplete()
