"""AdaLoRA (Zhang et al., 2023): LoRA whose rank budget is re-allocated among layers during training by
an importance score, from ``adalora_init_r`` down to an average of ``adalora_target_r``. Mergeable.

It needs the run's total number of optimizer steps up front (peft's ``total_step``) and a call to
``update_and_allocate`` after every optimizer step (see :class:`RankAllocation`). Defaults are peft's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assets.shared.errors import InputError
from assets.train.methods.common import (
    LORA_TARGETS_HELP,
    as_list,
    module_names,
    non_negative_int,
    positive_int,
    raise_problems,
)

if TYPE_CHECKING:
    from peft import AdaLoraConfig


@dataclass(frozen=True)
class AdaLoraSettings:
    """``train.adalora_*`` plus the LoRA scale, dropout and targets it shares (params.yaml)."""

    adalora_init_r: int = field(
        default=12, metadata={"help": "train.adalora_init_r: the rank every layer starts with."}
    )
    adalora_target_r: int = field(
        default=8, metadata={"help": "train.adalora_target_r: the average rank left after allocation."}
    )
    adalora_tinit: int = field(
        default=0, metadata={"help": "train.adalora_tinit: steps of plain training before ranks are cut."}
    )
    adalora_tfinal: int = field(
        default=0, metadata={"help": "train.adalora_tfinal: final steps trained with the ranks fixed."}
    )
    adalora_delta_t: int = field(
        default=1, metadata={"help": "train.adalora_delta_t: steps between two budget allocations."}
    )
    lora_alpha: int = field(
        default=16, metadata={"help": "train.lora_alpha: the update is scaled by lora_alpha / rank."}
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
        problems = [
            positive_int("adalora_init_r", self.adalora_init_r),
            positive_int("adalora_target_r", self.adalora_target_r),
            non_negative_int("adalora_tinit", self.adalora_tinit),
            non_negative_int("adalora_tfinal", self.adalora_tfinal),
            positive_int("adalora_delta_t", self.adalora_delta_t),
            positive_int("lora_alpha", self.lora_alpha),
            None
            if isinstance(self.lora_dropout, int | float) and 0.0 <= self.lora_dropout < 1.0
            else f"train.lora_dropout must be in [0, 1); got {self.lora_dropout!r}",
            target_problem,
        ]
        if not problems[0] and not problems[1] and self.adalora_target_r > self.adalora_init_r:
            problems.append(
                f"train.adalora_target_r ({self.adalora_target_r}) must not exceed train.adalora_init_r "
                f"({self.adalora_init_r}): AdaLoRA only removes rank"
            )
        raise_problems("AdaLoRA", problems)

    def check_schedule(self, total_steps: int) -> None:
        """Raise InputError unless the run is long enough for a budgeting phase (peft's own rule)."""
        if self.adalora_tinit >= total_steps - self.adalora_tfinal:
            raise InputError(
                f"train.adalora_tinit ({self.adalora_tinit}) + train.adalora_tfinal ({self.adalora_tfinal}) "
                f"leave no steps to allocate ranks in a run of {total_steps} optimizer steps; lower them or "
                "train longer (train.epochs / train.max_steps)."
            )


def build(settings: AdaLoraSettings, method: str, *, total_steps: int) -> AdaLoraConfig:
    """peft's AdaLoraConfig with ``total_step`` = the run's optimizer steps."""
    from peft import AdaLoraConfig

    settings.check_schedule(total_steps)
    return AdaLoraConfig(
        init_r=settings.adalora_init_r,
        target_r=settings.adalora_target_r,
        tinit=settings.adalora_tinit,
        tfinal=settings.adalora_tfinal,
        deltaT=settings.adalora_delta_t,
        total_step=total_steps,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=as_list(settings.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def rank_allocation_callback() -> Any:
    """A transformers TrainerCallback that calls AdaLoRA's ``update_and_allocate`` after each optimizer
    step and before the gradients are zeroed, as peft requires (transformers' Trainer does not)."""
    from transformers import TrainerCallback

    class RankAllocation(TrainerCallback):
        def on_optimizer_step(
            self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any
        ) -> None:
            # state.global_step counts completed steps; this step is the next one, numbered from 0 by peft.
            model.base_model.update_and_allocate(state.global_step)

    return RankAllocation()
