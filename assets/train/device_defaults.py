"""What ``train.optimizer: auto`` and ``train.precision: auto`` become on the device training runs on.

The device decides two things the settings leave open. The optimizer: bitsandbytes' paged 8-bit AdamW
(Dettmers et al., 2022, "8-bit Optimizers via Block-wise Quantization"; paging as in the QLoRA paper,
Dettmers et al., 2023) keeps AdamW's two moments in 8 bits and pages them to host memory under pressure,
which only exists on CUDA; on a CPU bitsandbytes falls back to unpaged 8-bit state, which measured about
4x slower per step than torch's AdamW (docs/benchmarks.md) to save memory a CPU run is not short of. The
precision: bfloat16 autocast where the GPU has bfloat16 units (Ampere and later), float16 with loss
scaling on older GPUs, float32 on a CPU. bfloat16 autocast pays on a CPU only where it has bfloat16
instructions (AVX512-BF16, AMX), and there it changes the numbers with the CPU model; float32 keeps a
CPU run's adapter the same on every CPU (as resources/model_loading.py does for 4-bit inference), and
``bfloat16`` can be set explicitly (docs/benchmarks.md has the speed-up measured on such a CPU).
Framework-free: torch and bitsandbytes are imported inside the probes, which tests replace.
"""

from __future__ import annotations

from assets.shared.errors import InputError

AUTO = "auto"
PRECISIONS = (AUTO, "float32", "bfloat16", "float16")
PAGED_ADAMW_8BIT = "paged_adamw_8bit"
ADAMW_TORCH = "adamw_torch"


def cuda_supports_bfloat16() -> bool:
    """Whether the current CUDA device computes in bfloat16 (torch.cuda.is_bf16_supported)."""
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def bitsandbytes_8bit_optimizers() -> bool:
    """Whether bitsandbytes imports with its paged 8-bit AdamW (transformers' ``paged_adamw_8bit``)."""
    try:
        from bitsandbytes.optim import PagedAdamW8bit  # noqa: F401
    except Exception:  # an import of bitsandbytes can fail with any error when its native library is broken
        return False
    return True


def optimizer_names() -> list[str]:
    """transformers' optimizer names (``OptimizerNames``: what ``TrainingArguments.optim`` accepts),
    sorted."""
    from transformers.training_args import OptimizerNames

    return sorted(o.value for o in OptimizerNames)


def resolve_optimizer(setting: str, device_type: str) -> str:
    """The transformers optimizer name (``TrainingArguments.optim``) for ``train.optimizer``.

    ``auto``: ``paged_adamw_8bit`` on a CUDA device when bitsandbytes has its 8-bit optimizers,
    ``adamw_torch`` otherwise; any other value is returned unchanged (training checks it is a
    transformers optimizer). ``device_type`` is a torch device type (``cpu``, ``cuda``...).
    """
    if setting != AUTO:
        return setting
    if device_type == "cuda" and bitsandbytes_8bit_optimizers():
        return PAGED_ADAMW_8BIT
    return ADAMW_TORCH


def resolve_precision(setting: str, device_type: str) -> str:
    """The compute precision (``float32``, ``bfloat16`` or ``float16``) for ``train.precision`` on a
    device of type ``device_type``.

    ``bfloat16`` and ``float16`` are mixed precision: weights and optimizer state stay in float32 and
    the forward and backward passes run under autocast (transformers' ``bf16``/``fp16`` arguments;
    float16 adds loss scaling). Raises InputError naming ``train.precision`` for a value the device
    cannot run: float16 anywhere but CUDA, bfloat16 on a CUDA device without bfloat16 support.
    """
    if setting not in PRECISIONS:
        raise InputError(f"train.precision must be one of {PRECISIONS}; got {setting!r} (params.yaml).")
    if setting == AUTO:
        if device_type != "cuda":
            return "float32"
        return "bfloat16" if cuda_supports_bfloat16() else "float16"
    if setting == "float16" and device_type != "cuda":
        raise InputError(
            f"train.precision float16 needs a CUDA device (autocast with loss scaling); training runs on "
            f"{device_type}. Set train.precision to auto or float32 (params.yaml)."
        )
    if setting == "bfloat16" and device_type == "cuda" and not cuda_supports_bfloat16():
        raise InputError(
            "train.precision bfloat16 needs a GPU with bfloat16 support (Ampere or later); this one has "
            "none. Set train.precision to auto (float16 here) or float32 (params.yaml)."
        )
    return setting
