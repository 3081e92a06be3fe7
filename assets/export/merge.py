"""Merge a LoRA adapter into its base model and prove the merged model computes what the adapter did.

Merging into 4-bit weights would re-quantize the sum and lose the adapter's small updates, so the adapter
is merged into the de-quantized base: the exact float weights the 4-bit layers computed with during
training. The merged model must reproduce the logits of adapter-on-(4-bit)-base on a few prompts, both in
memory and after saving and reloading, before it replaces ``out_dir``.
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assets.shared.errors import InputError
from assets.shared.training_record import read_training_record
from resources.artifacts import atomic_directory
from resources.model_loading import DTYPES, load_causal_lm, torch_dtype

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

VERIFICATION_FILE = "merge_verification.json"


@dataclass(frozen=True)
class ExportSettings:
    """The ``export`` section of params.yaml, validated; see the comments there."""

    dtype: str
    max_abs_logit_diff: float
    verify_prompts: int

    def __post_init__(self) -> None:
        problems = []
        if self.dtype not in DTYPES:
            problems.append(f"export.dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}")
        diff = self.max_abs_logit_diff
        if isinstance(diff, bool) or not isinstance(diff, (int, float)) or not diff >= 0:
            problems.append(f"export.max_abs_logit_diff must be a number >= 0; got {diff!r}")
        count = self.verify_prompts
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            problems.append(f"export.verify_prompts must be a positive integer; got {count!r}")
        if problems:
            raise ValueError("; ".join(problems) + ". Fix it in params.yaml (section export).")


class MergeVerificationError(RuntimeError):
    """The merged model's logits differ from the adapter-on-base logits by more than allowed."""

    def __init__(self, stage: str, measured: float, allowed: float) -> None:
        super().__init__(
            f"Merged model ({stage}) differs from adapter-on-base by max |logit diff| = {measured:.3g}, more "
            f"than export.max_abs_logit_diff = {allowed:.3g} (params.yaml). The merge is not faithful: check "
            "that the adapter was trained on this base model and quantization, or export in float32."
        )
        self.stage = stage
        self.measured = measured
        self.allowed = allowed


def _logits(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Float32 logits at the non-padding positions, flattened to (positions, vocab)."""
    import torch

    model.eval()
    with torch.inference_mode():
        batch = {key: value.to(model.device) for key, value in batch.items()}
        logits = model(**batch).logits.float()
    return logits[batch["attention_mask"].bool()].cpu()


def _free_memory() -> None:
    """Return a dropped model's memory before the next one loads (three full models never coexist)."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def merge_and_verify(
    base_dir: Path,
    adapter_dir: Path,
    out_dir: Path,
    *,
    dtype: str,
    max_abs_logit_diff: float,
    verify_prompts: list[str],
    device: str = "cpu",
    extra_files: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Merge ``adapter_dir`` into the de-quantized base of ``base_dir`` and save it to ``out_dir``.

    Raises MergeVerificationError when the merged model, in memory or reloaded from disk, differs from
    adapter-on-base by more than ``max_abs_logit_diff`` on ``verify_prompts``. ``extra_files`` (name ->
    text) are written beside the model, in the same atomic replacement. Returns the measured
    differences, the top-1 token agreement and the parameter count.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not verify_prompts:
        raise InputError(
            "No prompt to verify the merge on: test_split has no user turn. Materialize split with a "
            "non-empty test split."
        )
    if not max_abs_logit_diff >= 0:
        raise InputError(
            f"export.max_abs_logit_diff must be >= 0; got {max_abs_logit_diff!r}. Fix it in params.yaml."
        )
    if dtype not in DTYPES:
        raise InputError(
            f"export.dtype must be one of {', '.join(DTYPES)}; got {dtype!r}. Fix it in params.yaml."
        )
    # Load the base exactly as it was during training.
    quantization = read_training_record(adapter_dir).quantization
    weight_dtype = torch_dtype(dtype)
    # The adapter directory holds the tokenizer exactly as used in training.
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    batch = dict(tokenizer(list(verify_prompts), padding=True, return_tensors="pt"))

    reference_model = PeftModel.from_pretrained(
        load_causal_lm(base_dir, quantization=quantization, dtype=dtype, device=device), adapter_dir
    )
    reference = _logits(reference_model, batch)
    del reference_model
    _free_memory()

    base = load_causal_lm(base_dir, quantization=quantization, dtype=dtype, device=device)
    if quantization is not None:
        base = base.dequantize()
    base = base.to(weight_dtype)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged_logits = _logits(merged, batch)
    measured = float((merged_logits - reference).abs().max())
    if measured > max_abs_logit_diff:
        raise MergeVerificationError("in memory", measured, max_abs_logit_diff)
    top1 = float((merged_logits.argmax(-1) == reference.argmax(-1)).float().mean())
    parameters = int(merged.num_parameters())

    with atomic_directory(out_dir) as staging:
        merged.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        del merged, base
        _free_memory()
        config = json.loads((staging / "config.json").read_text(encoding="utf-8"))
        if "quantization_config" in config:
            raise RuntimeError(
                "The merged model's config.json still has a quantization_config "
                f"({config['quantization_config']}); a merged model must be a plain transformers model."
            )
        reloaded_model = AutoModelForCausalLM.from_pretrained(
            staging, dtype=weight_dtype, device_map={"": device}, local_files_only=True
        )
        reloaded = float((_logits(reloaded_model, batch) - reference).abs().max())
        del reloaded_model
        _free_memory()
        if reloaded > max_abs_logit_diff:
            raise MergeVerificationError("reloaded from disk", reloaded, max_abs_logit_diff)
        report = {
            "max_abs_logit_diff": measured,
            "reloaded_max_abs_logit_diff": reloaded,
            "allowed_max_abs_logit_diff": max_abs_logit_diff,
            "top1_agreement": top1,
            "parameters": parameters,
            "dtype": dtype,
            "trained_quantization": quantization,
            "verify_prompts": len(verify_prompts),
        }
        (staging / VERIFICATION_FILE).write_text(
            json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text, encoding="utf-8")
    return report
