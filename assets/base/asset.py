"""base_model: the model the adapter is trained on, resolved once and recorded."""

from collections.abc import Iterator

import dagster as dg

from assets.publishing import Stopwatch, artifact_store, record_stage, stage_config, stage_policy
from resources.dvc import DvcResource
from resources.models import ModelLoader
from resources.storage import StorageResource

# Only train.base_model decides this asset (see the stage table).
BaseModelConfig = stage_config("base_model")
# The embedded base is one fixed model: train.seed seeds training, it does not pick another base.
EMBEDDED_BASE_SEED = 0


@dg.asset(
    group_name="model",
    kinds={"transformers", "dvc"},
    **stage_policy("base_model"),
)
def base_model(
    context: dg.AssetExecutionContext,
    config: BaseModelConfig,
    storage: StorageResource,
    dvc: DvcResource,
    models: ModelLoader,
) -> Iterator[dg.MaterializeResult]:
    """The base language model named by `train.base_model`. For the embedded default this directory
    holds the tiny Llama-architecture model itself (random weights, fixed seed, local tokenizer); for
    a hub id or a local directory it holds `base_model.json`, a reference to the weights, which are not
    copied. The adapter, evaluation and export all read the base from here."""
    stopwatch = Stopwatch()
    # prepare_base writes atomically: a failure leaves the previous base_model in place.
    out_dir = artifact_store(storage).path("base_model")
    info = models.prepare_base(config.base_model, out_dir, seed=EMBEDDED_BASE_SEED)
    metadata = {str(k): v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in info.items()}
    yield from record_stage(context, config, storage, dvc, {"base_model": metadata}, stopwatch)
