"""How much a LoRA adapter changes its base model's weights, read from the adapter's own files."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from assets.shared.errors import InputError


def _pattern_value(module: str, patterns: dict[str, float], default: float) -> float:
    """PEFT's per-module override (``rank_pattern`` / ``alpha_pattern``): a key matches a module name
    that ends with it (peft.utils.other.get_pattern_key matches ``(.*\\.)?{key}$``)."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def lora_weight_delta(adapter_dir: Path) -> float | None:
    """The largest |ΔW| = |B·A·scaling| over every LoRA layer of the adapter in ``adapter_dir``, where
    scaling = lora_alpha / r (lora_alpha / sqrt(r) with ``use_rslora``), as PEFT's LoraLayer computes it.
    Zero means the adapter leaves the base unchanged (B is initialized to zero). None when the adapter
    is not a LoRA adapter saved as ``adapter_model.safetensors``. Raises InputError when the config or
    weights cannot be read. Units: the base weights' own."""
    config_path = adapter_dir / "adapter_config.json"
    weights_path = adapter_dir / "adapter_model.safetensors"
    if not config_path.exists() or not weights_path.exists():
        return None
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{config_path} cannot be read ({exc}): re-materialize adapter.") from None
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        return None
    from safetensors import safe_open

    r, alpha = config.get("r", 8), config.get("lora_alpha", 8)
    largest = 0.0
    with safe_open(str(weights_path), framework="pt") as weights:
        names = set(weights.keys())
        for a_name in sorted(n for n in names if ".lora_A." in n):
            b_name = a_name.replace(".lora_A.", ".lora_B.")
            if b_name not in names:
                continue
            module = a_name.split(".lora_A.")[0]
            rank = _pattern_value(module, config.get("rank_pattern") or {}, r)
            scale = _pattern_value(module, config.get("alpha_pattern") or {}, alpha)
            scale = scale / math.sqrt(rank) if config.get("use_rslora") else scale / rank
            a, b = weights.get_tensor(a_name).float(), weights.get_tensor(b_name).float()
            if a.dim() != 2 or b.dim() != 2:  # convolutional LoRA: flatten to the matrix product
                a, b = a.flatten(1), b.flatten(1)
            largest = max(largest, float((b @ a).abs().max()) * scale)
    return largest
