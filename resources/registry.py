"""The model registry (MLflow): adapter versions, their lineage tags, and the `champion` alias.

Two promises beyond MLflow's own:

- **Artifacts belong to the project that holds the database.** MLflow stores absolute artifact
  locations (mlflow/mlflow#3144), so a moved project could not read its adapters and a copied one wrote
  new versions into the original folder. With a local SQLite store, the artifact root is resolved at run
  time (``artifact_location``, relative to the database's folder: ``<project>/mlartifacts`` by default)
  and the database is repointed to it before first use whenever it names another root.
- **One writer at a time.** Registration (find-or-create by adapter md5) and every alias move happen
  under a file lock, and a promotion is a compare-and-set: it only moves ``champion`` if the champion is
  still the version the candidate was judged against. The demoted champion is kept under ``previous``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import dagster as dg

from resources.project import PROJECT_ROOT

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION = "champion"
PREVIOUS = "previous"
DEFAULT_TRACKING_URI = f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
# Columns of MLflow's SQLite schema that hold artifact locations (absolute paths or file: URIs).
LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)
_log = logging.getLogger(__name__)
_repointed: set[tuple[str, str]] = set()


class RegistryConflict(RuntimeError):
    """The registry changed under us (another run promoted first): nothing was moved."""


def model_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a registered model in MLflow (which refuses '/' and ':'), or None."""
    if not isinstance(name, str) or not name.strip():
        return "registry.model_name is empty: give the registered model a name in params.yaml."
    if "/" in name or ":" in name:
        return f"registry.model_name {name!r} contains '/' or ':', which MLflow model names cannot hold."
    return None


def tracking_uri_from_env() -> str | dg.EnvVar:
    """MLFLOW_TRACKING_URI when set (a team's tracking server), else the project's SQLite file. The
    variable is passed by name (Dagster shows and stores the name, not the value), after its
    credentials moved to MLflow's auth variables (resources/secrets.py)."""
    from resources.secrets import TRACKING_URI_ENV, move_tracking_credentials

    move_tracking_credentials()
    return dg.EnvVar(TRACKING_URI_ENV) if os.environ.get(TRACKING_URI_ENV) else DEFAULT_TRACKING_URI


def sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, else None."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(unquote(tracking_uri[len("sqlite:///") :])).resolve()


def repoint_artifacts(db: Path, root: Path) -> str | None:
    """Rewrite every artifact location in MLflow's SQLite database ``db`` that lies under the root the
    ``finetune`` experiments were created with onto ``root`` (the same relative paths below it). Returns
    the old root when something was rewritten, else None. Raises sqlite3.Error (a locked database)."""
    new = root.resolve().as_uri()
    with contextlib.closing(sqlite3.connect(str(db), timeout=30)) as conn, conn:
        tables = {row[0] for row in conn.execute("select name from sqlite_master where type='table'")}
        if "experiments" not in tables:
            return None
        old = None
        for (location,) in conn.execute("select artifact_location from experiments"):
            location = (location or "").rstrip("/")
            if location.startswith("file://") and location.endswith("/" + root.name) and location != new:
                old = location
                break
        if old is None:
            return None
        old_path = unquote(urlparse(old).path)
        for table, column in LOCATION_COLUMNS:
            if table not in tables:
                continue
            columns = {row[1] for row in conn.execute(f"pragma table_info({table})")}
            if column not in columns:
                continue
            for prefix, replacement in ((old, new), (old_path, str(root.resolve()))):
                conn.execute(
                    f"update {table} set {column} = ? || substr({column}, ?) "
                    f"where {column} = ? or substr({column}, 1, ?) = ?",
                    (replacement, len(prefix) + 1, prefix, len(prefix) + 1, prefix + "/"),
                )
    return old


class ModelRegistry(dg.ConfigurableResource):
    """An MLflow tracking store plus model registry.

    Each registered version is one adapter; its tags carry the lineage (DVC md5 of each split, params
    hash, git commit, Dagster run id, base model). Registering the same adapter bytes twice returns the
    existing version, so re-running an unchanged pipeline does not pile up versions.
    """

    tracking_uri: str = DEFAULT_TRACKING_URI
    # Where run artifacts (the adapter files) go with a local SQLite store: relative to the database's
    # folder (so to the project for the default mlflow.db), or absolute. A tracking server keeps
    # artifacts in its own store.
    artifact_location: str = "mlartifacts"
    experiment: str = "finetune"

    def artifact_root(self) -> Path | None:
        """The local artifact root, resolved now (None for a tracking server)."""
        db = sqlite_file(self.tracking_uri)
        if db is None and "://" in self.tracking_uri and not self.tracking_uri.startswith("file:"):
            return None
        path = Path(self.artifact_location).expanduser()
        if path.is_absolute():
            return path
        return (db.parent if db is not None else PROJECT_ROOT) / path

    def client(self) -> MlflowClient:
        from mlflow import MlflowClient

        db, root = sqlite_file(self.tracking_uri), self.artifact_root()
        if db is not None and root is not None and db.exists() and (str(db), str(root)) not in _repointed:
            try:
                old = repoint_artifacts(db, root)
            except sqlite3.Error as exc:
                raise RuntimeError(
                    f"The registry database {db} cannot be read or updated ({exc}): if another process "
                    "holds it, wait for it to finish; otherwise check the file's permissions."
                ) from exc
            if old is not None:
                _log.warning(f"{db} named artifacts under {old} (moved or copied project): now {root}.")
            _repointed.add((str(db), str(root)))
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    @contextlib.contextmanager
    def lock(self, timeout: float = 600) -> Iterator[None]:
        """Serialize registry writers: a file lock beside the SQLite database; for a tracking server, one
        per server URI in the system's temporary folder, which serializes this machine's runs only."""
        import hashlib
        import tempfile

        from filelock import FileLock, Timeout

        db = sqlite_file(self.tracking_uri)
        if db is not None:
            path = db.with_name(db.name + ".lock")
        else:
            digest = hashlib.sha256(self.tracking_uri.encode()).hexdigest()[:16]
            path = Path(tempfile.gettempdir()) / f"mlflow-registry-{digest}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(path), timeout=timeout):
                yield
        except Timeout:
            raise RegistryConflict(
                f"the registry lock {path} was held for more than {timeout:.0f} s by another run: "
                "wait for it, or delete the file if no run is active."
            ) from None

    def _experiment_id(self, client: MlflowClient) -> str:
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        root = self.artifact_root()
        if root is None:
            # A tracking server chooses where artifacts go (its artifact store), reachable by every
            # machine; a local directory here would be readable only on this one.
            return client.create_experiment(self.experiment)
        return client.create_experiment(self.experiment, artifact_location=root.resolve().as_uri())

    def find_version(self, name: str, tag: str, value: str) -> dict[str, Any] | None:
        """The newest version of ``name`` whose tag ``tag`` equals ``value``."""
        versions = self.client().search_model_versions(f"name='{name}' and tag.`{tag}`='{value}'")
        if not versions:
            return None
        return _version_info(max(versions, key=lambda v: int(v.version)))

    def version(self, name: str, version: str) -> dict[str, Any]:
        """One version's info; MlflowException when it does not exist."""
        return _version_info(self.client().get_model_version(name, version))

    def register_once(
        self,
        name: str,
        adapter_dir: Path,
        *,
        tags: dict[str, str],
        metrics: dict[str, float],
        params: dict[str, Any],
        extra_artifacts: dict[str, Path] | None = None,
        metric_history: dict[str, list[tuple[int, float]]] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """The version holding these adapter bytes (``tags['adapter_md5']``), registering it when there is
        none; the lookup and the registration happen under the lock, so two overlapping runs with the
        same adapter get one version. Returns (version info, whether it already existed)."""
        with self.lock():
            existing = self.find_version(name, "adapter_md5", tags["adapter_md5"])
            if existing is not None:
                return existing, True
            info = self.register(
                name,
                adapter_dir,
                tags=tags,
                metrics=metrics,
                params=params,
                extra_artifacts=extra_artifacts,
                metric_history=metric_history,
            )
            return info, False

    def register(
        self,
        name: str,
        adapter_dir: Path,
        *,
        tags: dict[str, str],
        metrics: dict[str, float],
        params: dict[str, Any],
        extra_artifacts: dict[str, Path] | None = None,
        metric_history: dict[str, list[tuple[int, float]]] | None = None,
    ) -> dict[str, Any]:
        """Log ``adapter_dir`` (and ``extra_artifacts``: artifact folder -> local file) as a run's
        artifacts and register it as a new version of ``name``, whose ``run_id`` links to that run.
        ``metrics`` are logged at step 0, ``metric_history`` (name -> [(step, value), ...], e.g. the
        training curves) at their steps, so the MLflow UI charts them against the optimizer step."""
        import time

        from mlflow.entities import Metric, Param
        from mlflow.exceptions import MlflowException

        client = self.client()
        run = client.create_run(self._experiment_id(client), tags=tags, run_name=f"{name}-candidate")
        run_id = run.info.run_id
        try:
            now = int(time.time() * 1000)
            points = [(key, 0, value) for key, value in sorted(metrics.items())]
            points += [
                (key, step, value)
                for key, series in sorted((metric_history or {}).items())
                for step, value in series
            ]
            # One batched call (MlflowClient splits it into the store's batch limits), not one per point.
            client.log_batch(
                run_id,
                metrics=[Metric(key, float(value), now, int(step)) for key, step, value in points],
                params=[Param(key, str(value)[:500]) for key, value in sorted(params.items())],
            )
            client.log_artifacts(run_id, str(adapter_dir), "adapter")
            for folder, path in sorted((extra_artifacts or {}).items()):
                client.log_artifact(run_id, str(path), folder)
        except Exception:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id)
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = client.create_model_version(
            name, source=f"runs:/{run_id}/adapter", run_id=run_id, tags=tags
        )
        return _version_info(version)

    def _alias(self, name: str, alias: str) -> dict[str, Any] | None:
        from mlflow.exceptions import MlflowException

        try:
            return _version_info(self.client().get_model_version_by_alias(name, alias))
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None  # no such model yet, or no alias yet
            raise

    def champion(self, name: str) -> dict[str, Any] | None:
        """The version holding the champion alias, or None before the first promotion. Any other
        registry error (a server that cannot be reached, no permission) propagates: reading it as "no
        champion" would quietly compare candidates with the base model instead."""
        return self._alias(name, CHAMPION)

    def previous(self, name: str) -> dict[str, Any] | None:
        """The champion before the current one (alias ``previous``), or None."""
        return self._alias(name, PREVIOUS)

    def promote(self, name: str, version: str, *, expected_champion: str | None) -> str | None:
        """Make ``version`` the champion if the champion is still ``expected_champion`` (the version the
        candidate was judged against; None: no champion). The old champion moves to ``previous`` and
        is tagged ``promotion=demoted``; the new one ``promotion=champion``. Returns the old champion's
        version. Raises RegistryConflict, moving nothing, when another run promoted in between."""
        with self.lock():
            client = self.client()
            current = self.champion(name)
            current_version = current["version"] if current else None
            if current_version == version:
                return None
            if current_version != expected_champion:
                raise RegistryConflict(
                    f"version {version} was judged against champion {expected_champion or '(none)'}, but "
                    f"the champion is now version {current_version}: another run promoted in between. "
                    "Re-materialize evaluation_report and registered_adapter to judge it against the new one."
                )
            if current_version is not None:
                client.set_registered_model_alias(name, PREVIOUS, current_version)
                client.set_model_version_tag(name, current_version, "promotion", "demoted")
                client.set_model_version_tag(name, current_version, "demoted_by", version)
                client.set_model_version_tag(name, version, "previous_champion", current_version)
            client.set_registered_model_alias(name, CHAMPION, version)
            client.set_model_version_tag(name, version, "promotion", "champion")
            return current_version

    def rollback(self, name: str) -> tuple[str, str]:
        """Move ``champion`` back to the ``previous`` version. The rolled-back version is tagged
        ``promotion=rolled_back``; ``previous`` becomes the restored champion's own predecessor (or is
        removed). Returns (rolled-back version, restored version). Raises RegistryConflict when there is
        no previous champion."""
        with self.lock():
            client = self.client()
            current, previous = self.champion(name), self.previous(name)
            if current is None or previous is None:
                raise RegistryConflict(
                    f"'{name}' has no previous champion to roll back to (aliases: champion="
                    f"{current and current['version']}, previous={previous and previous['version']})."
                )
            client.set_registered_model_alias(name, CHAMPION, previous["version"])
            client.set_model_version_tag(name, previous["version"], "promotion", "champion")
            client.set_model_version_tag(name, current["version"], "promotion", "rolled_back")
            before = previous["tags"].get("previous_champion")
            if before:
                client.set_registered_model_alias(name, PREVIOUS, before)
            else:
                client.delete_registered_model_alias(name, PREVIOUS)
            return current["version"], previous["version"]

    def tag(self, name: str, version: str, key: str, value: str) -> None:
        self.client().set_model_version_tag(name, version, key, value)

    def download_adapter(self, info: dict[str, Any], destination: Path) -> Path:
        """Copy a version's adapter files to ``destination`` and return the adapter directory."""
        return self.download(info, "adapter", destination)

    def download(self, info: dict[str, Any], artifact: str, destination: Path) -> Path:
        """Copy one artifact path of a version's run to ``destination``. A missing artifact raises
        FileNotFoundError naming the version, the run and where the store looked."""
        from mlflow.exceptions import MlflowException

        destination.mkdir(parents=True, exist_ok=True)
        client = self.client()
        try:
            return Path(client.download_artifacts(info["run_id"], artifact, str(destination)))
        except (MlflowException, OSError) as exc:
            where = client.get_run(info["run_id"]).info.artifact_uri
            raise FileNotFoundError(
                f"registry version {info.get('version')} (run {info['run_id']}): '{artifact}' cannot be read "
                f"from {where} ({exc}). Were the files of the artifact root deleted or not copied along?"
            ) from None


def _version_info(version: Any) -> dict[str, Any]:
    return {
        "name": version.name,
        "version": str(version.version),
        "run_id": version.run_id,
        "source": version.source,
        "tags": dict(version.tags or {}),
        "aliases": list(getattr(version, "aliases", []) or []),
    }
