"""Lineage tags: what a registered adapter was made from, readable months later."""

from __future__ import annotations

import subprocess
from pathlib import Path

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
