"""``train.gradient_checkpointing: auto``: recompute activations only when memory needs it.

Gradient checkpointing trades compute for memory: the forward pass runs twice per step, about 20-35%
more time (measured on this CPU by benchmarks/train.py). It pays only when a micro-batch's activations
would not fit. ``auto`` therefore estimates them for the largest micro-batch of the run and turns
checkpointing on when the estimate exceeds half of the device's free memory (the other half is left for
the weights, optimizer states and the allocator).

The estimate is Korthikanti et al. (2022), "Reducing Activation Recomputation in Large Transformer
Models", eq. 2: a transformer layer keeps s*b*h*(34 + 5*a*s/h) bytes of activations in 16-bit
precision (s tokens, b rows, h hidden size, a attention heads), doubled for 32-bit compute, plus the
float32 logits and their gradient (2 * 4 * s * b * vocabulary bytes). Framework-free but for reading
free device memory (torch, imported inside).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

# Activations may take at most this share of free memory before checkpointing turns on.
FREE_MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class CheckpointingChoice:
    """Whether gradient checkpointing is on, and why, in words for the metadata and the log."""

    enabled: bool
    reason: str


def activation_bytes(config: Any, *, rows: int, tokens: int, bytes_per_value: int) -> int:
    """Estimated activation memory in bytes of one forward pass over ``rows`` x ``tokens`` for a
    decoder with ``config``'s ``hidden_size``, ``num_attention_heads``, ``num_hidden_layers`` and
    ``vocab_size`` (Korthikanti et al., 2022, eq. 2, scaled from 2 to ``bytes_per_value`` bytes)."""
    hidden, heads = config.hidden_size, config.num_attention_heads
    per_layer = tokens * rows * hidden * (34 + 5 * heads * tokens / hidden) * bytes_per_value / 2
    logits = 2 * 4 * tokens * rows * config.vocab_size
    return int(config.num_hidden_layers * per_layer + logits)


def free_bytes(device: Any) -> int:
    """Free memory of ``device`` (a torch.device): CUDA's free memory, else the host's MemAvailable."""
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def choose_gradient_checkpointing(
    setting: str,
    *,
    method_allows: bool,
    config: Any,
    rows: int,
    tokens: int,
    bytes_per_value: int,
    free: int,
) -> CheckpointingChoice:
    """Resolve ``train.gradient_checkpointing`` (``auto``, ``always``, ``never``) for micro-batches of
    at most ``rows`` x ``tokens`` with ``free`` bytes of device memory. A method that refuses
    checkpointing (prefix tuning) never gets it; ``always`` on such a method is refused earlier, by
    the settings' checks."""
    if not method_allows:
        return CheckpointingChoice(False, "the method cannot train with it")
    if setting != "auto":
        return CheckpointingChoice(setting == "always", f"set to {setting}")
    need = activation_bytes(config, rows=rows, tokens=tokens, bytes_per_value=bytes_per_value)
    enabled = need > FREE_MEMORY_SHARE * free
    verdict = "over" if enabled else "within"
    return CheckpointingChoice(
        enabled,
        f"auto: activations of a {rows} x {tokens} micro-batch estimated at {need / 2**30:.2f} GiB, "
        f"{verdict} half of the {free / 2**30:.1f} GiB free",
    )
