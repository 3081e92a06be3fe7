"""(IA)^3 (Liu et al., 2022): learned vectors that rescale keys, values and feed-forward activations.
Very few trainable parameters; mergeable into the base.

Left at null, the modules are peft's per-architecture defaults (for Llama: k_proj, v_proj, down_proj,
with down_proj as the feed-forward module).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assets.train.methods.common import as_list, module_names, raise_problems

if TYPE_CHECKING:
    from peft import IA3Config


@dataclass(frozen=True)
class IA3Settings:
    """``train.ia3_target_modules`` and ``train.ia3_feedforward_modules`` (params.yaml)."""

    ia3_target_modules: Any = field(
        default=None,
        metadata={
            "help": "train.ia3_target_modules: modules to rescale; null: peft's default for the architecture."
        },
    )
    ia3_feedforward_modules: Any = field(
        default=None,
        metadata={
            "help": "train.ia3_feedforward_modules: those of ia3_target_modules rescaled on their input "
            "(feed-forward layers); null: peft's default. Give both or neither."
        },
    )

    def __post_init__(self) -> None:
        targets, target_problem = module_names(
            "ia3_target_modules", self.ia3_target_modules, allow_all_linear=False
        )
        feedforward, ff_problem = module_names(
            "ia3_feedforward_modules", self.ia3_feedforward_modules, allow_all_linear=False
        )
        object.__setattr__(self, "ia3_target_modules", targets)
        object.__setattr__(self, "ia3_feedforward_modules", feedforward)
        problems = [target_problem, ff_problem]
        if not problems[0] and not problems[1]:
            if (targets is None) != (feedforward is None):
                problems.append(
                    "train.ia3_target_modules and train.ia3_feedforward_modules must be given together "
                    "(or both null for peft's defaults)"
                )
            elif targets is not None and not set(feedforward) <= set(targets):
                problems.append(
                    f"train.ia3_feedforward_modules {list(feedforward)} must be a subset of "
                    f"train.ia3_target_modules {list(targets)}"
                )
        raise_problems("IA3", problems)


def build(settings: IA3Settings, method: str, *, total_steps: int) -> IA3Config:
    """peft's IA3Config; ``total_steps`` is unused."""
    from peft import IA3Config

    return IA3Config(
        target_modules=as_list(settings.ia3_target_modules),
        feedforward_modules=as_list(settings.ia3_feedforward_modules),
        task_type="CAUSAL_LM",
    )
