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
- **Faults are bounded and explained.** Every call goes through :meth:`ModelRegistry.client`, which
  gives MLflow's HTTP client a short timeout and few retries (a tracking server that cannot be reached
  fails in seconds, not after MLflow's ~4 minutes of retries), retries a locked SQLite file with backoff
  up to ``lock_wait_s``, and turns the final failure into :class:`RegistryUnavailable`: the URI (without
  credentials), the cause and what to do.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
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


# MLflow's HTTP client settings (mlflow/environment_variables.py, mlflow-skinny 3.x), read by MLflow at
# every request: the resource's fields are written to them, so they hold for this process's client.
HTTP_TIMEOUT_ENV = "MLFLOW_HTTP_REQUEST_TIMEOUT"
HTTP_RETRIES_ENV = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
HTTP_BACKOFF_ENV = "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
# Our defaults, against MLflow's 120 s timeout, 7 retries and backoff factor 2 (about 260 s before an
# unreachable server is reported): 3 tries 1 s and 2 s apart, each given 15 s for a connection or a reply.
DEFAULT_TIMEOUT_S = 15
DEFAULT_RETRIES = 2
DEFAULT_BACKOFF = 1
DEFAULT_LOCK_WAIT_S = 60.0


class RegistryError(RuntimeError):
    """A registry operation that did not happen; the message says why and what to do."""


class RegistryConflict(RegistryError):
    """The registry changed under us (another run promoted first): nothing was moved."""


class RegistryUnavailable(RegistryError):
    """The registry could not be reached or read (a server down, a locked SQLite file): nothing was
    changed by the call that failed."""


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


def request_settings_from_env() -> dict[str, int]:
    """The resource's HTTP fields from MLflow's variables where they are set, else our defaults
    (``DEFAULT_TIMEOUT_S`` etc.). Raises RegistryError for a value that is not a whole number."""

    def number(name: str, default: int) -> int:
        value = os.environ.get(name, "").strip()
        try:
            return int(value) if value else default
        except ValueError:
            raise RegistryError(
                f"{name}={value!r} must be a whole number (MLflow reads it as one)."
            ) from None

    return {
        "request_timeout_s": number(HTTP_TIMEOUT_ENV, DEFAULT_TIMEOUT_S),
        "request_retries": number(HTTP_RETRIES_ENV, DEFAULT_RETRIES),
        "request_backoff_factor": number(HTTP_BACKOFF_ENV, DEFAULT_BACKOFF),
    }


def registry_from_env() -> ModelRegistry:
    """The registry the definitions use, resolved now (for commands and preflight, outside a run):
    :func:`tracking_uri_from_env` and :func:`request_settings_from_env`."""
    uri = tracking_uri_from_env()
    return ModelRegistry(
        tracking_uri=uri.get_value() if isinstance(uri, dg.EnvVar) else uri, **request_settings_from_env()
    )


def is_locked(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) is SQLite's "database is locked" (SQLITE_BUSY): MLflow
    wraps SQLAlchemy's OperationalError, which wraps sqlite3's."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if "database is locked" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def unreachable_cause(exc: BaseException) -> str | None:
    """Why a request to the tracking server got no usable answer (refused, timed out, unknown host,
    only server errors), in words; None for anything else (a 404 or a permission error is an answer,
    which MLflow's own message reports)."""
    import requests

    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 6:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    text = " ".join(str(e) for e in chain)
    no_answer = any(
        isinstance(e, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)) for e in chain
    ) or ("API request to" in text and ("Max retries exceeded" in text or "timeout" in text))
    if not no_answer:
        return None
    for words, cause in (
        ("Connection refused", "connection refused (nothing listens at that address and port)"),
        ("Name or service not known", "unknown host name"),
        ("Temporary failure in name resolution", "the host name cannot be resolved"),
        ("error responses", "the server answered only with errors (HTTP 5xx)"),
        ("timed out", "no answer within the timeout"),
        ("timeout", "no answer within the timeout"),
    ):
        if words in text:
            return cause
    return "no connection"


def lock_holders(db: Path) -> list[str]:
    """The processes that have ``db`` (or its journal) open, as "pid N (command)", found with psutil; []
    when none is visible (another user's process, another machine on a shared disk)."""
    import psutil

    names = {str(db), f"{db}-journal", f"{db}-wal"}
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.pid == os.getpid():
            continue
        try:
            if any(f.path in names for f in process.open_files()):
                command = " ".join(" ".join(process.info["cmdline"] or []).split())[:120]
                found.append(f"pid {process.pid} ({command})")
        except (psutil.Error, OSError):
            continue
    return found


def sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, else None."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(unquote(tracking_uri[len("sqlite:///") :])).resolve()


def repoint_artifacts(db: Path, root: Path, *, timeout: float = 30) -> str | None:
    """Rewrite every artifact location in MLflow's SQLite database ``db`` that lies under the root the
    ``finetune`` experiments were created with onto ``root`` (the same relative paths below it). Returns
    the old root when something was rewritten, else None. Raises sqlite3.Error (a database locked for
    more than ``timeout`` seconds)."""
    new = root.resolve().as_uri()
    with contextlib.closing(sqlite3.connect(str(db), timeout=timeout)) as conn, conn:
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
    # How long to wait for a tracking server, given to MLflow's HTTP client (its env variables, named
    # after each field; MLflow's own defaults are 120 s, 7 and 2, about 260 s to report a dead server).
    # Whole numbers: MLflow reads them as ints. Fed from those variables when set (registry_from_env).
    request_timeout_s: int = DEFAULT_TIMEOUT_S  # MLFLOW_HTTP_REQUEST_TIMEOUT: per connect or reply
    request_retries: int = DEFAULT_RETRIES  # MLFLOW_HTTP_REQUEST_MAX_RETRIES: tries after the first
    request_backoff_factor: int = DEFAULT_BACKOFF  # MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: waits f*1, f*2, ...
    # Total seconds a call keeps retrying a locked SQLite file (another process writing it) before it
    # fails naming the file and its holders. One try may itself wait up to MLflow's SQLite busy timeout
    # (20 s), so the failure comes after the larger of the two.
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S

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
        """An MlflowClient for this registry whose every method call is bounded and explained (see
        :meth:`guarded`). MLflow's HTTP variables are set from this resource's fields for the process:
        MLflow reads them at each request, and a run has one registry."""
        from mlflow import MlflowClient

        os.environ[HTTP_TIMEOUT_ENV] = str(self.request_timeout_s)
        os.environ[HTTP_RETRIES_ENV] = str(self.request_retries)
        os.environ[HTTP_BACKOFF_ENV] = str(self.request_backoff_factor)
        db, root = sqlite_file(self.tracking_uri), self.artifact_root()
        if db is not None and root is not None and db.exists() and (str(db), str(root)) not in _repointed:
            try:
                old = self.guarded(repoint_artifacts, db, root, timeout=min(self.lock_wait_s, 5))
            except sqlite3.Error as exc:
                raise RegistryUnavailable(
                    f"the registry database {db} cannot be read or updated ({exc}): check the file's "
                    "permissions, or restore it from a backup."
                ) from None
            if old is not None:
                _log.warning(f"{db} named artifacts under {old} (moved or copied project): now {root}.")
            _repointed.add((str(db), str(root)))
        client = self.guarded(MlflowClient, tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return _GuardedClient(client, self)  # type: ignore[return-value]

    def where(self) -> str:
        """The tracking URI as it may be shown: without credentials."""
        from resources.secrets import redact

        return redact(self.tracking_uri)

    def guarded(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``call(*args, **kwargs)``, retried with backoff (0.5 s doubling, at most 5 s apart) while the
        SQLite file is locked, for up to ``lock_wait_s`` in all. A server that cannot be reached (after
        MLflow's own retries) or a file still locked raises :class:`RegistryUnavailable` naming the URI
        or file, the cause and what to do; any other error propagates as it is."""
        deadline = time.monotonic() + self.lock_wait_s
        pause = 0.5
        while True:
            try:
                return call(*args, **kwargs)
            except RegistryError:
                raise
            except Exception as exc:
                db = sqlite_file(self.tracking_uri)
                if db is not None and is_locked(exc):
                    if time.monotonic() + pause <= deadline:
                        _log.warning(f"the registry database {db} is locked; trying again in {pause:.1f} s")
                        time.sleep(pause)
                        pause = min(pause * 2, 5.0)
                        continue
                    raise RegistryUnavailable(self._locked_message(db)) from None
                cause = None if db is not None else unreachable_cause(exc)
                if cause is None:
                    raise
                raise RegistryUnavailable(self._unreachable_message(cause)) from None

    def _locked_message(self, db: Path) -> str:
        holders = lock_holders(db)
        who = (
            "held by " + "; ".join(holders)
            if holders
            else "no process of this machine visibly holds it (another user's process, or a machine "
            "sharing the disk)"
        )
        return (
            f"the registry database {db} stayed locked for {self.lock_wait_s:.0f} s (lock_wait_s): {who}. "
            "Another pipeline run, `mlflow ui`/`mlflow server` writing to it or a sqlite3 shell with an open "
            "transaction is the usual holder: let it finish (or close it), then run again. Nothing was "
            "changed by this call."
        )

    def _unreachable_message(self, cause: str) -> str:
        tries = self.request_retries + 1
        return (
            f"the registry at {self.where()} cannot be reached: {cause}; tried {tries} time(s) "
            f"(timeout {self.request_timeout_s} s each). Start the tracking server, or fix "
            "MLFLOW_TRACKING_URI (unset it to use the project's mlflow.db); for a slow server raise "
            f"{HTTP_TIMEOUT_ENV} / {HTTP_RETRIES_ENV}. Nothing was changed by this call."
        )

    def check_reachable(self) -> None:
        """Fail fast when the registry cannot be used, before a run that needs it: a tracking server is
        asked for one registered model (under the short timeout); a SQLite file is opened read-only and
        its schema read, without MLflow (a missing file is fine: MLflow creates it; a lock is left to the
        steps, which wait for it). Raises RegistryUnavailable naming the URI or file and the cause."""
        db = sqlite_file(self.tracking_uri)
        if db is None:
            from mlflow.exceptions import MlflowException

            from resources.secrets import redact

            try:
                self.client().search_registered_models(max_results=1)
            except MlflowException as exc:  # an answer, but a refusal: credentials, permissions, a proxy
                raise RegistryUnavailable(
                    f"the registry at {self.where()} refused the request ({redact(exc.message)[:300]}): "
                    "check MLFLOW_TRACKING_URI and the credentials (MLFLOW_TRACKING_USERNAME / "
                    "MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN)."
                ) from None
            return
        if not db.exists():
            if not db.parent.is_dir():
                raise RegistryUnavailable(
                    f"the registry database's folder {db.parent} does not exist: create it, or fix "
                    "MLFLOW_TRACKING_URI."
                )
            return
        try:
            with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=1)) as conn:
                conn.execute("select name from sqlite_master limit 1").fetchall()
        except sqlite3.Error as exc:
            if "locked" not in str(exc):
                raise RegistryUnavailable(
                    f"the registry database {db} cannot be read ({exc}): restore it from a backup, or "
                    "move it aside to start an empty registry."
                ) from None

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

    def has_artifacts(self, info: dict[str, Any], artifact: str = "adapter") -> bool:
        """Whether the artifact store still lists files under ``artifact`` of a version's run (a listing,
        nothing is downloaded)."""
        return bool(self.client().list_artifacts(info["run_id"], artifact))

    def repair(self, name: str) -> tuple[str, str | None] | None:
        """A champion whose artifacts are gone: tag it ``artifacts=missing`` and
        ``promotion=artifacts_missing``, and move ``champion`` to the newest earlier version that was
        champion before (``promotion=demoted``) and still has its files; ``previous`` becomes that
        version's own predecessor. With no such version the alias is removed, so the next candidate
        faces the base model. Runs under the registry lock. Returns (broken version, new champion or
        None), or None when the champion has its files (or there is none)."""
        with self.lock():
            client = self.client()
            current = self.champion(name)
            if current is None or self.has_artifacts(current):
                return None
            broken = current["version"]
            client.set_model_version_tag(name, broken, "artifacts", "missing")
            client.set_model_version_tag(name, broken, "promotion", "artifacts_missing")
            earlier = sorted(
                (v for v in client.search_model_versions(f"name='{name}'") if int(v.version) < int(broken)),
                key=lambda v: int(v.version),
                reverse=True,
            )
            for candidate in earlier:
                info = _version_info(candidate)
                if info["tags"].get("promotion") != "demoted" or not self.has_artifacts(info):
                    continue
                client.set_registered_model_alias(name, CHAMPION, info["version"])
                client.set_model_version_tag(name, info["version"], "promotion", "champion")
                client.set_model_version_tag(name, info["version"], "restored_after", broken)
                before = info["tags"].get("previous_champion")
                if before and before != broken:
                    client.set_registered_model_alias(name, PREVIOUS, before)
                elif self.previous(name) is not None:
                    client.delete_registered_model_alias(name, PREVIOUS)
                return broken, info["version"]
            client.delete_registered_model_alias(name, CHAMPION)
            if self.previous(name) is not None:
                client.delete_registered_model_alias(name, PREVIOUS)
            return broken, None

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


class _GuardedClient:
    """An MlflowClient whose methods run through :meth:`ModelRegistry.guarded`."""

    def __init__(self, client: MlflowClient, registry: ModelRegistry) -> None:
        self._client, self._registry = client, registry

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._registry.guarded(attribute, *args, **kwargs)

        return call


def _version_info(version: Any) -> dict[str, Any]:
    return {
        "name": version.name,
        "version": str(version.version),
        "run_id": version.run_id,
        "source": version.source,
        "tags": dict(version.tags or {}),
        "aliases": list(getattr(version, "aliases", []) or []),
    }
