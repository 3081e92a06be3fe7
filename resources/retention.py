"""Retention: what the project keeps of its registry versions, DVC cache and run history, and why.

Nothing is pruned while the pipeline runs: every candidate adapter is stored twice (the DVC cache and
the registry, rejected ones included), every promotion adds a merged model to the DVC cache, and each
Dagster run adds its event log and compute logs. ``python -m pipelines.retention`` plans what the
policy below lets go (a dry run by default) and deletes it with ``--apply``.

This module holds the policy (params.yaml ``retention:``), the choice of registry versions and the
report; ``resources/dvc_cache.py`` holds the DVC cache's part and ``pipelines/retention.py`` the
command and Dagster's run history. Framework-free: no dagster import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from resources.registry import ModelRegistry

# dvc gc's scope flags: which git revisions' dvc.lock files count as in use, besides the registry's kept
# versions (`dvc gc --workspace`, `--all-branches`, `--all-tags`, `--all-commits`).
DvcScope = Literal["workspace", "all_branches", "all_tags", "all_commits"]
# Promotion tags (assets/registry/promotion.py, resources/registry.py) of versions that were champion.
FORMER_CHAMPION_TAGS = ("demoted", "rolled_back")


@dataclass(frozen=True)
class RetentionPolicy:
    """What ``python -m pipelines.retention`` keeps; the fields are params.yaml's ``retention:`` section.

    Always kept, whatever the numbers: the registry's ``champion`` and ``previous`` versions, the
    version a rollback would make ``previous`` next, versions ``pending`` approval, the current
    candidate (models/registered_adapter.json), everything the current dvc.lock names, and unfinished
    Dagster runs plus those holding the latest materialization of an asset.
    """

    # Registry versions never promoted (tag promotion=rejected, or no verdict: a run stopped before its
    # gate) kept besides the protected ones, newest first. 0: every rejected candidate goes.
    keep_rejected_versions: int = 0
    # Former champions (promotion=demoted or rolled_back) kept besides `previous` and the version a
    # rollback would make `previous`, newest first.
    keep_former_champions: int = 1
    # merged_model exports kept in the DVC cache, newest first as Dagster's materialization history
    # remembers them (an export whose run was pruned counts as unknown); the current export is always
    # one of them. Older ones can be rebuilt from the registry.
    keep_merged_models: int = 1
    # Git revisions whose dvc.lock counts as in use, as dvc gc's flags: workspace (only the current
    # dvc.lock), all_branches, all_tags or all_commits.
    dvc_scope: DvcScope = "workspace"
    # Dagster runs that ended more than this many days ago are deleted with their event and compute logs.
    dagster_run_history_days: float = 30.0

    def __post_init__(self) -> None:
        for name in ("keep_rejected_versions", "keep_former_champions", "keep_merged_models"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"setting 'retention.{name}' is {value!r}; it must be a whole number, 0 or more."
                )
        if self.keep_merged_models < 1:
            raise ValueError(
                "setting 'retention.keep_merged_models' is 0; it must be at least 1: the current export "
                "(models/merged_model) is always kept."
            )
        if self.dvc_scope not in ("workspace", "all_branches", "all_tags", "all_commits"):
            raise ValueError(
                f"setting 'retention.dvc_scope' is {self.dvc_scope!r}; it must be one of "
                "['workspace', 'all_branches', 'all_tags', 'all_commits']."
            )
        days = self.dagster_run_history_days
        if isinstance(days, bool) or not isinstance(days, int | float) or days < 0:
            raise ValueError(
                f"setting 'retention.dagster_run_history_days' is {days!r}; it must be a number of days, "
                "0 or more."
            )


@dataclass
class Item:
    """One thing the plan keeps or deletes: a registry version, a DVC cache object, a Dagster run."""

    name: str
    size: int | None  # bytes; None when it cannot be measured here (a tracking server's artifacts)
    reason: str


@dataclass
class Category:
    """A row of the report: what goes and what stays of one kind of stored thing."""

    title: str
    delete: list[Item] = field(default_factory=list)
    keep: list[Item] = field(default_factory=list)

    @property
    def freed(self) -> int:
        return sum(item.size or 0 for item in self.delete)

    @property
    def kept(self) -> int:
        return sum(item.size or 0 for item in self.keep)


def human_size(size: int | None) -> str:
    """Bytes as text with binary prefixes (1 KiB = 1024 bytes): '12.3 MiB'; '?' for None."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (a file's own size; 0 when absent)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            file = Path(dirpath) / name
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def report_table(categories: Iterable[Category], *, applied: bool) -> str:
    """The plan (or what was done) as a text table: per category the count and bytes deleted and kept,
    then the totals."""
    categories = list(categories)
    verb = "deleted" if applied else "would delete"
    header = f"{'category':<44} {verb:>14} {'frees':>11}   {'keeps':>6} {'kept':>11}"
    lines = [header, "-" * len(header)]
    for category in categories:
        lines.append(
            f"{category.title:<44} {len(category.delete):>14} {human_size(category.freed):>11}   "
            f"{len(category.keep):>6} {human_size(category.kept):>11}"
        )
    lines.append("-" * len(header))
    freed, kept = sum(c.freed for c in categories), sum(c.kept for c in categories)
    count = sum(len(c.delete) for c in categories)
    lines.append(
        f"{'total':<44} {count:>14} {human_size(freed):>11}   "
        f"{sum(len(c.keep) for c in categories):>6} {human_size(kept):>11}"
    )
    return "\n".join(lines)


# --- registry versions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionFacts:
    """What the plan needs of one registry version."""

    version: str
    run_id: str
    aliases: tuple[str, ...]
    tags: Mapping[str, str]


def plan_versions(
    versions: Iterable[VersionFacts], policy: RetentionPolicy, *, candidate: str | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """Which registry versions stay and which go: (version -> why kept, version -> why deleted).

    ``candidate`` is the version models/registered_adapter.json names (its gate or export may still
    read it). Protected: champion, previous, the ``previous_champion`` of previous (what a rollback makes
    ``previous``; without it the rollback could not set the alias), pending ones and the candidate. Of
    the rest, the newest ``keep_former_champions`` former champions and ``keep_rejected_versions``
    others stay, by version number."""
    from resources.registry import CHAMPION, PREVIOUS

    versions = sorted(versions, key=lambda v: int(v.version), reverse=True)
    keep: dict[str, str] = {}
    by_alias = {alias: v for v in versions for alias in v.aliases}
    if CHAMPION in by_alias:
        keep[by_alias[CHAMPION].version] = "champion"
    if PREVIOUS in by_alias:
        keep.setdefault(by_alias[PREVIOUS].version, "previous (the rollback target)")
        before = by_alias[PREVIOUS].tags.get("previous_champion")
        if before:
            keep.setdefault(before, "a rollback makes it `previous`")
    for v in versions:
        if v.tags.get("promotion") == "pending":
            keep.setdefault(v.version, "pending approval")
    if candidate is not None:
        keep.setdefault(candidate, "current candidate (models/registered_adapter.json)")
    delete: dict[str, str] = {}
    former = [v for v in versions if v.version not in keep and _was_champion(v)]
    others = [v for v in versions if v.version not in keep and not _was_champion(v)]
    for group, limit, what in (
        (former, policy.keep_former_champions, "former champion"),
        (others, policy.keep_rejected_versions, "rejected"),
    ):
        setting = "keep_former_champions" if group is former else "keep_rejected_versions"
        for rank, v in enumerate(group):
            verdict = v.tags.get("promotion", "no verdict")
            if rank < limit:
                keep[v.version] = f"{what} ({verdict}), among the newest {limit} (retention.{setting})"
            else:
                delete[v.version] = f"{what} ({verdict}), beyond retention.{setting} = {limit}"
    return keep, delete


def _was_champion(v: VersionFacts) -> bool:
    return v.tags.get("promotion") in FORMER_CHAMPION_TAGS or "demoted_by" in v.tags


def registry_versions(registry: ModelRegistry, name: str) -> list[VersionFacts]:
    """Every version of registered model ``name`` (none when it does not exist yet)."""
    client = registry.client()
    found = client.search_model_versions(f"name='{name}'")
    aliases: dict[str, list[str]] = {}
    if found:
        for alias, version in (client.get_registered_model(name).aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
    return [
        VersionFacts(str(v.version), v.run_id, tuple(aliases.get(str(v.version), ())), dict(v.tags or {}))
        for v in found
    ]


def run_artifact_dir(registry: ModelRegistry, run_id: str) -> Path | None:
    """The local directory holding a run's artifacts, or None for a tracking server's store."""
    uri = registry.client().get_run(run_id).info.artifact_uri
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        return None
    return Path(unquote(parsed.path))


def trashed_runs(registry: ModelRegistry) -> list[str]:
    """Runs of the registry's experiment in MLflow's ``deleted`` stage (its trash): left by an apply that
    stopped before ``mlflow gc`` finished, or deleted by hand. Their files stay until they are removed."""
    from mlflow.entities import ViewType

    client = registry.client()
    experiment = client.get_experiment_by_name(registry.experiment)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id], run_view_type=ViewType.DELETED_ONLY, max_results=50_000
    )
    return [run.info.run_id for run in runs]


def delete_versions(registry: ModelRegistry, name: str, versions: Iterable[VersionFacts]) -> list[str]:
    """Delete registry versions, their runs and the runs' artifacts (the adapter, the lineage snapshot)
    under the registry lock, and empty the experiment's trash (:func:`trashed_runs`). Returns notes for
    the user (e.g. a tracking server keeps the files until its operator runs ``mlflow gc``).

    The runs are soft-deleted through the client, then removed for good by MLflow's own ``mlflow gc
    --run-ids`` (metadata and artifacts) when the store is a local database; a tracking server's
    backend store is its operator's, so there the runs stay in the ``deleted`` stage.

    Raises:
        RuntimeError: ``mlflow gc`` failed; the versions are gone and their runs wait in the trash, which
            the next apply empties.
    """
    from resources.registry import sqlite_file

    notes = []
    with registry.lock():
        client = registry.client()
        current = {v.version: v for v in registry_versions(registry, name)}
        for v in versions:
            if v.version not in current:
                continue
            if current[v.version].aliases:
                # An alias moved onto it since the plan was made (an approval, a rollback): keep it.
                notes.append(f"version {v.version} now holds {', '.join(current[v.version].aliases)}: kept.")
                continue
            client.delete_model_version(name, v.version)
            client.delete_run(v.run_id)
        trash = trashed_runs(registry)
        if not trash:
            return notes
        if sqlite_file(registry.tracking_uri) is None:
            notes.append(
                "the tracking server keeps the deleted runs' files until its operator runs `mlflow gc`."
            )
            return notes
        directories = [run_artifact_dir(registry, run_id) for run_id in trash]
        uri = registry.tracking_uri
        command = ["gc", "--backend-store-uri", uri, "--tracking-uri", uri, "--run-ids", ",".join(trash)]
        result = subprocess.run(
            [sys.executable, "-m", "mlflow", *command],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(
                f"`mlflow gc` could not remove the deleted runs for good ({last}); their versions are gone "
                "and the runs wait in MLflow's `deleted` stage: run the command with --apply again."
            )
        for directory in directories:
            # mlflow gc empties <run>/artifacts; the run's own folder is ours to remove once empty.
            run_dir = directory.parent if directory is not None else None
            if run_dir is not None and run_dir.is_dir() and not any(p.is_file() for p in run_dir.rglob("*")):
                shutil.rmtree(run_dir)
    return notes


def kept_version_md5s(registry: ModelRegistry, versions: Iterable[VersionFacts]) -> dict[str, str]:
    """DVC md5 -> which version keeps it, for the data and base model of each kept version: its
    ``<artifact>_md5`` lineage tags and every output in the version's dvc.lock snapshot
    (``lineage/dvc_lock_inputs.json``: rejected_examples too). The adapter's own md5 is left out: the
    registry holds the adapter, so its DVC copy is a duplicate once dvc.lock names another."""
    import json
    import tempfile

    md5s: dict[str, str] = {}
    for v in versions:
        why = f"data of registry version {v.version}"
        for tag, value in v.tags.items():
            # Lineage tags are `<artifact key>_md5` (assets/registry/lineage.py).
            if tag.endswith("_md5") and tag != "adapter_md5" and value:
                md5s.setdefault(value, why)
        with tempfile.TemporaryDirectory() as tmp:
            try:
                folder = registry.download({"run_id": v.run_id, "version": v.version}, "lineage", Path(tmp))
                snapshot = json.loads(next(folder.glob("*.json")).read_text())
            except (FileNotFoundError, StopIteration, ValueError):
                continue  # registered before lineage snapshots: its tags are all there is
        for stage, entry in (snapshot.get("dvc_lock") or {}).items():
            if stage == "adapter":
                continue
            for out in entry.get("outs", []):
                if out.get("md5"):
                    md5s.setdefault(out["md5"], why)
    return md5s
