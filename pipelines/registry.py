"""The model registry from the command line: see versions, approve, roll back, restore a version's data.

    python -m pipelines.registry status                  # versions, aliases, promotion state, lineage
    python -m pipelines.registry approve 3 [--export]    # promote a `pending` version (require_approval)
    python -m pipelines.registry rollback [--export]     # champion back to the `previous` version
    python -m pipelines.registry restore 3 --to DIR      # version 3's split files from DVC, same md5
    python -m pipelines.registry repair [--export]       # a champion whose registry files are gone

The registry is MLFLOW_TRACKING_URI, else the project's mlflow.db; the model name is params.yaml's
registry.model_name unless --name is given. `--export` re-materializes merged_model afterwards, so the
export matches the new champion; without it the command says how.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from resources.project import PROJECT_ROOT

EXPORT = [sys.executable, "-m", "pipelines.materialize", "merged_model"]
SPLITS = ("train_split", "validation_split", "test_split")


def _registry():
    from resources.registry import registry_from_env

    # Outside a Dagster run the variables are read here; credentials were already moved out of the URI.
    return registry_from_env()


def _export(run: bool) -> int:
    if not run:
        print("merged_model still holds the old champion: re-export with")
        print("  .venv/bin/python -m pipelines.materialize merged_model")
        print("(or `make demo`, or materialize merged_model in the Dagster UI).")
        return 0
    return subprocess.run(EXPORT, cwd=PROJECT_ROOT, check=False).returncode


def status(name: str) -> int:
    from resources.registry import sqlite_file

    registry = _registry()
    db = sqlite_file(registry.tracking_uri)
    if db is not None and not db.exists():
        # Asking MLflow would create an empty database: a mistyped MLFLOW_TRACKING_URI would look like
        # a registry with nothing in it.
        print(
            f"no registry database at {db} yet: nothing was registered there (or MLFLOW_TRACKING_URI "
            "names the wrong file)."
        )
        return 0
    versions = registry.client().search_model_versions(f"name='{name}'")
    if not versions:
        print(f"'{name}' has no versions yet.")
        return 0
    print(f"{'version':>7}  {'aliases':<18} {'promotion':<12} {'adapter_md5':<38} reason")
    for v in sorted(versions, key=lambda v: int(v.version)):
        tags = v.tags or {}
        aliases = ",".join(registry.version(name, v.version)["aliases"]) or "-"
        print(
            f"{v.version:>7}  {aliases:<18} {tags.get('promotion', '-'):<12} "
            f"{tags.get('adapter_md5', '?'):<38} {tags.get('promotion_reason', '')}"
        )
    return 0


def approve(name: str, version: str, export: bool) -> int:
    from assets.registry.promotion import approve as approve_version
    from resources.registry import RegistryConflict

    try:
        demoted = approve_version(_registry(), name, version)
    except (ValueError, RegistryConflict) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"version {version} is now the champion"
        + (f" (version {demoted} is `previous`)." if demoted else ".")
    )
    return _export(export)


def rollback(name: str, export: bool) -> int:
    from resources.registry import RegistryConflict

    try:
        rolled_back, restored = _registry().rollback(name)
    except RegistryConflict as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"champion: version {restored} (version {rolled_back} is tagged promotion=rolled_back).")
    return _export(export)


def repair(name: str, export: bool) -> int:
    """A champion whose registry files are gone: tag it, and move the alias to the newest earlier
    champion that still has its files, or clear it (see ModelRegistry.repair)."""
    registry = _registry()
    result = registry.repair(name)
    if result is None:
        champion = registry.champion(name)
        print(
            f"nothing to repair: champion version {champion['version']} has its files."
            if champion
            else f"nothing to repair: '{name}' has no champion."
        )
        return 0
    broken, restored = result
    print(f"version {broken} lost its registry files: tagged artifacts=missing, promotion=artifacts_missing.")
    if restored is None:
        print(
            "no earlier champion has its files: the champion alias was removed, so the next candidate is "
            "compared with the base model and promoted if it passes the gate. The last export is kept."
        )
        return 0
    print(f"champion: version {restored} (the newest earlier champion whose files exist).")
    return _export(export)


def restore(name: str, version: str, to: Path) -> int:
    """Restore a version's split files into ``to`` from the DVC cache or remote, md5-checked."""
    from assets.registry.asset import LINEAGE_FILE
    from assets.registry.lineage import restore_files
    from assets.shared.errors import InputError
    from assets.stages import ARTIFACTS

    registry = _registry()
    info = registry.version(name, version)
    wanted = {ARTIFACTS[key].path: info["tags"][f"{key}_md5"] for key in SPLITS}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            snapshot = json.loads((registry.download(info, "lineage", Path(tmp)) / LINEAGE_FILE).read_text())
        (to / "dvc_lock_inputs.json").parent.mkdir(parents=True, exist_ok=True)
        (to / "dvc_lock_inputs.json").write_text(json.dumps(snapshot, indent=2, sort_keys=True) + "\n")
    except FileNotFoundError as exc:  # versions registered before lineage snapshots existed
        print(f"note: no dvc.lock snapshot for version {version} ({exc}); restoring from its tags.")
    try:
        restored = restore_files(PROJECT_ROOT, wanted, to)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for relative, path in restored.items():
        print(f"{path}  md5 {wanted[relative]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from assets.params import section

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", help="registered model name (default: params.yaml registry.model_name)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="versions, aliases and promotion state")
    approve_parser = commands.add_parser("approve", help="promote a version pending approval")
    approve_parser.add_argument("version")
    approve_parser.add_argument("--export", action="store_true", help="re-materialize merged_model")
    rollback_parser = commands.add_parser("rollback", help="move champion back to the previous version")
    rollback_parser.add_argument("--export", action="store_true", help="re-materialize merged_model")
    restore_parser = commands.add_parser("restore", help="a version's split files from DVC")
    restore_parser.add_argument("version")
    restore_parser.add_argument("--to", type=Path, required=True, help="directory to write them into")
    repair_parser = commands.add_parser(
        "repair", help="champion whose files are gone: move the alias to the newest earlier one with files"
    )
    repair_parser.add_argument("--export", action="store_true", help="re-materialize merged_model")
    args = parser.parse_args(argv)
    name = args.name or section("registry")["model_name"]
    from mlflow.exceptions import MlflowException

    from resources.registry import RegistryError

    try:
        if args.command == "status":
            return status(name)
        if args.command == "approve":
            return approve(name, args.version, args.export)
        if args.command == "rollback":
            return rollback(name, args.export)
        if args.command == "repair":
            return repair(name, args.export)
        return restore(name, args.version, args.to)
    except RegistryError as exc:  # a registry that cannot be reached, a database that stays locked
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except MlflowException as exc:  # no such model or version
        print(f"error: the registry ({_registry().where()}) says: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
