"""The ``train`` section of params.yaml, validated: what every method shares, plus the method's own
settings (resolved through the method table, assets/train/methods/). Framework-free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from assets.train.batching import BATCHING, UNPACKABLE_METHODS
from assets.train.device_defaults import AUTO, PRECISIONS, optimizer_names
from assets.train.methods import METHOD_SETTINGS, Method, method_settings
from assets.train.truncation import TRUNCATION_RULES
from resources.model_loading import QUANTIZATIONS

GRADIENT_CHECKPOINTING = ("auto", "always", "never")
LR_SCHEDULERS = ("linear", "cosine", "constant_with_warmup")


@dataclass(frozen=True)
class TrainSettings:
    """Every ``train`` setting but ``base_model`` (see params.yaml for what each means).

    ``method`` picks a row of the method table; the method-specific keys (``lora_r``, ``adalora_init_r``,
    ``num_virtual_tokens``...) are checked by that method's settings class (:attr:`method_config`), and
    those of other methods must stay at their defaults. Raises ValueError naming each wrong setting.
    """

    method: str
    quantization: str | None
    learning_rate: float
    epochs: float
    max_steps: int
    batch_size: int
    gradient_accumulation_steps: int
    max_seq_length: int
    truncation: str
    warmup_ratio: float
    lr_scheduler: str
    weight_decay: float
    optimizer: str
    gradient_checkpointing: str
    batching: str
    seed: int
    # Intra-op threads while training (assets/train/determinism.py); 0: torch's choice (the machine's cores).
    num_threads: int
    eval_steps: int
    save_steps: int
    log_every_steps: int
    log_every_seconds: float
    processes: int
    # Device-dependent choices (assets/train/device_defaults.py) and early stopping on validation loss.
    precision: str
    early_stopping_patience: int
    early_stopping_threshold: float
    # Method-specific (assets/train/methods/): LoRA family, AdaLoRA, IA3, soft prompts.
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    target_modules: Any
    adalora_init_r: int
    adalora_target_r: int
    adalora_tinit: int
    adalora_tfinal: int
    adalora_delta_t: int
    ia3_target_modules: Any
    ia3_feedforward_modules: Any
    num_virtual_tokens: int

    def __post_init__(self) -> None:
        for name in ("target_modules", "ia3_target_modules", "ia3_feedforward_modules"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        # YAML users write "none" as often as null for "no quantization".
        if isinstance(self.quantization, str) and self.quantization.lower() == "none":
            object.__setattr__(self, "quantization", None)
        problems = self._generic_problems() + self._precision_and_stopping_problems()
        try:
            chosen, config = method_settings(self.method, asdict(self))
        except ValueError as exc:
            problems.append(str(exc).removeprefix("Invalid ").rstrip("."))
        else:
            problems += self._method_problems(chosen)
            object.__setattr__(self, "_method", (chosen, config))
        if problems:
            raise ValueError(
                "Invalid train settings (params.yaml, section train): " + "; ".join(problems) + "."
            )

    def _generic_problems(self) -> list[str]:
        problems = []
        if self.quantization is not None and self.quantization not in QUANTIZATIONS:
            problems.append(f"quantization must be null or one of {QUANTIZATIONS}; got {self.quantization!r}")
        for name in (
            "batch_size",
            "gradient_accumulation_steps",
            "max_seq_length",
            "eval_steps",
            "save_steps",
            "log_every_steps",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a positive integer; got {value!r}")
        if (
            isinstance(self.num_threads, bool)
            or not isinstance(self.num_threads, int)
            or self.num_threads < 0
        ):
            problems.append(
                f"num_threads must be 0 (torch's choice, bytes may differ between machines) or a positive "
                f"integer; got {self.num_threads!r}"
            )
        if not 0.0 <= self.warmup_ratio < 1.0:
            problems.append(f"warmup_ratio must be in [0, 1); got {self.warmup_ratio!r}")
        if not 0 < self.learning_rate < math.inf:
            problems.append(f"learning_rate must be a finite number > 0; got {self.learning_rate!r}")
        if self.epochs == math.inf:
            problems.append("epochs must be a finite number; got inf (a YAML number too large for a float?)")
        if self.optimizer != AUTO and self.optimizer not in optimizer_names():
            problems.append(
                f"optimizer {self.optimizer!r} is not a transformers optimizer name (train.optimizer): "
                f"choose one of {[AUTO, *optimizer_names()]} ({AUTO!r}: by device)"
            )
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0; got {self.weight_decay!r}")
        if not self.log_every_seconds > 0:
            problems.append(f"log_every_seconds must be > 0; got {self.log_every_seconds!r}")
        if self.max_steps == 0 or self.max_steps < -1:
            problems.append(
                f"max_steps must be -1 (use epochs) or a positive integer; got {self.max_steps!r}"
            )
        if self.max_steps == -1 and not self.epochs > 0:
            problems.append(f"epochs must be > 0 when max_steps is -1; got {self.epochs!r}")
        if self.truncation not in TRUNCATION_RULES:
            problems.append(f"truncation must be one of {TRUNCATION_RULES}; got {self.truncation!r}")
        if self.lr_scheduler not in LR_SCHEDULERS:
            problems.append(f"lr_scheduler must be one of {LR_SCHEDULERS}; got {self.lr_scheduler!r}")
        if self.gradient_checkpointing not in GRADIENT_CHECKPOINTING:
            problems.append(
                f"gradient_checkpointing must be one of {GRADIENT_CHECKPOINTING}; "
                f"got {self.gradient_checkpointing!r}"
            )
        if isinstance(self.processes, bool) or not isinstance(self.processes, int) or self.processes < 1:
            problems.append(
                f"processes must be a positive integer (1: train in the Dagster process; more: one "
                f"data-parallel process each, assets/train/distributed.py); got {self.processes!r}"
            )
        if self.batching not in BATCHING:
            problems.append(f"batching must be one of {BATCHING}; got {self.batching!r}")
        return problems

    def _precision_and_stopping_problems(self) -> list[str]:
        problems = []
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {PRECISIONS}; got {self.precision!r}")
        patience = self.early_stopping_patience
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            problems.append(
                f"early_stopping_patience must be 0 (off) or a positive integer; got {patience!r}"
            )
        elif (
            patience > 0
            and _positive_ints(self.eval_steps, self.save_steps)
            and self.save_steps % self.eval_steps
        ):
            # transformers' load_best_model_at_end refuses saves that fall between evaluations.
            problems.append(
                f"early_stopping_patience {patience} needs save_steps to be a multiple of eval_steps; got "
                f"save_steps {self.save_steps}, eval_steps {self.eval_steps}"
            )
        if not self.early_stopping_threshold >= 0:
            problems.append(
                f"early_stopping_threshold must be >= 0 (a validation loss drop); got "
                f"{self.early_stopping_threshold!r}"
            )
        return problems

    def _method_problems(self, chosen: Method) -> list[str]:
        problems = []
        if chosen.quantization == "required" and self.quantization is None:
            problems.append(
                f"method {chosen.name!r} trains on a quantized base: set quantization to one of "
                f"{QUANTIZATIONS}, or use method 'lora' for a full-precision base"
            )
        if chosen.quantization == "forbidden" and self.quantization is not None:
            alternative = "'qlora'" if chosen.name == "lora" else "a PEFT method (qlora, dora, ...)"
            problems.append(
                f"method {chosen.name!r} trains a full-precision base: set quantization to null, or use "
                f"{alternative} on a quantized base"
            )
        if not chosen.gradient_checkpointing and self.gradient_checkpointing == "always":
            problems.append(
                f"method {chosen.name!r} cannot train with gradient checkpointing (peft refuses it): set "
                "gradient_checkpointing to 'auto' or 'never'"
            )
        if self.batching == "packed" and chosen.name in UNPACKABLE_METHODS:
            problems.append(
                f"method {chosen.name!r} puts virtual tokens before every row, which a packed row cannot "
                "have: set batching to 'auto' or 'group_by_length'"
            )
        return problems

    @property
    def method_entry(self) -> Method:
        """The row of the method table ``method`` names."""
        return self._method[0]  # type: ignore[attr-defined]

    @property
    def method_config(self) -> Any:
        """The method family's validated settings (e.g. LoraSettings)."""
        return self._method[1]  # type: ignore[attr-defined]

    @property
    def effective_batch_size(self) -> int:
        """Rows per optimizer step: ``processes * batch_size * gradient_accumulation_steps``."""
        return self.processes * self.batch_size * self.gradient_accumulation_steps

    def total_steps(self, train_examples: int) -> int:
        """Optimizer steps of a run over ``train_examples`` rows, as transformers' Trainer counts them
        (the last partial batch and accumulation group count as steps). With ``processes`` > 1 each
        process takes every N-th batch (accelerate's sharded data loader, padded so all get as many),
        so one step consumes :attr:`effective_batch_size` rows."""
        if self.max_steps > 0:
            return self.max_steps
        batches = math.ceil(train_examples / (self.batch_size * self.processes))
        per_epoch = max(math.ceil(batches / self.gradient_accumulation_steps), 1)
        return math.ceil(self.epochs * per_epoch)

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


def _positive_ints(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)


def method_setting_names() -> set[str]:
    """Every method-specific ``train`` key the method table declares (a test keeps TrainSettings in step)."""
    return set(METHOD_SETTINGS)
