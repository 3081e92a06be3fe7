"""The project's artifact storage as a Dagster resource: data/ and models/ under one root."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from resources.artifacts import Artifact, ArtifactStore
from resources.project import PROJECT_ROOT


class StorageResource(dg.ConfigurableResource):
    """Where assets write their outputs; the IO manager reads them from the same place."""

    root: str = str(PROJECT_ROOT)

    def store(self, artifacts: Mapping[str, Artifact]) -> ArtifactStore:
        """The store of this root for ``artifacts`` (the pipeline's table: assets/stages.py)."""
        return ArtifactStore(Path(self.root), artifacts)
