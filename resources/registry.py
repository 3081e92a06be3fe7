"""The model registry (MLflow): adapter versions, their lineage tags, and the `champion` alias."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from resources.project import PROJECT_ROOT

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION = "champion"
DEFAULT_TRACKING_URI = f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"


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


class ModelRegistry(dg.ConfigurableResource):
    """An MLflow tracking store plus model registry.

    Each registered version is one adapter; its tags carry the lineage (DVC md5 of each split, params
    hash, git commit, Dagster run id, base model). Registering the same adapter bytes twice returns the
    existing version, so re-running an unchanged pipeline does not pile up versions.
    """

    tracking_uri: str = DEFAULT_TRACKING_URI
    # Where run artifacts (the adapter files) go for a new experiment with a local (SQLite/file) store;
    # a tracking server uses its own artifact store.
    artifact_location: str = str(PROJECT_ROOT / "mlartifacts")
    experiment: str = "finetune"

    def client(self) -> MlflowClient:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def _experiment_id(self, client: MlflowClient) -> str:
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        if not self.tracking_uri.startswith(("sqlite:", "file:")) and "://" in self.tracking_uri:
            # A tracking server chooses where artifacts go (its artifact store), reachable by every
            # machine; a local directory here would be readable only on this one.
            return client.create_experiment(self.experiment)
        location = self.artifact_location
        if "://" not in location:
            location = Path(location).resolve().as_uri()
        return client.create_experiment(self.experiment, artifact_location=location)

    def find_version(self, name: str, tag: str, value: str) -> dict[str, Any] | None:
        """The newest version of ``name`` whose tag ``tag`` equals ``value``."""
        versions = self.client().search_model_versions(f"name='{name}' and tag.`{tag}`='{value}'")
        if not versions:
            return None
        return _version_info(max(versions, key=lambda v: int(v.version)))

    def register(
        self,
        name: str,
        adapter_dir: Path,
        *,
        tags: dict[str, str],
        metrics: dict[str, float],
        params: dict[str, Any],
    ) -> dict[str, Any]:
        """Log ``adapter_dir`` as a run's artifacts and register it as a new version of ``name``."""
        from mlflow.exceptions import MlflowException

        client = self.client()
        run = client.create_run(self._experiment_id(client), tags=tags, run_name=f"{name}-candidate")
        run_id = run.info.run_id
        try:
            for key, value in sorted(params.items()):
                client.log_param(run_id, key, str(value)[:500])
            for key, value in sorted(metrics.items()):
                client.log_metric(run_id, key, float(value))
            client.log_artifacts(run_id, str(adapter_dir), "adapter")
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

    def champion(self, name: str) -> dict[str, Any] | None:
        """The version holding the champion alias, or None before the first promotion. Any other
        registry error (a server that cannot be reached, no permission) propagates: reading it as "no
        champion" would quietly compare candidates with the base model instead."""
        from mlflow.exceptions import MlflowException

        try:
            return _version_info(self.client().get_model_version_by_alias(name, CHAMPION))
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None  # no such model yet, or no alias yet
            raise

    def promote(self, name: str, version: str) -> None:
        self.client().set_registered_model_alias(name, CHAMPION, version)

    def tag(self, name: str, version: str, key: str, value: str) -> None:
        self.client().set_model_version_tag(name, version, key, value)

    def download_adapter(self, info: dict[str, Any], destination: Path) -> Path:
        """Copy a version's adapter files to ``destination`` and return the adapter directory."""
        destination.mkdir(parents=True, exist_ok=True)
        path = self.client().download_artifacts(info["run_id"], "adapter", str(destination))
        return Path(path)


def _version_info(version: Any) -> dict[str, Any]:
    return {
        "name": version.name,
        "version": str(version.version),
        "run_id": version.run_id,
        "source": version.source,
        "tags": dict(version.tags or {}),
        "aliases": list(getattr(version, "aliases", []) or []),
    }
