"""The project's artifact storage as a Dagster resource: data/ and models/ under one root."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from resources.artifacts import Artifact, ArtifactStore
from resources.processes import owner_alive, owner_token
from resources.project import PROJECT_ROOT

# Each run process keeps its temporary files (training checkpoints, downloaded champions) in its own
# folder here, named by its pid and start time, so the next run can remove what a killed one left.
SCRATCH_DIR = ".cache/scratch"


class StorageResource(dg.ConfigurableResource):
    """Where assets write their outputs; the IO manager reads them from the same place.

    At the start of every run it repairs what killed runs left (see :meth:`ArtifactStore.recover` and
    :func:`sweep_scratch`) and points Python's temporary directory at this run's scratch folder, which
    it removes at the end.
    """

    root: str = str(PROJECT_ROOT)
    _active: bool = PrivateAttr(default=False)

    def store(self, artifacts: Mapping[str, Artifact]) -> ArtifactStore:
        """The store of this root for ``artifacts`` (the pipeline's table: assets/stages.py)."""
        return ArtifactStore(Path(self.root), artifacts)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        from assets.stages import ARTIFACTS

        done = [*self.store(ARTIFACTS).recover(), *sweep_scratch(Path(self.root))]
        for line in done:
            context.log.warning(f"Left by a killed run: {line}")
        _enter_scratch(Path(self.root) / SCRATCH_DIR / owner_token())
        self._active = True

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._active:
            self._active = False
            _leave_scratch()


# The resource may be set up more than once in a process (on its own and inside the IO manager):
# the first setup switches the temporary directory, the last teardown switches it back.
_scratch_users: list[tuple[str | None, Path]] = []


def _enter_scratch(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _scratch_users.append((tempfile.tempdir, folder))
    tempfile.tempdir = str(folder)


def _leave_scratch() -> None:
    previous, folder = _scratch_users.pop()
    tempfile.tempdir = previous
    if not any(other == folder for _, other in _scratch_users):
        shutil.rmtree(folder, ignore_errors=True)


def sweep_scratch(root: Path) -> list[str]:
    """Remove the scratch folders of run processes that are gone; returns what was removed."""
    scratch = root / SCRATCH_DIR
    removed = []
    if scratch.is_dir():
        for folder in sorted(scratch.iterdir()):
            if not owner_alive(folder.name) and folder.name != owner_token():
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(f"removed {folder}")
    return removed
