"""base_model: the model the adapter is trained on, resolved once and recorded."""

from collections.abc import Iterator

import dagster as dg

from assets.publishing import Stopwatch, artifact_store, fail, record_stage, stage_config, stage_policy
from resources.dvc import DvcResource
from resources.models import ModelLoader
from resources.storage import StorageResource


def check_run_settings(context: dg.AssetExecutionContext) -> None:
    """Fail with every bad setting of this run (:func:`assets.preflight.preflight`), each named by its
    ``section.key``."""
    from assets.preflight import preflight, run_stages

    # The run's selection; None or empty (a whole job, an ephemeral `materialize`): check every stage.
    selection = context.run.asset_selection
    names = run_stages([key.to_user_string() for key in selection] if selection else None)
    try:
        # params.yaml of the project the definitions were loaded from (their Config defaults).
        preflight(names, run_config=context.run.run_config)
    except ValueError as exc:  # ParamsError or InputError: both are messages for the user
        raise fail(f"base_model checks every setting of the run before its first steps: {exc}") from None


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
    # The first step of a run launched from the UI (nothing upstream of it; clean and so every later data
    # stage wait for it): every setting of the run is checked here, with its launchpad overrides, so a bad
    # train.method fails now instead of at adapter. The CLI, schedule and sensor check before launching.
    check_run_settings(context)
    # prepare_base writes atomically: a failure leaves the previous base_model in place.
    out_dir = artifact_store(storage).path("base_model")
    info = models.prepare_base(config.base_model, out_dir, seed=EMBEDDED_BASE_SEED)
    metadata = {str(k): v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in info.items()}
    yield from record_stage(context, config, storage, dvc, {"base_model": metadata}, stopwatch)
