"""base_model: the model the adapter is trained on, resolved once and recorded."""

from collections.abc import Iterator

import dagster as dg

from assets.params import config_class
from assets.publishing import Stopwatch, code_version, config_overrides, record_stage
from resources.dvc import DvcResource
from resources.models import ModelLoader
from resources.storage import StorageResource

TrainConfig = config_class("train", dg.Config)
# The embedded base is one fixed model: train.seed seeds training, it does not pick another base.
EMBEDDED_BASE_SEED = 0


@dg.asset(
    group_name="model",
    kinds={"transformers", "dvc"},
    # Only train.base_model decides this asset (see STAGE_SOURCES).
    code_version=code_version("base_model"),
    tags={"stage": "base_model"},
)
def base_model(
    config: TrainConfig, storage: StorageResource, dvc: DvcResource, models: ModelLoader
) -> Iterator[dg.MaterializeResult]:
    """The base language model named by `train.base_model`. For the embedded default this directory
    holds the tiny Llama-architecture model itself (random weights, fixed seed, local tokenizer); for
    a hub id or a local directory it holds `base_model.json`, a reference to the weights, which are not
    copied."""
    stopwatch = Stopwatch()
    # prepare_base writes atomically: a failure leaves the previous base_model in place.
    info = models.prepare_base(config.base_model, storage.store().path("base_model"), seed=EMBEDDED_BASE_SEED)
    metadata = {str(k): v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in info.items()}
    overridden = config_overrides(config, "train", ("base_model",))
    yield from record_stage(storage, dvc, {"base_model": metadata}, stopwatch, overridden=overridden)
