"""LoRA and its variants: ``qlora`` (LoRA on a 4-bit base, Dettmers et al., 2023), ``lora`` (Hu et al.,
2021) and ``dora`` (weight-decomposed LoRA, Liu et al., 2024; peft's ``use_dora``). Mergeable into the base.

Defaults are those of the QLoRA paper's small-model runs as peft spells them: r 8, alpha 16, dropout 0.05.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assets.train.methods.common import (
    LORA_TARGETS_HELP,
    as_list,
    module_names,
    positive_int,
    raise_problems,
)

if TYPE_CHECKING:
    from peft import LoraConfig


@dataclass(frozen=True)
class LoraSettings:
    """``train.lora_*`` and ``train.target_modules`` (params.yaml)."""

    lora_r: int = field(
        default=8, metadata={"help": "train.lora_r: rank of the update matrices A (r x in) and B (out x r)."}
    )
    lora_alpha: int = field(
        default=16, metadata={"help": "train.lora_alpha: the update is scaled by lora_alpha / lora_r."}
    )
    lora_dropout: float = field(
        default=0.05, metadata={"help": "train.lora_dropout: dropout on the adapter's input, in [0, 1)."}
    )
    target_modules: Any = field(
        default="all-linear", metadata={"help": "train.target_modules: " + LORA_TARGETS_HELP}
    )

    def __post_init__(self) -> None:
        targets, target_problem = module_names("target_modules", self.target_modules, allow_all_linear=True)
        object.__setattr__(self, "target_modules", targets)
        raise_problems(
            "LoRA",
            [
                positive_int("lora_r", self.lora_r),
                positive_int("lora_alpha", self.lora_alpha),
                None
                if isinstance(self.lora_dropout, int | float) and 0.0 <= self.lora_dropout < 1.0
                else f"train.lora_dropout must be in [0, 1); got {self.lora_dropout!r}",
                target_problem or (None if targets is not None else "train.target_modules must be set"),
            ],
        )


def build(settings: LoraSettings, method: str, *, total_steps: int) -> LoraConfig:
    """peft's LoraConfig for ``qlora``, ``lora`` or ``dora`` (``use_dora``); ``total_steps`` is unused."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=as_list(settings.target_modules),
        bias="none",
        use_dora=method == "dora",
        task_type="CAUSAL_LM",
    )
