"""Soft prompts: ``prefix`` (prefix tuning, Li & Liang, 2021: trained key/value prefixes in every layer),
``prompt`` (prompt tuning, Lester et al., 2021: trained input embeddings) and ``p_tuning`` (Liu et al.,
2021: input embeddings produced by a small prompt encoder). The base's weights are untouched, so there
is nothing to merge: the adapter must be served with peft.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from assets.train.methods.common import positive_int, raise_problems

if TYPE_CHECKING:
    from peft import PromptLearningConfig


@dataclass(frozen=True)
class PromptSettings:
    """``train.num_virtual_tokens`` (params.yaml)."""

    # Lester et al. (2021) find 20 tokens close to the best of the lengths they tried.
    num_virtual_tokens: int = field(
        default=20,
        metadata={
            "help": "train.num_virtual_tokens: trained tokens put before every sequence (they use context)."
        },
    )

    def __post_init__(self) -> None:
        raise_problems("prompt", [positive_int("num_virtual_tokens", self.num_virtual_tokens)])


def build(settings: PromptSettings, method: str, *, total_steps: int) -> PromptLearningConfig:
    """peft's PrefixTuningConfig, PromptTuningConfig (random init) or PromptEncoderConfig (MLP encoder)."""
    from peft import PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig

    config_class = {
        "prefix": PrefixTuningConfig,
        "prompt": PromptTuningConfig,
        "p_tuning": PromptEncoderConfig,
    }
    return config_class[method](num_virtual_tokens=settings.num_virtual_tokens, task_type="CAUSAL_LM")
