"""Lineage tags: what a registered adapter was made from, readable months later."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from assets.shared.errors import InputError

# Artifacts whose DVC md5 is stamped on every registered version: the data it was trained and
# evaluated on, the raw file behind it, the base model and the adapter bytes themselves.
LINEAGE_ARTIFACTS = (
    "raw_examples",
    "clean_examples",
    "augmented_examples",
    "train_split",
    "validation_split",
    "test_split",
    "base_model",
    "adapter",
)


def git_commit(root: Path) -> str:
    """HEAD's commit, with '+dirty' when the work tree has uncommitted changes; 'unknown' outside git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def raw_sources(raw_examples_path: Path) -> str:
    """The input file(s) raw_examples was read from, as configured (its ``source_file`` column)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    column = pq.read_table(raw_examples_path, columns=["source_file"]).column("source_file")
    return ", ".join(sorted(str(v) for v in pc.unique(column).to_pylist() if v is not None)) or "none"


def lineage_tags(
    md5s: dict[str, str], *, params_hash: str, git_commit: str, run_id: str, base_model: str, raw_path: str
) -> dict[str, str]:
    """Registry tags for one candidate. ``md5s`` maps artifact key -> DVC md5; the other values are
    what the upstream stages recorded they did, never params.yaml as it is now."""
    tags = {f"{key}_md5": md5s[key] for key in LINEAGE_ARTIFACTS}
    tags.update(
        params_hash=params_hash,
        git_commit=git_commit,
        dagster_run_id=run_id,
        base_model=base_model,
        raw_path=raw_path,
    )
    return tags


# dvc.lock stages whose entries describe a version's inputs: raw, clean, augmented and split data, the
# base model and the adapter (the stage names of dvc.yaml).
LINEAGE_STAGES = ("raw_examples", "clean", "augmented_examples", "split", "base_model", "adapter")


def dvc_lock_snapshot(root: Path, md5s: dict[str, str], paths: dict[str, str]) -> dict[str, Any]:
    """The dvc.lock entries of a version's input stages, as they are now, plus a list of the outputs
    whose recorded md5 differs from the bytes the version was made from (``md5s``: artifact key -> md5;
    ``paths``: artifact key -> path in the project). An output that differs was not recorded in DVC
    (a launchpad override, or no DVC): its bytes are then only in the registry's tags, not in the cache."""
    import yaml

    lock_path = root / "dvc.lock"
    stages = yaml.safe_load(lock_path.read_text())["stages"] if lock_path.exists() else {}
    entries = {name: stages[name] for name in LINEAGE_STAGES if name in stages}
    recorded = {out["path"]: out.get("md5") for entry in entries.values() for out in entry.get("outs", [])}
    unrecorded = sorted(key for key, md5 in md5s.items() if recorded.get(paths[key]) != md5)
    return {
        "dvc_lock": entries,
        "outputs": {key: {"path": paths[key], "md5": md5s[key]} for key in md5s},
        "not_in_dvc_lock": unrecorded,
    }


def restore_files(root: Path, wanted: dict[str, str], to_dir: Path) -> dict[str, Path]:
    """Copy files by their DVC md5 from the project's DVC cache, or from its default remote when the
    cache lacks them, to ``to_dir`` (``wanted``: relative path -> md5), checking each copy's md5. Git and
    the workspace are not touched. Returns relative path -> restored file. Raises InputError naming the
    file and md5 that neither the cache nor the remote holds."""
    import shutil

    from dvc.repo import Repo

    from resources.artifacts import dvc_md5

    restored: dict[str, Path] = {}
    with Repo(str(root)) as repo:
        for relative, md5 in sorted(wanted.items()):
            target = to_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            cached = Path(repo.cache.local.oid_to_path(md5))
            if cached.exists():
                shutil.copyfile(cached, target)
            else:
                try:
                    remote = repo.cloud.get_remote_odb()
                    remote.fs.get_file(remote.oid_to_path(md5), str(target))
                except Exception as exc:  # no remote configured, or it lacks the object
                    raise InputError(
                        f"{relative} (md5 {md5}) is neither in the DVC cache ({cached}) nor in the default "
                        f"remote ({exc}): `dvc push` from the machine that made it, then `dvc pull`."
                    ) from None
            if dvc_md5(target) != md5:
                target.unlink()
                raise InputError(
                    f"{relative}: the copy from DVC does not have md5 {md5}; the cache is corrupt."
                )
            restored[relative] = target
    return restored
