"""Fine-tune a base model with the method ``train.method`` picks (assets/train/methods/): QLoRA by default
(Dettmers et al., 2023), LoRA, DoRA, AdaLoRA, IA3, prefix/prompt/P-tuning or full fine-tuning.

The loop is transformers' Trainer, seeded and with every integration off. Checkpoints go to a persistent
work directory (when given) with a completion marker each, so a killed run resumes from its last
complete checkpoint; progress goes to a plain ``log`` callable while it runs. What is left behind is the
output directory, written atomically: the adapter (or the whole model, for ``full``) and tokenizer,
``training_config.json`` (resolved settings, method, base model, library versions; no timestamps, so
the same inputs give the same bytes), ``loss_history.json`` and ``validation_history.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assets.shared.errors import InputError
from assets.shared.training_record import TrainingRecord
from assets.train.activation_memory import choose_gradient_checkpointing, free_bytes
from assets.train.batching import BatchCollator, choose_batching
from assets.train.checkpoints import completion_callback, last_complete_checkpoint
from assets.train.determinism import deterministic_training
from assets.train.device_defaults import AUTO, resolve_optimizer, resolve_precision
from assets.train.distributed import is_main_process
from assets.train.early_stopping import early_stopping_callbacks, require_validation
from assets.train.early_stopping import training_arguments as early_stopping_arguments
from assets.train.loss import weighted_loss_trainer
from assets.train.methods.adalora import rank_allocation_callback
from assets.train.progress import progress_callback
from assets.train.settings import TrainSettings
from assets.train.truncation import TruncationCounts, fit_rows
from resources.artifacts import atomic_directory

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

LOSS_HISTORY_FILE = "loss_history.json"
VALIDATION_HISTORY_FILE = "validation_history.json"
_VERSIONED_LIBRARIES = ("torch", "transformers", "peft", "accelerate", "bitsandbytes")
# Checkpoints kept in the work directory: the newest may be the one being written when a kill comes.
_CHECKPOINTS_KEPT = 2
# Trainer log values kept in loss_history.json beside the loss, when the Trainer logs them.
_CURVE_KEYS = ("learning_rate", "grad_norm", "num_input_tokens_seen")


@dataclass(frozen=True)
class TrainResult:
    """What a training run measured; the adapter itself is on disk, ``model`` is the trained one."""

    loss_history: list[dict[str, float]] = field(repr=False)
    validation_history: list[dict[str, float]] = field(repr=False)
    eval_loss: float | None
    train_runtime_s: float
    steps: int
    trainable_params: int
    total_params: int
    train_examples: int
    validation_examples: int
    method: str
    mergeable: bool
    gradient_checkpointing: bool
    resumed_from_step: int | None
    truncation: TruncationCounts
    # Why checkpointing is on or off (train.gradient_checkpointing, assets/train/activation_memory.py).
    gradient_checkpointing_reason: str = ""
    # train.batching as resolved for the device ("auto" never), why, and real / processed tokens.
    batching: str = "padded"
    batching_reason: str = ""
    padding_efficiency: float | None = None
    # Real (non-padding) tokens of the training batches this process collated.
    train_tokens: int = 0
    model: Any = field(repr=False, default=None)
    # What train.optimizer and train.precision resolved to on this device (assets/train/device_defaults.py).
    optimizer: str = ""
    precision: str = ""
    # Early stopping (train.early_stopping_patience > 0): the step whose adapter was kept, its validation
    # loss, and the step training stopped at when it stopped before the end (None otherwise).
    best_step: int | None = None
    best_eval_loss: float | None = None
    stopped_early_at_step: int | None = None


def _library_versions() -> dict[str, str]:
    versions = {}
    for name in _VERSIONED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _is_quantized(model: PreTrainedModel) -> bool:
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_quantized", False))


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _wrap(
    model: PreTrainedModel, settings: TrainSettings, total_steps: int, *, checkpointing: bool
) -> PreTrainedModel:
    """The model to train: the base with the method's peft adapter, or the base itself for ``full``."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    if _is_quantized(model):
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        # With a frozen base and reentrant-free checkpointing, inputs still need grads for the adapter's.
        model.enable_input_require_grads()
    peft_config = settings.method_entry.build(
        settings.method_config, settings.method, total_steps=total_steps
    )
    if peft_config is None:
        return model
    return get_peft_model(model, peft_config)


def _parameter_counts(model: PreTrainedModel) -> tuple[int, int]:
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
        return int(trainable), int(total)
    parameters = list(model.parameters())
    return sum(p.numel() for p in parameters if p.requires_grad), sum(p.numel() for p in parameters)


def train_adapter(
    model: PreTrainedModel | Callable[[], PreTrainedModel],
    tokenizer: PreTrainedTokenizerBase,
    train_rows: Iterable[Mapping[str, Any]],
    validation_rows: Iterable[Mapping[str, Any]],
    settings: TrainSettings,
    out_dir: Path,
    *,
    base_model_source: str,
    inputs: Mapping[str, str] | None = None,
    work_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train ``model`` (wrapped in place) with ``settings.method`` and write the result to ``out_dir``
    atomically. ``model`` may be a zero-argument loader: it is called only after the rows were tokenized
    and found trainable, so bad data fails before a large base is loaded.

    Rows are canonical examples (a ``messages`` list each); the loss covers assistant tokens only. Rows
    longer than ``max_seq_length`` follow ``settings.truncation`` (assets/train/truncation.py) and are
    counted in ``truncation``.
    ``inputs`` (asset key -> DVC md5 of the base and splits trained from) goes into the training record,
    so evaluation and registration can refuse an adapter trained on other data. ``base_model_source``
    names the base as the base_model asset recorded it (a hub id, a directory as configured, or
    ``embedded``): it goes into the training record and ``adapter_config.json``.

    ``work_dir``: a persistent directory for this run's checkpoints (every ``save_steps`` steps). When it
    holds a complete checkpoint the run resumes from it (``resumed_from_step``); it is emptied once the
    output is written. None: a temporary directory, no resume. ``log`` receives progress lines.
    Validation loss is measured every ``eval_steps`` steps and at the end; ``eval_loss`` is None when no
    validation row has an assistant token within ``max_seq_length``.

    ``optimizer`` and ``precision`` ``auto`` resolve for the model's device (assets/train/device_defaults.py)
    and the resolved values go into the record. With ``early_stopping_patience`` > 0 training stops after
    that many evaluations without a validation loss drop of more than ``early_stopping_threshold``, and
    the adapter written is the one of the lowest validation loss (``best_step``).
    Raises InputError for an unknown optimizer, a precision the device cannot run, early stopping without
    a scorable validation row, no trainable row, or a loss that became NaN.
    """
    from transformers import PrinterCallback, Trainer, TrainingArguments, set_seed
    from transformers.training_args import OptimizerNames

    limit, rule = settings.max_seq_length, settings.truncation
    validation_rows = list(validation_rows)
    train_features, truncation = fit_rows(tokenizer, train_rows, max_seq_length=limit, rule=rule)
    eval_features, _ = fit_rows(tokenizer, validation_rows, max_seq_length=limit, rule=rule)
    if not train_features:
        raise InputError(
            f"No training row has an assistant token within train.max_seq_length ({limit}) under "
            f"train.truncation {rule!r}: check that train_split is not empty and has assistant answers."
        )
    if validation_rows and not eval_features:
        # A validation split that exists but cannot be scored would train blind: no curve, no early
        # stopping, no best step. Turning validation off is a split setting, so it must be explicit.
        raise InputError(
            f"None of the {len(validation_rows)} validation_split rows has an assistant token within "
            f"train.max_seq_length ({limit}) under train.truncation {rule!r}: raise "
            "train.max_seq_length, or set split.validation_fraction to 0 to train without validation."
        )
    patience = settings.early_stopping_patience
    require_validation(patience, len(eval_features), scorable=True)
    if callable(model) and not hasattr(model, "config"):
        model = model()
    device_type = model.device.type
    optimizer = resolve_optimizer(settings.optimizer, device_type)
    allowed_optimizers = {o.value for o in OptimizerNames}
    if optimizer not in allowed_optimizers:
        raise InputError(
            f"train.optimizer = {settings.optimizer!r} (params.yaml) is not a transformers optimizer; "
            f"choose one of {sorted(allowed_optimizers)}, or {AUTO!r} to pick by device."
        )
    precision = resolve_precision(settings.precision, device_type)
    if log is not None and truncation.answers_cut:
        log(
            f"{truncation.answers_cut} of {truncation.rows} training rows have an answer cut by "
            f"train.max_seq_length ({limit}); train.truncation {rule!r}: "
            + ("the cut answers are not trained" if rule == "trim" else "those rows are dropped")
        )
    total_steps = settings.total_steps(len(train_features))
    checkpointing = choose_gradient_checkpointing(
        settings.gradient_checkpointing,
        method_allows=settings.method_entry.gradient_checkpointing,
        config=model.config,
        rows=settings.batch_size,
        tokens=max(len(f["input_ids"]) for f in train_features),
        bytes_per_value=_bytes_per_activation(model),
        free=free_bytes(model.device),
    )
    if log is not None:
        log(f"Gradient checkpointing {'on' if checkpointing.enabled else 'off'} ({checkpointing.reason}).")
    try:
        # Seed before the adapter exists: LoRA's A matrices and soft prompts are randomly initialized.
        set_seed(settings.seed)
        model = _wrap(model, settings, total_steps, checkpointing=checkpointing.enabled)
    except ValueError as exc:  # a schedule or module list peft refuses for this model
        raise InputError(f"train.method {settings.method!r}: {exc}") from None
    trainable_params, total_params = _parameter_counts(model)
    try:
        batching = choose_batching(
            settings.batching,
            method=settings.method,
            device_type=model.device.type,
            attention=getattr(model.config, "_attn_implementation", None),
        )
    except ValueError as exc:
        raise InputError(f"{exc} (params.yaml, section train).") from None
    if log is not None:
        log(f"Batching: {batching.name} ({batching.reason}).")
    collator = BatchCollator(batching.name, pad_token_id=tokenizer.pad_token_id)

    scratch = None
    if work_dir is None:
        scratch = tempfile.TemporaryDirectory(prefix="train-scratch-")
        work_dir = Path(scratch.name)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    # Under torchrun every rank finds the same checkpoint; only rank 0 deletes incomplete ones.
    resume_from = last_complete_checkpoint(work_dir, prune=is_main_process())
    # Fixed threads and deterministic kernels while training: same inputs, same adapter bytes on any
    # machine (assets/train/determinism.py). Restored in the finally below.
    pinned = contextlib.ExitStack()
    reproducibility = pinned.enter_context(deterministic_training(settings.num_threads))
    try:
        args = TrainingArguments(
            output_dir=str(work_dir),
            per_device_train_batch_size=settings.batch_size,
            per_device_eval_batch_size=settings.batch_size,
            gradient_accumulation_steps=settings.gradient_accumulation_steps,
            learning_rate=settings.learning_rate,
            num_train_epochs=settings.epochs,
            max_steps=settings.max_steps,
            warmup_steps=settings.warmup_ratio,  # a float in [0, 1) is a fraction of the total steps
            lr_scheduler_type=settings.lr_scheduler,
            weight_decay=settings.weight_decay,
            optim=optimizer,
            bf16=precision == "bfloat16",
            fp16=precision == "float16",
            train_sampling_strategy="group_by_length" if batching.name == "group_by_length" else "random",
            seed=settings.seed,
            data_seed=settings.seed,
            logging_strategy="steps",
            logging_steps=1,
            include_num_input_tokens_seen="non_padding",
            save_strategy="steps",
            save_steps=settings.save_steps,
            save_total_limit=_CHECKPOINTS_KEPT,
            eval_strategy="steps" if eval_features else "no",
            eval_steps=settings.eval_steps,
            report_to="none",
            # transformers replaces a NaN/inf step loss by the running mean in the logged loss by default,
            # so a diverged run would look finished; logged as it is, the check after training sees it.
            logging_nan_inf_filter=False,
            disable_tqdm=True,
            remove_unused_columns=False,
            dataloader_num_workers=0,
            dataloader_pin_memory=False,
            use_cpu=device_type == "cpu",
            **early_stopping_arguments(patience),
        )
        callbacks = [
            completion_callback(),
            *early_stopping_callbacks(patience, settings.early_stopping_threshold),
        ]
        if log is not None:
            callbacks.append(
                progress_callback(
                    log, every_steps=settings.log_every_steps, every_seconds=settings.log_every_seconds
                )
            )
        if settings.method == "adalora":
            callbacks.append(rank_allocation_callback())
        # Per-turn weights in the loss (assets/train/loss.py); evaluation leaves the RNG as it was.
        trainer = _rng_neutral_evaluation(weighted_loss_trainer(Trainer))(
            model=model,
            args=args,
            train_dataset=train_features,
            eval_dataset=eval_features or None,
            data_collator=collator,
            callbacks=callbacks,
        )
        # The histories are returned and saved; printing every step to stdout only adds noise.
        trainer.remove_callback(PrinterCallback)
        started = time.perf_counter()
        output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        runtime = time.perf_counter() - started
        validation_history = [
            {"step": int(entry["step"]), "eval_loss": float(entry["eval_loss"])}
            for entry in trainer.state.log_history
            if "eval_loss" in entry
        ]
        eval_loss = None
        best_step = trainer.state.best_global_step if patience else None
        if best_step:
            # load_best_model_at_end has put the best checkpoint's weights back: they are what is saved.
            eval_loss = float(trainer.state.best_metric)
        elif validation_history and validation_history[-1]["step"] == output.global_step:
            eval_loss = validation_history[-1]["eval_loss"]
        elif eval_features:
            eval_loss = float(trainer.evaluate()["eval_loss"])
            validation_history.append({"step": int(output.global_step), "eval_loss": eval_loss})
        # The curves the registry's MLflow run charts (assets/shared/training_curves.py) come from here.
        history = [
            {
                "step": int(entry["step"]),
                "loss": float(entry["loss"]),
                "epoch": float(entry["epoch"]),
                **{key: entry[key] for key in _CURVE_KEYS if key in entry},
            }
            for entry in trainer.state.log_history
            if "loss" in entry
        ]
    finally:
        pinned.close()
        if scratch is not None:
            scratch.cleanup()
    if not all(math.isfinite(entry["loss"]) for entry in history):
        raise InputError("Training loss became NaN or infinite; lower train.learning_rate or check the data.")

    chosen = settings.method_entry
    stopped_early_at_step = None
    if patience and output.global_step < trainer.state.max_steps:
        stopped_early_at_step = int(output.global_step)
    if log is not None and best_step:
        stopped = (
            f"stopped early at step {stopped_early_at_step}"
            if stopped_early_at_step
            else "trained to the end"
        )
        log(f"early stopping: {stopped}; keeping step {best_step} (validation loss {eval_loss:.4f})")
    record = TrainingRecord(
        settings={**asdict(settings), "optimizer": optimizer, "precision": precision},
        base_model={"source": base_model_source, "model_type": model.config.model_type},
        library_versions=_library_versions(),
        train_examples=len(train_features),
        validation_examples=len(eval_features),
        steps=int(output.global_step),
        trainable_params=trainable_params,
        total_params=total_params,
        inputs=dict(inputs or {}),
        method=settings.method,
        mergeable=chosen.mergeable,
        reproducibility=reproducibility,
        batching=batching.name,
        padding_efficiency=_rounded(collator.padding_efficiency),
        best_step=int(best_step) if best_step else None,
        stopped_early_at_step=stopped_early_at_step,
    )
    if is_main_process():
        # DDP keeps every rank's weights identical: rank 0 alone writes them (assets/train/distributed.py).
        with atomic_directory(out_dir) as staging:
            _save_model(model, staging, base_model_source)
            tokenizer.save_pretrained(staging)
            record.write(staging)
            _write_json(staging / LOSS_HISTORY_FILE, history)
            _write_json(staging / VALIDATION_HISTORY_FILE, validation_history)
        if scratch is None:
            # The output is safe on disk: this run's checkpoints are no longer needed.
            shutil.rmtree(work_dir, ignore_errors=True)
    return TrainResult(
        loss_history=history,
        validation_history=validation_history,
        eval_loss=eval_loss,
        train_runtime_s=runtime,
        steps=int(output.global_step),
        trainable_params=trainable_params,
        total_params=total_params,
        train_examples=len(train_features),
        validation_examples=len(eval_features),
        method=settings.method,
        mergeable=chosen.mergeable,
        gradient_checkpointing=checkpointing.enabled,
        gradient_checkpointing_reason=checkpointing.reason,
        resumed_from_step=int(resume_from.name.split("-")[1]) if resume_from else None,
        truncation=truncation,
        batching=batching.name,
        batching_reason=batching.reason,
        padding_efficiency=collator.padding_efficiency,
        train_tokens=collator.real_tokens,
        model=model,
        optimizer=optimizer,
        precision=precision,
        best_step=int(best_step) if best_step else None,
        best_eval_loss=eval_loss if best_step else None,
        stopped_early_at_step=stopped_early_at_step,
    )


def _bytes_per_activation(model: PreTrainedModel) -> int:
    """Bytes of one activation value: the width of the model's floating-point (compute) parameters."""
    import torch

    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    return torch.finfo(dtype).bits // 8


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _rng_neutral_evaluation(trainer_class: type) -> type:
    """``trainer_class`` whose ``evaluate`` leaves torch's random state as it found it.

    An evaluation's data loader draws its seed from the global generator, which would shift every later
    dropout mask: the trained weights would then depend on ``eval_steps``. With the state restored, the
    same settings train the same adapter whether or how often validation runs.
    """
    import torch

    class RngNeutralEvaluation(trainer_class):  # type: ignore[misc, valid-type]
        def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
            with torch.random.fork_rng():
                return super().evaluate(*args, **kwargs)

    return RngNeutralEvaluation


def _save_model(model: Any, staging: Path, base_model_source: str) -> None:
    """The adapter (peft ``save_pretrained``) or, for full fine-tuning, the whole model."""
    peft_config = getattr(model, "peft_config", None)
    if peft_config is not None:
        adapter_config = peft_config["default"]
        # peft records the base's load path, which differs per checkout; the configured source is stable,
        # so the same training gives the same adapter bytes on every machine.
        adapter_config.base_model_name_or_path = base_model_source
        # peft keeps resolved module lists in sets; sorted lists make adapter_config.json stable.
        for name in ("target_modules", "feedforward_modules"):
            value = getattr(adapter_config, name, None)
            if isinstance(value, set | frozenset):
                setattr(adapter_config, name, sorted(value))
    else:
        # Gradient checkpointing is a training switch; the saved config should load like the base.
        model.config.use_cache = True
    model.save_pretrained(staging)
    # peft writes a model card template full of "[More Information Needed]"; training_config.json
    # is the honest record of this adapter.
    (staging / "README.md").unlink(missing_ok=True)
