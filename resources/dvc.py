"""DVC: records each materialized output in dvc.lock and the DVC cache."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    # How long to wait for the repository lock that another DVC process (a `dvc status` in a terminal,
    # `dvc push`) holds, before failing; DVC itself gives up after 3 s.
    lock_timeout_s: float = 120.0

    def record(
        self,
        stage: str,
        read: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> bool:
        """Commit ``stage``; returns False when recording is left to someone else.

        ``read`` maps dependency paths (as the stage resolved them) to the DVC md5 of the bytes the stage
        actually read. DVC hashes dependencies when it commits, after the run; a file that changed in
        between would be recorded as if the stage had read it, and `dvc status` would call the stage up
        to date. Such a dependency keeps the md5 that was read in dvc.lock instead, so DVC sees the
        stage as changed and `dvc repro` runs it again.

        ``params`` (``section.key`` -> value) are the settings the stage ran with; DVC reads params.yaml
        when it commits, so a value edited while the stage ran would be recorded as if used. dvc.lock
        keeps the values given here instead, and `dvc status` shows the edited ones as changed."""
        if not self.enabled or os.environ.get("DVC_STAGE"):
            return False
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
            self._commit(root, stage)
            changed = _pin_reads(root, stage, read or {})
            edited = _pin_params(root, stage, params or {})
        if edited:
            import dagster as dg

            dg.get_dagster_logger().warning(
                f"params.yaml changed while stage '{stage}' ran ({', '.join(edited)}): dvc.lock keeps the "
                "values it ran with, so `dvc status` shows the stage as changed; materialize it again to "
                "use the new values."
            )
        if changed:
            import dagster as dg

            dg.get_dagster_logger().warning(
                f"{', '.join(changed)} changed after stage '{stage}' read it: dvc.lock keeps the md5 that "
                "was read, so `dvc status` shows the stage as changed; materialize it again to use the new "
                "content."
            )
        return True

    def _commit(self, root: Path, stage: str) -> None:
        """``dvc commit`` of ``stage``, retried with backoff while another DVC process holds the
        repository lock (a transient fault), for up to ``lock_timeout_s``."""
        from dvc.exceptions import DvcException
        from dvc.lock import LockError
        from dvc.repo import Repo

        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.5
        while True:
            try:
                # DVC resolves targets and dependencies against the working directory.
                with contextlib.chdir(root), Repo(str(root)) as repo:
                    repo.commit(f"dvc.yaml:{stage}", force=True)
                return
            except LockError:
                if time.monotonic() + delay > deadline:
                    raise DvcError(
                        f"dvc commit of stage '{stage}' waited {self.lock_timeout_s:.0f} s for the DVC "
                        f"repository lock ({root / '.dvc' / 'tmp' / 'lock'}), which another DVC process "
                        "holds: let it finish (or stop it), then materialize again."
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
            except DvcException as exc:
                raise DvcError(f"dvc commit of stage '{stage}' in {root} failed: {exc}") from exc


def _pin_reads(root: Path, stage: str, read: Mapping[str, str]) -> list[str]:
    """Put the md5s in ``read`` into ``stage``'s deps in dvc.lock where DVC recorded other ones; returns
    the paths it changed."""
    if not read:
        return []
    from dvc.utils.serialize import modify_yaml

    wanted = {str((root / path).resolve()): md5 for path, md5 in read.items()}
    changed = []
    with modify_yaml(str(root / "dvc.lock")) as lock:
        for dep in lock["stages"][stage].get("deps", []):
            md5 = wanted.get(str((root / dep["path"]).resolve()))
            if md5 is not None and dep.get("md5") != md5:
                dep["md5"] = md5
                dep.pop("size", None)  # the size DVC saw belongs to the other content
                dep.pop("nfiles", None)
                changed.append(dep["path"])
    return changed


def _pin_params(root: Path, stage: str, ran_with: Mapping[str, Any]) -> list[str]:
    """Put the values in ``ran_with`` (``section.key`` -> value) into ``stage``'s params in dvc.lock where
    DVC recorded other ones (a whole section entry, ``train``, or one key, ``train.max_seq_length``);
    returns the ``section.key`` names it changed."""
    if not ran_with:
        return []
    from dvc.utils.serialize import modify_yaml

    changed = []
    with modify_yaml(str(root / "dvc.lock")) as lock:
        for recorded in (lock["stages"][stage].get("params") or {}).values():
            for entry, value in recorded.items():
                if "." not in entry and isinstance(value, dict):  # a whole section: keys are section.key
                    for key in value:
                        name = f"{entry}.{key}"
                        if name in ran_with and value[key] != ran_with[name]:
                            value[key] = ran_with[name]
                            changed.append(name)
                elif entry in ran_with and value != ran_with[entry]:
                    recorded[entry] = ran_with[entry]
                    changed.append(entry)
    return sorted(changed)
