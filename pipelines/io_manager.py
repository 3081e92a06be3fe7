"""Loads persisted assets for downstream assets, checks and `defs.load_asset_value`."""

from __future__ import annotations

from typing import Any

import dagster as dg

from assets.stages import ARTIFACTS
from resources.artifacts import MissingArtifactError
from resources.storage import StorageResource


class ArtifactIOManager(dg.ConfigurableIOManager):
    """Datasets come back as `datasets.Dataset` (from Parquet), models as directory paths, reports as
    dicts. Assets write through the artifact store themselves (see assets/publishing.py), so
    handle_output only accepts the None that a MaterializeResult leaves behind."""

    storage: StorageResource

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is not None:
            raise TypeError(
                f"Asset {context.asset_key.to_user_string()} returned a value; pipeline assets write "
                "through the artifact store and return MaterializeResult."
            )

    def load_input(self, context: dg.InputContext) -> Any:
        try:
            return self.storage.store(ARTIFACTS).load(context.asset_key.to_user_string())
        except MissingArtifactError as exc:
            # An upstream asset that was never materialized here is the user's to fix, not a bug.
            raise dg.Failure(description=str(exc), allow_retries=False) from None
