"""Full fine-tuning: every weight of an unquantized base is trained and the whole model is saved.
There is no adapter, so nothing to merge; the output directory is a plain transformers model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FullSettings:
    """Full fine-tuning has no settings of its own."""


def build(settings: FullSettings, method: str, *, total_steps: int) -> None:
    """No peft config: the model is trained as it is."""
    return None
