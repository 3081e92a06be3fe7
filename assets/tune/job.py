"""hyperparameter_search: an optional job that searches a few ``train`` settings on the validation loss.

It is not part of the asset graph (no schedule or sensor starts it, and it writes no asset, so nothing
goes stale): it reads train_split, validation_split and base_model as they are on disk, trains one
short adapter per trial (assets/tune/search.py) and writes ``tuning/best_params.yaml`` and
``tuning/trials.csv`` under the project root. params.yaml is never changed; the file says how to adopt.
"""

import importlib.util
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from assets.publishing import (
    artifact_store,
    current_config,
    fail,
    inline_markdown,
    stage_settings,
    user_errors,
)
from assets.tune.space import DEFAULT_SPACE
from resources.artifacts import MissingArtifactError, WriteInProgressError
from resources.models import ModelLoader
from resources.storage import StorageResource

JOB_NAME = "hyperparameter_search"
# The job's one op, whose run config is the search's settings (`ops: {search_train_settings: {config: ...}}`);
# a repository needs op and job names to differ.
OP_NAME = "search_train_settings"
# Under the storage root (the project root by default); replaced as a whole by each search.
TUNING_DIR = "tuning"


class HyperparameterSearchConfig(dg.Config):
    """The search's own settings; every other train setting is params.yaml's, read when the run starts."""

    trials: int = Field(
        default=20,
        description="Trials to run. Optuna's TPE samples the first 10 at random, then models the good ones.",
    )
    search_space: dict[str, Any] = Field(
        default=DEFAULT_SPACE,
        description="train setting -> {low, high, log (optional), step (optional)} or {choices: [...]}. "
        "Searchable: learning_rate, warmup_ratio, weight_decay, lr_scheduler, gradient_accumulation_steps, "
        "epochs, lora_r, lora_alpha, lora_dropout, adalora_init_r, adalora_target_r, num_virtual_tokens.",
    )
    max_steps: int = Field(
        default=-1,
        description="Optimizer steps of every trial; -1 trains as long as params.yaml's train section "
        "(max_steps, or epochs). Shorter is cheaper, but the best short run may not be the best long one.",
    )
    sampler_seed: int = Field(default=42, description="Seed of the TPE sampler (train.seed seeds training).")


@dg.op(
    name=OP_NAME,
    tags={"kind": "optuna"},
    description="Trains one adapter per trial with train settings from params.yaml and the trial's values, "
    "scores each by its validation loss and writes the best settings to tuning/best_params.yaml.",
)
def search_train_settings(
    context: dg.OpExecutionContext,
    config: HyperparameterSearchConfig,
    storage: StorageResource,
    models: ModelLoader,
) -> dg.Output[None]:
    if importlib.util.find_spec("optuna") is None:
        raise fail(
            f"{JOB_NAME} needs optuna, an optional dependency: install it with `pip install '.[tune]'` "
            "(make setup installs it)."
        )
    from assets.train.plot import markdown_image
    from assets.train.settings import TrainSettings
    from assets.tune.report import loss_sparkline, search_plot_png, trials_table, write_results
    from assets.tune.search import COMPLETE, run_search
    from assets.tune.space import parse_space

    values = current_config("adapter")
    if config.max_steps != -1:
        values["max_steps"] = config.max_steps
    # Everything is checked before the base model loads: a wrong space fails in a second.
    base = stage_settings(TrainSettings, values)
    with user_errors(JOB_NAME):
        space = parse_space(config.search_space)
    store = artifact_store(storage)
    try:
        train_split, train_md5 = store.load_with_md5("train_split")
        validation_split, validation_md5 = store.load_with_md5("validation_split")
        base_dir = store.require("base_model")
    except (MissingArtifactError, WriteInProgressError) as exc:
        raise fail(f"{JOB_NAME}: {exc}") from None
    inputs = {
        "base_model": store.md5("base_model"),
        "train_split": train_md5,
        "validation_split": validation_md5,
    }
    base_source = models.base_record(base_dir)["source"]
    tokenizer = models.tokenizer(base_dir)
    with user_errors(JOB_NAME):
        result = run_search(
            base,
            space,
            trials=config.trials,
            sampler_seed=config.sampler_seed,
            load_model=lambda: models.causal_lm(base_dir, quantization=base.quantization),
            tokenizer=tokenizer,
            train_rows=train_split.to_list(),
            validation_rows=validation_split.to_list(),
            base_model_source=base_source,
            inputs=inputs,
            log=context.log.info,
        )
    provenance = {
        "base model": base_source,
        **{f"{key} DVC md5": md5 for key, md5 in inputs.items()},
        "Dagster run": context.run_id,
    }
    if config.max_steps != -1:
        full = current_config("adapter")
        length = f"max_steps {full['max_steps']}" if full["max_steps"] > 0 else f"epochs {full['epochs']}"
        provenance["note"] = (
            f"trials were shortened to {config.max_steps} steps (params.yaml trains {length}); the best "
            "short run need not be the best full one"
        )
    best_file = write_results(result, Path(storage.root) / TUNING_DIR, provenance)
    best = result.best
    context.log.info(
        f"best: trial {best.number}, validation loss {best.validation_loss:.4f}; written to {best_file}"
    )
    completed = sum(1 for trial in result.trials if trial.state == COMPLETE)
    fragment = (best_file.read_text(encoding="utf-8").split("\ntrain:\n", 1)[1]).rstrip()
    sizes = (len(result.trials), 10, 5, 3, 1)
    metadata = {
        "best_validation_loss": round(best.validation_loss, 6),
        "best_trial": best.number,
        "best_settings": dg.MetadataValue.md(
            f"Copy into params.yaml's `train:` section to adopt (see `{best_file.name}`):\n\n"
            f"```yaml\ntrain:\n{fragment}\n```"
        ),
        "best_params_file": dg.MetadataValue.path(str(best_file)),
        "trials": inline_markdown(lambda limit: trials_table(result, limit), sizes),
        "validation_loss_by_trial": inline_markdown(
            lambda width: loss_sparkline(result, width), (48, 24, 12)
        ),
        "search_plot": dg.MetadataValue.md(
            markdown_image(search_plot_png(result), "validation loss by setting")
        ),
        "trials_completed": completed,
        "trials_failed": len(result.trials) - completed,
        "trial_steps": best.steps,
        "method": base.method,
        "search_space": dg.MetadataValue.json({d.name: d.describe() for d in space}),
        "inputs": dg.MetadataValue.json(inputs),
    }
    if len(result.trials) > 10:  # the inline table may show only the best; the whole one a click away
        metadata["trials_all"] = dg.MetadataValue.md(trials_table(result))
    return dg.Output(None, metadata=metadata)


@dg.job(
    name=JOB_NAME,
    description="Optional: search a few train settings (Optuna TPE) on the validation loss and write the "
    "best to tuning/best_params.yaml for you to adopt. Reads the splits and base model on disk; changes "
    "no asset and never params.yaml.",
    tags={"kind": "optuna"},
)
def hyperparameter_search() -> None:
    search_train_settings()
