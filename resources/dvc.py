"""DVC: records each materialized output in dvc.lock and the DVC cache."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from resources.project import PROJECT_ROOT


class DvcError(RuntimeError):
    """DVC could not record an output."""


class DvcResource(dg.ConfigurableResource):
    """After an asset writes its output, ``record`` commits the producing dvc.yaml stage, so dvc.lock
    holds the md5 of every dataset and model and ``dvc status`` agrees with Dagster about what is stale.

    Under ``dvc repro`` (DVC sets DVC_STAGE for the stage command) DVC records the outputs itself and
    holds the repository lock, so ``record`` does nothing there.
    """

    root: str = str(PROJECT_ROOT)
    enabled: bool = True

    def record(self, stage: str) -> bool:
        """Commit ``stage``; returns False when recording is left to someone else."""
        if not self.enabled or os.environ.get("DVC_STAGE"):
            return False
        from dvc.exceptions import DvcException
        from dvc.repo import Repo
        from filelock import FileLock

        root = Path(self.root)
        if not (root / ".dvc").is_dir():
            raise DvcError(
                f"{root} is not a DVC repository (.dvc/ is missing): restore it with `git checkout -- .dvc` "
                "or run `dvc init` there."
            )
        # One commit at a time per project, even with several Dagster processes.
        (root / ".dvc" / "tmp").mkdir(exist_ok=True)
        with FileLock(str(root / ".dvc" / "tmp" / "dagster-commit.lock"), timeout=600):
            try:
                with Repo(str(root)) as repo:
                    repo.commit(f"dvc.yaml:{stage}", force=True)
            except DvcException as exc:
                raise DvcError(f"dvc commit of stage '{stage}' in {root} failed: {exc}") from exc
        return True
