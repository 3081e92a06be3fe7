"""Loads persisted assets for downstream assets, checks and `defs.load_asset_value`."""

from __future__ import annotations

from typing import Any

import dagster as dg

from assets.stages import ARTIFACTS
from resources.artifacts import READ_MD5, READ_PATH, MissingArtifactError, WriteInProgressError
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
        """The upstream value; the step's "loaded input" event records the path and DVC md5 of what was
        read (the UI shows it; assets/publishing.py hands them to DVC, which records these md5s rather
        than the files as they are when the stage ends)."""
        store = self.storage.store(ARTIFACTS)
        key = context.asset_key.to_user_string()
        try:
            value, md5 = store.load_with_md5(key)
        except MissingArtifactError as exc:
            # An upstream asset that was never materialized here is the user's to fix, not a bug.
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        except WriteInProgressError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        context.add_input_metadata({READ_PATH: str(store.path(key)), READ_MD5: md5})
        return value
