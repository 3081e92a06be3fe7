"""Retention from the command line: what the policy lets go of the registry, the DVC cache and Dagster's
run history, with sizes; a dry run unless --apply.

    python -m pipelines.retention            # the plan: per category what goes, what stays, bytes
    python -m pipelines.retention --apply    # delete it, then show what each store weighs now
    python -m pipelines.retention --verbose  # plus every item with the reason it goes or stays

The policy is params.yaml's `retention:` section (resources/retention.py documents each setting). The
registry is MLFLOW_TRACKING_URI, else the project's mlflow.db; Dagster's history is DAGSTER_HOME's
(`.dagster/` by default). --apply refuses while a run is in progress: it would delete what that run
is writing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from resources.project import PROJECT_ROOT
from resources.retention import Category, Item, RetentionPolicy, VersionFacts, human_size, tree_size

if TYPE_CHECKING:
    import dagster as dg

    from resources.registry import ModelRegistry

# Which report row a DVC cache object belongs to, by the asset whose output it was (Dagster's history).
CACHE_ROWS = {"merged_model": "DVC cache: merged models", "adapter": "DVC cache: adapters"}
CACHE_OTHER = "DVC cache: datasets, base models, reports"
CACHE_UNKNOWN = "DVC cache: origin unknown (no run history)"
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


@dataclass
class Plan:
    """What retention would delete, by category, and what it needs to do it."""

    categories: list[Category]
    name: str
    delete_versions: list[VersionFacts] = field(default_factory=list)
    keep_md5s: dict[str, str] = field(default_factory=dict)  # beyond dvc.lock: md5 -> why
    delete_runs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def category(self, title: str) -> Category:
        for category in self.categories:
            if category.title == title:
                return category
        self.categories.append(Category(title))
        return self.categories[-1]


def load_policy(root: Path = PROJECT_ROOT) -> RetentionPolicy:
    """params.yaml's ``retention:`` section as a checked policy. Raises ParamsError (unreadable file) or
    ValueError naming ``retention.<key>`` (a wrong value, an unknown key)."""
    from dataclasses import fields

    from assets.params import closest, qualified_names, section, settings_from

    values = section("retention", root)
    known = [f.name for f in fields(RetentionPolicy)]
    for key in values:
        if key not in known:
            raise ValueError(
                f"params.yaml: setting 'retention.{key}' is not a retention setting{closest(key, known)}"
            )
    return settings_from(RetentionPolicy, values, qualified_names(("retention",), root))


def current_candidate(root: Path, name: str) -> str | None:
    """The registry version models/registered_adapter.json names (its gate and export read it)."""
    from assets.stages import ARTIFACTS

    path = root / ARTIFACTS["registered_adapter"].path
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("name", name) != name:
        return None
    version = record.get("version")
    return str(version) if version is not None else None


# --- Dagster -----------------------------------------------------------------------------------------


def materialized_md5s(instance: dg.DagsterInstance) -> dict[str, list[tuple[float, str]]]:
    """Asset key -> (time, DVC md5) of every materialization Dagster remembers, newest first: the data
    version of every asset is its DVC md5 (assets/publishing.py)."""
    import dagster as dg

    from assets.stages import ARTIFACTS

    history: dict[str, list[tuple[float, str]]] = {}
    for key in ARTIFACTS:
        records = instance.fetch_materializations(dg.AssetKey(key), limit=10_000, ascending=False).records
        for record in records:
            md5 = (record.asset_materialization.tags or {}).get("dagster/data_version")
            if md5:
                history.setdefault(key, []).append((record.timestamp, md5))
    return history


def plan_runs(instance: dg.DagsterInstance, policy: RetentionPolicy, plan: Plan, now: float) -> None:
    """Runs that ended more than ``dagster_run_history_days`` ago go, except unfinished ones and those
    holding the latest materialization of an asset (registration reads the settings upstream stages
    recorded there, and the UI shows it as the asset's current version)."""
    import dagster as dg

    from assets.stages import ARTIFACTS

    category = plan.category("Dagster: run history")
    latest = set()
    for key in ARTIFACTS:
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        if event is not None:
            latest.add(event.run_id)
    cutoff = now - policy.dagster_run_history_days * 86400
    home = Path(instance.root_directory)
    for record in instance.get_run_records():
        run = record.dagster_run
        ended = record.end_time or record.update_timestamp.timestamp()
        size = tree_size(home / "history" / "runs" / f"{run.run_id}.db") + tree_size(
            home / "storage" / run.run_id
        )
        item = Item(run.run_id, size, "")
        if run.status.value not in FINISHED:
            item.reason = f"{run.status.value}: not finished"
        elif run.run_id in latest:
            item.reason = "holds the latest materialization of an asset"
        elif ended >= cutoff:
            item.reason = f"ended within {policy.dagster_run_history_days:g} days"
        else:
            item.reason = f"ended {(now - ended) / 86400:.1f} days ago"
            category.delete.append(item)
            plan.delete_runs.append(run.run_id)
            continue
        category.keep.append(item)


def runs_in_progress(instance: dg.DagsterInstance) -> list[str]:
    """Runs queued or running now (orphans of killed processes are failed first)."""
    import dagster as dg

    from pipelines.instance import fail_orphaned_runs

    fail_orphaned_runs(instance, by="the retention command")
    busy = [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    ]
    return [r.dagster_run.run_id for r in instance.get_run_records(dg.RunsFilter(statuses=busy))]


def delete_runs(instance: dg.DagsterInstance, run_ids: list[str]) -> None:
    """Delete runs with their events (``DagsterInstance.delete_run``), their compute logs and, with the
    default SQLite storage, the per-run event database file that delete_run empties but leaves."""
    storage = instance.event_log_storage
    for run_id in run_ids:
        instance.delete_run(run_id)
        # Compute logs are keyed [run_id, "compute_logs", step]; a manager that cannot delete (the base
        # class's no-op) keeps them.
        instance.compute_log_manager.delete_logs(prefix=[run_id])
        shard = getattr(storage, "path_for_shard", None)
        if shard is not None:
            Path(shard(run_id)).unlink(missing_ok=True)


# --- the plan ----------------------------------------------------------------------------------------


def plan_registry(
    registry: ModelRegistry, name: str, policy: RetentionPolicy, root: Path, plan: Plan
) -> list[VersionFacts]:
    """Add the registry's rows to ``plan``; returns the versions kept."""
    from resources.retention import plan_versions, registry_versions, run_artifact_dir, trashed_runs

    for run_id in trashed_runs(registry):
        directory = run_artifact_dir(registry, run_id)
        size = tree_size(directory) if directory is not None else None
        item = Item(f"run {run_id}", size, "in MLflow's trash (deleted, files not yet removed)")
        plan.category("registry: deleted runs").delete.append(item)
    versions = registry_versions(registry, name)
    keep, delete = plan_versions(versions, policy, candidate=current_candidate(root, name))
    for v in versions:
        directory = run_artifact_dir(registry, v.run_id)
        size = tree_size(directory) if directory is not None else None
        if v.version in delete:
            row = (
                "registry: former champions"
                if delete[v.version].startswith("former")
                else "registry: rejected candidates"
            )
            plan.category(row).delete.append(Item(f"version {v.version}", size, delete[v.version]))
            plan.delete_versions.append(v)
        else:
            why = keep.get(v.version, "kept")
            row = (
                "registry: former champions"
                if why.startswith("former")
                else "registry: rejected candidates"
                if why.startswith("rejected")
                else "registry: protected versions"
            )
            plan.category(row).keep.append(Item(f"version {v.version}", size, why))
    return [v for v in versions if v.version in keep]


def plan_cache(
    root: Path, policy: RetentionPolicy, history: dict[str, list[tuple[float, str]]], plan: Plan
) -> None:
    from resources.dvc_cache import directory_files
    from resources.dvc_cache import plan_cache as cache_plan

    merged = []
    for _, md5 in history.get("merged_model", []):
        if md5 not in merged:
            merged.append(md5)
    for rank, md5 in enumerate(merged[: policy.keep_merged_models]):
        plan.keep_md5s.setdefault(md5, f"merged model export {rank + 1} of retention.keep_merged_models")
    result = cache_plan(root, policy.dvc_scope, plan.keep_md5s)
    owner: dict[str, str] = {}
    for key, events in history.items():
        for _, md5 in events:
            if md5 in result.objects:
                owner.setdefault(md5, key)
                if md5.endswith(".dir"):
                    for entry in directory_files(root, md5):
                        owner.setdefault(entry, key)
    for rows in (CACHE_ROWS.values(), [CACHE_OTHER, CACHE_UNKNOWN]):
        for row in rows:
            plan.category(row)
    for md5, obj in sorted(result.objects.items()):
        key = owner.get(md5)
        row = CACHE_ROWS.get(key, CACHE_OTHER) if key else CACHE_UNKNOWN
        if md5 in result.keep:
            plan.category(row).keep.append(Item(md5, obj.size, result.keep[md5]))
        else:
            plan.category(row).delete.append(
                Item(md5, obj.size, f"output of {key}" if key else "unreferenced")
            )


def make_plan(
    root: Path,
    policy: RetentionPolicy,
    registry: ModelRegistry,
    name: str,
    instance: dg.DagsterInstance | None,
    now: float | None = None,
) -> Plan:
    """What the policy keeps and deletes; nothing is changed."""
    from resources.retention import kept_version_md5s

    plan = Plan([], name)
    kept = plan_registry(registry, name, policy, root, plan)
    plan.keep_md5s.update(kept_version_md5s(registry, kept))
    history = materialized_md5s(instance) if instance is not None else {}
    if (root / ".dvc").is_dir():
        plan_cache(root, policy, history, plan)
    else:
        plan.notes.append(f"{root} is not a DVC repository: no DVC cache to prune.")
    if instance is not None:
        plan_runs(instance, policy, plan, time.time() if now is None else now)
    else:
        plan.notes.append("no Dagster home: no run history to prune.")
    plan.categories = [c for c in plan.categories if c.delete or c.keep]
    return plan


def apply_plan(
    plan: Plan, root: Path, policy: RetentionPolicy, registry: ModelRegistry, instance
) -> list[str]:
    """Delete what ``plan`` lists: registry versions first (their data then stops being kept), then the
    DVC cache (in-use objects computed again under DVC's lock), then Dagster runs. Returns notes."""
    from resources.dvc_cache import prune_cache
    from resources.retention import delete_versions

    notes = delete_versions(registry, plan.name, plan.delete_versions)
    if (root / ".dvc").is_dir():
        prune_cache(root, policy.dvc_scope, plan.keep_md5s)
    if instance is not None and plan.delete_runs:
        delete_runs(instance, plan.delete_runs)
    return notes


def store_sizes(root: Path, registry: ModelRegistry, instance) -> dict[str, int | None]:
    """Bytes each store holds now: the DVC cache, the registry's artifacts, the Dagster home."""
    artifacts = registry.artifact_root()
    return {
        "DVC cache (.dvc/cache)": tree_size(root / ".dvc" / "cache"),
        f"registry artifacts ({artifacts})" if artifacts else "registry artifacts": (
            tree_size(artifacts) if artifacts is not None else None
        ),
        f"Dagster home ({instance.root_directory})" if instance else "Dagster home": (
            tree_size(Path(instance.root_directory)) if instance is not None else None
        ),
    }


def _registry() -> ModelRegistry:
    from pipelines.registry import _registry as project_registry

    return project_registry()


def _instance() -> dg.DagsterInstance | None:
    home = os.environ.get("DAGSTER_HOME") or str(PROJECT_ROOT / ".dagster")
    if not Path(home).is_dir():
        return None
    from pipelines.instance import ensure_dagster_home

    ensure_dagster_home()
    import dagster as dg

    return dg.DagsterInstance.get()


def print_plan(plan: Plan, *, applied: bool, verbose: bool) -> None:
    from resources.retention import report_table

    print(report_table(plan.categories, applied=applied))
    if verbose:
        for category in plan.categories:
            for verb, items in (("delete", category.delete), ("keep", category.keep)):
                for item in items:
                    print(f"  {category.title}: {verb} {item.name} ({human_size(item.size)}): {item.reason}")
    for note in plan.notes:
        print(f"note: {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apply", action="store_true", help="delete what the plan lists (default: dry run)")
    parser.add_argument("--verbose", action="store_true", help="every item with its reason")
    parser.add_argument("--name", help="registered model name (default: params.yaml registry.model_name)")
    args = parser.parse_args(argv)
    # The lineage snapshots are read through MLflow's downloads: no progress bars between the tables.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.exceptions import MlflowException

    from assets.params import ParamsError, section

    try:
        policy = load_policy(PROJECT_ROOT)
        name = args.name or section("registry", PROJECT_ROOT)["model_name"]
    except (ParamsError, ValueError) as exc:
        print(f"error: nothing was deleted. {exc}", file=sys.stderr)
        return 2
    registry, instance = _registry(), _instance()
    busy = runs_in_progress(instance) if args.apply and instance is not None else []
    if busy:
        print(
            f"error: nothing was deleted: run(s) {', '.join(busy)} are in progress and may be writing what "
            "retention would delete. Wait for them to finish, then run again.",
            file=sys.stderr,
        )
        return 1
    try:
        plan = make_plan(PROJECT_ROOT, policy, registry, name, instance)
        if not args.apply:
            print_plan(plan, applied=False, verbose=args.verbose)
            print("Dry run: nothing was deleted. Run with --apply to delete the above.")
            return 0
        before = store_sizes(PROJECT_ROOT, registry, instance)
        plan.notes += apply_plan(plan, PROJECT_ROOT, policy, registry, instance)
        after = store_sizes(PROJECT_ROOT, registry, instance)
    except MlflowException as exc:  # a registry that cannot be reached
        print(f"error: the registry ({registry.tracking_uri}) says: {exc.message}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # mlflow gc failed, the registry lock was held too long
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_plan(plan, applied=True, verbose=args.verbose)
    print()
    for store, size in before.items():
        print(f"{store}: {human_size(size)} before, {human_size(after[store])} after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
