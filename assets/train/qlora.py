"""Fine-tune a LoRA adapter on a (4-bit) base model: QLoRA (Dettmers et al., 2023).

The loop is transformers' Trainer, seeded and with every integration off; the only thing left behind is
the output directory: the adapter and tokenizer, ``training_config.json`` (resolved settings, base model,
library versions; no timestamps, so the same inputs give the same bytes) and ``loss_history.json``.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assets.shared.chat import pad_batch, tokenize_rows
from assets.shared.errors import InputError
from assets.shared.training_record import TrainingRecord
from resources.artifacts import atomic_directory
from resources.model_loading import QUANTIZATIONS

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

LOSS_HISTORY_FILE = "loss_history.json"
_VERSIONED_LIBRARIES = ("torch", "transformers", "peft", "accelerate", "bitsandbytes")


@dataclass(frozen=True)
class TrainSettings:
    """The ``train`` section of params.yaml, validated. See params.yaml for what each field means."""

    quantization: str | None
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    target_modules: str | tuple[str, ...]
    learning_rate: float
    epochs: float
    max_steps: int
    batch_size: int
    gradient_accumulation_steps: int
    max_seq_length: int
    warmup_ratio: float
    weight_decay: float
    optimizer: str
    seed: int

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, list):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))
        # YAML users write "none" as often as null for "no quantization".
        if isinstance(self.quantization, str) and self.quantization.lower() == "none":
            object.__setattr__(self, "quantization", None)
        problems = []
        if self.quantization is not None and self.quantization not in QUANTIZATIONS:
            problems.append(f"quantization must be null or one of {QUANTIZATIONS}; got {self.quantization!r}")
        for name in ("lora_r", "lora_alpha", "batch_size", "gradient_accumulation_steps", "max_seq_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a positive integer; got {value!r}")
        if not 0.0 <= self.lora_dropout < 1.0:
            problems.append(f"lora_dropout must be in [0, 1); got {self.lora_dropout!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            problems.append(f"warmup_ratio must be in [0, 1); got {self.warmup_ratio!r}")
        if not self.learning_rate > 0:
            problems.append(f"learning_rate must be > 0; got {self.learning_rate!r}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0; got {self.weight_decay!r}")
        if self.max_steps == 0 or self.max_steps < -1:
            problems.append(
                f"max_steps must be -1 (use epochs) or a positive integer; got {self.max_steps!r}"
            )
        if self.max_steps == -1 and not self.epochs > 0:
            problems.append(f"epochs must be > 0 when max_steps is -1; got {self.epochs!r}")
        targets = self.target_modules
        if (isinstance(targets, str) and targets != "all-linear") or (
            isinstance(targets, tuple) and not targets
        ):
            problems.append(f"target_modules must be 'all-linear' or a list of module names; got {targets!r}")
        if problems:
            raise ValueError(
                "Invalid train settings (params.yaml, section train): " + "; ".join(problems) + "."
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainSettings:
        """Build from the ``train`` section of params.yaml, naming unknown or missing keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        missing = sorted(known - set(values))
        if unknown or missing:
            raise ValueError(
                f"params.yaml section train: unknown keys {unknown}, missing keys {missing}; "
                f"expected exactly {sorted(known)}."
            )
        return cls(**values)


@dataclass(frozen=True)
class TrainResult:
    """What a training run measured; the adapter itself is on disk."""

    loss_history: list[dict[str, float]] = field(repr=False)
    eval_loss: float | None
    train_runtime_s: float
    steps: int
    trainable_params: int
    total_params: int
    train_examples: int
    validation_examples: int


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


def train_adapter(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train_rows: Iterable[Mapping[str, Any]],
    validation_rows: Iterable[Mapping[str, Any]],
    settings: TrainSettings,
    out_dir: Path,
    *,
    base_model_source: str,
    inputs: Mapping[str, str] | None = None,
) -> TrainResult:
    """Train a LoRA adapter on ``model`` (wrapped in place) and write it to ``out_dir`` atomically.

    Rows are canonical examples (a ``messages`` list each); the loss covers assistant tokens only.
    ``inputs`` (asset key -> DVC md5 of the base and splits trained from) goes into the training record,
    so evaluation and registration can refuse an adapter trained on other data. ``base_model_source``
    names the base as the base_model asset recorded it (a hub id, a directory as configured, or
    ``embedded``): it goes into the training record and ``adapter_config.json``.
    ``eval_loss`` is None when no validation row has an assistant token within ``max_seq_length``.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import PrinterCallback, Trainer, TrainingArguments, set_seed
    from transformers.training_args import OptimizerNames

    allowed_optimizers = {o.value for o in OptimizerNames}
    if settings.optimizer not in allowed_optimizers:
        raise InputError(
            f"train.optimizer = {settings.optimizer!r} (params.yaml) is not a transformers optimizer; "
            f"choose one of {sorted(allowed_optimizers)}."
        )
    train_features = tokenize_rows(tokenizer, train_rows, max_seq_length=settings.max_seq_length)
    eval_features = tokenize_rows(tokenizer, validation_rows, max_seq_length=settings.max_seq_length)
    if not train_features:
        raise InputError(
            "No training row has an assistant token within train.max_seq_length "
            f"({settings.max_seq_length}): check that train_split is not empty and has assistant answers."
        )

    # Seed before the adapter exists: LoRA's A matrices are randomly initialized.
    set_seed(settings.seed)
    if _is_quantized(model):
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    targets = settings.target_modules
    lora_config = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=targets if isinstance(targets, str) else list(targets),
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora_config)
    trainable_params, total_params = model.get_nb_trainable_parameters()
    pad_id = tokenizer.pad_token_id

    with tempfile.TemporaryDirectory(prefix="train-scratch-") as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            per_device_train_batch_size=settings.batch_size,
            per_device_eval_batch_size=settings.batch_size,
            gradient_accumulation_steps=settings.gradient_accumulation_steps,
            learning_rate=settings.learning_rate,
            num_train_epochs=settings.epochs,
            max_steps=settings.max_steps,
            warmup_steps=settings.warmup_ratio,  # a float in [0, 1) is a fraction of the total steps
            weight_decay=settings.weight_decay,
            optim=settings.optimizer,
            seed=settings.seed,
            data_seed=settings.seed,
            logging_strategy="steps",
            logging_steps=1,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            disable_tqdm=True,
            remove_unused_columns=False,
            dataloader_num_workers=0,
            dataloader_pin_memory=False,
            use_cpu=model.device.type == "cpu",
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train_features,
            data_collator=lambda batch: pad_batch(batch, pad_token_id=pad_id),
        )
        # The loss history is returned and saved; printing every step to stdout only adds noise.
        trainer.remove_callback(PrinterCallback)
        started = time.perf_counter()
        output = trainer.train()
        runtime = time.perf_counter() - started
        eval_loss = None
        if eval_features:
            eval_loss = float(trainer.evaluate(eval_dataset=eval_features)["eval_loss"])
        history = [
            {"step": int(entry["step"]), "loss": float(entry["loss"]), "epoch": float(entry["epoch"])}
            for entry in trainer.state.log_history
            if "loss" in entry
        ]
    if not all(math.isfinite(entry["loss"]) for entry in history):
        raise InputError("Training loss became NaN or infinite; lower train.learning_rate or check the data.")

    record = TrainingRecord(
        settings=asdict(settings),
        base_model={"source": base_model_source, "model_type": model.config.model_type},
        library_versions=_library_versions(),
        train_examples=len(train_features),
        validation_examples=len(eval_features),
        steps=int(output.global_step),
        trainable_params=int(trainable_params),
        total_params=int(total_params),
        inputs=dict(inputs or {}),
    )
    # peft keeps the resolved "all-linear" targets in a set; a sorted list makes adapter_config.json stable.
    adapter_config = model.peft_config["default"]
    # peft records the base's load path, which differs per checkout; the configured source is stable,
    # so the same training gives the same adapter bytes on every machine.
    adapter_config.base_model_name_or_path = base_model_source
    if not isinstance(adapter_config.target_modules, str):
        adapter_config.target_modules = sorted(adapter_config.target_modules)
    with atomic_directory(out_dir) as staging:
        model.save_pretrained(staging)
        # peft writes a model card template full of "[More Information Needed]"; training_config.json
        # is the honest record of this adapter.
        (staging / "README.md").unlink(missing_ok=True)
        tokenizer.save_pretrained(staging)
        record.write(staging)
        _write_json(staging / LOSS_HISTORY_FILE, history)
    return TrainResult(
        loss_history=history,
        eval_loss=eval_loss,
        train_runtime_s=runtime,
        steps=int(output.global_step),
        trainable_params=int(trainable_params),
        total_params=int(total_params),
        train_examples=len(train_features),
        validation_examples=len(eval_features),
    )
