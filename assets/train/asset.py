"""adapter: a PEFT adapter (QLoRA by default) trained on train_split and measured on validation_split."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from assets.publishing import (
    Stopwatch,
    artifact_store,
    inline_markdown,
    record_stage,
    refuse_other_base,
    stage_config,
    stage_policy,
    stage_settings,
    user_errors,
)
from assets.types import Dataset
from resources.dvc import DvcResource
from resources.models import ModelLoader
from resources.storage import StorageResource

# train.base_model is the base_model asset's setting alone (see the stage table).
AdapterConfig = stage_config("adapter")


@dg.asset(
    group_name="model",
    kinds={"peft", "bitsandbytes", "dvc"},
    **stage_policy("adapter"),
)
def adapter(
    context: dg.AssetExecutionContext,
    config: AdapterConfig,
    base_model: Path,
    train_split: Dataset,
    validation_split: Dataset,
    storage: StorageResource,
    dvc: DvcResource,
    models: ModelLoader,
) -> Iterator[dg.MaterializeResult]:
    """An adapter for the base model trained on train_split with `train.method` (QLoRA by default: LoRA
    on the base loaded in 4-bit NF4), loss on assistant tokens only. The directory holds the adapter
    (`save_pretrained`; the whole model for `full`), the tokenizer, `training_config.json` (the
    resolved settings, the method and the base it was trained on), `loss_history.json` and
    `validation_history.json`. A killed run resumes from its last checkpoint in `.cache/train/`."""
    from assets.shared.training_record import read_training_record
    from assets.train.checkpoints import run_key, work_dir_for
    from assets.train.device_defaults import resolve_optimizer, resolve_precision
    from assets.train.distributed import check_launch, train_in_processes
    from assets.train.early_stopping import require_validation
    from assets.train.plot import loss_curve_png, loss_sparklines, markdown_image
    from assets.train.settings import TrainSettings
    from assets.train.training import train_adapter

    stopwatch = Stopwatch()
    # Checked before the base model loads: a wrong method or setting fails in seconds.
    settings = stage_settings(TrainSettings, config.model_dump())
    if settings.method == "adalora":
        # AdaLoRA's rank schedule must fit the run: checked on the row count before the base loads.
        with user_errors("adapter"):
            settings.method_config.check_schedule(settings.total_steps(len(train_split)))
    # auto optimizer and precision follow the device; a precision it cannot run fails before the load.
    device_type = models.device.split(":")[0]
    with user_errors("adapter"):
        precision = resolve_precision(settings.precision, device_type)
        require_validation(settings.early_stopping_patience, len(validation_split))
    resolved = {"optimizer": resolve_optimizer(settings.optimizer, device_type), "precision": precision}
    base_record = models.base_record(base_model)
    # The base on disk must be the one train.base_model names now, or the adapter trains on the old one.
    refuse_other_base("adapter", context, base_record)
    base_source = base_record["source"]
    # A 4-bit base computes in the training precision (QLoRA computes in bfloat16); a full-precision base
    # keeps float32 weights under autocast.
    compute_dtype = precision if settings.quantization and precision != "float32" else "float32"
    if settings.processes > 1:
        with user_errors("adapter"):
            check_launch(settings.processes, models.device)
    else:
        # With more processes each rank loads the base on its own device (assets/train/worker.py).
        # Loaded by train_adapter only once the rows proved trainable: bad data fails in seconds.
        def load_model() -> object:
            return models.causal_lm(base_model, quantization=settings.quantization, dtype=compute_dtype)

        tokenizer = models.tokenizer(base_model)
    # train_adapter writes atomically: a failed or interrupted run leaves the previous adapter in place.
    store = artifact_store(storage)
    out_dir = store.path("adapter")
    # Hashed before training: the record says what this adapter was trained from.
    inputs = {key: store.md5(key) for key in ("base_model", "train_split", "validation_split")}
    # Checkpoints are kept per inputs and settings: a re-run after a kill resumes only the same run.
    # Keyed by the resolved optimizer and precision: a GPU run's checkpoints never resume on a CPU.
    key = run_key(inputs, {**config.model_dump(), **resolved}, base_source)
    work_dir = work_dir_for(Path(storage.root), key)
    with user_errors("adapter"):
        if settings.processes > 1:
            result = train_in_processes(
                settings,
                base_dir=base_model,
                train_path=store.require("train_split"),
                validation_path=store.require("validation_split"),
                out_dir=out_dir,
                device=models.device,
                dtype=compute_dtype,
                base_model_source=base_source,
                inputs=inputs,
                work_dir=work_dir,
                log=context.log.info,
            )
        else:
            result = train_adapter(
                load_model,
                tokenizer,
                train_split.to_list(),
                validation_split.to_list(),
                settings,
                out_dir,
                base_model_source=base_source,
                inputs=inputs,
                work_dir=work_dir,
                log=context.log.info,
            )
    losses = [h["loss"] for h in result.loss_history if "loss" in h]
    # Threads and deterministic mode training ran under, as its training record says.
    reproducibility = read_training_record(out_dir).reproducibility
    metadata = {
        "base_model": base_source,
        "train_rows": len(train_split),
        "validation_rows": len(validation_split),
        "steps": result.steps,
        "first_loss": round(losses[0], 4) if losses else None,
        "final_loss": round(losses[-1], 4) if losses else None,
        "validation_loss": None if result.eval_loss is None else round(result.eval_loss, 4),
        "trainable_params": result.trainable_params,
        "total_params": result.total_params,
        "train_runtime_s": round(result.train_runtime_s, 2),
        "quantization": settings.quantization or "none",
        "method": result.method,
        "mergeable": result.mergeable,
        "gradient_checkpointing": result.gradient_checkpointing,
        "processes": settings.processes,
        "effective_batch_size": settings.effective_batch_size,
        "gradient_checkpointing_reason": result.gradient_checkpointing_reason,
        "batching": f"{result.batching} ({result.batching_reason})",
        "padding_efficiency": None
        if result.padding_efficiency is None
        else round(result.padding_efficiency, 3),
        "optimizer": result.optimizer,
        "precision": result.precision,
        "early_stopping_patience": settings.early_stopping_patience,
        "best_step": result.best_step,
        "best_eval_loss": None if result.best_eval_loss is None else round(result.best_eval_loss, 4),
        "stopped_early_at_step": result.stopped_early_at_step,
        "resumed_from_step": result.resumed_from_step,
        "num_threads": reproducibility.get("num_threads"),
        "deterministic_algorithms": reproducibility.get("deterministic_algorithms"),
        "rows_longer_than_max_seq_length": result.truncation.longer_than_limit,
        "answers_cut_by_max_seq_length": result.truncation.answers_cut,
        "truncation": settings.truncation,
        "rows_dropped_cut_answer": result.truncation.dropped_cut_answer,
        "rows_dropped_no_answer_token": result.truncation.dropped_no_answer_token,
        # Inline (short enough for the UI to show without a click), and the full plot one click away.
        "loss_curve": inline_markdown(
            lambda width: loss_sparklines(result.loss_history, result.validation_history, width), (48, 32, 16)
        ),
        "loss_curve_plot": dg.MetadataValue.md(
            markdown_image(
                loss_curve_png(
                    result.loss_history, validation=result.validation_history, title="adapter loss"
                ),
                "training and validation loss",
            )
        ),
    }
    yield from record_stage(context, config, storage, dvc, {"adapter": metadata}, stopwatch)
