"""The project's artifact storage as a Dagster resource: data/ and models/ under one root."""

from __future__ import annotations

import dagster as dg

from resources.artifacts import ArtifactStore
from resources.project import PROJECT_ROOT


class StorageResource(dg.ConfigurableResource):
    """Where assets write their outputs; the IO manager reads them from the same place."""

    root: str = str(PROJECT_ROOT)

    def store(self) -> ArtifactStore:
        from pathlib import Path

        return ArtifactStore(Path(self.root))
