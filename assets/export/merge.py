"""Merge an adapter into its base model and prove the merged model computes what the adapter did.

What export does depends on the method the champion was trained with (its training record):
- mergeable methods (qlora, lora, dora, adalora, ia3): peft ``merge_and_unload`` into the base loaded as
  in training. Merging into 4-bit weights would re-quantize the sum and lose the adapter's small updates,
  so a quantized base is de-quantized first: the exact float weights the 4-bit layers computed with
  during training; a full-precision base (quantization null) is merged into as it is.
- ``full``: the directory already is the whole model; it is saved in the export dtype, nothing merged.
- soft prompts (prefix, prompt, p_tuning): nothing in the base's weights changes, so no plain model
  computes what they do; export refuses them (:class:`NotMergeableError`).
The exported model must reproduce the logits of the trained model (adapter-on-base, or the fully
fine-tuned model) on a few prompts, both in memory and after saving and reloading, before it replaces
``out_dir``.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable, Mapping
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
# Machine epsilon (the gap between 1 and the next float) of each export dtype: IEEE 754 binary32 and
# binary16 keep 23 and 10 fraction bits, bfloat16 keeps 7. Rounding a weight to the dtype changes it by up
# to half of this, relative; through the layers the logits move by a few epsilon of their scale.
MACHINE_EPSILON = {"float32": 2.0**-23, "bfloat16": 2.0**-7, "float16": 2.0**-10}


@dataclass(frozen=True)
class ExportSettings:
    """The ``export`` section of params.yaml, validated; see the comments there.

    ``logit_tolerance_<dtype>``: the largest |logit difference| allowed between the merged model and
    adapter-on-base, as a fraction of the logit scale (the largest |reference logit|, at least 1), for an
    export in that dtype.
    """

    dtype: str
    logit_tolerance_float32: float
    logit_tolerance_bfloat16: float
    logit_tolerance_float16: float
    verify_prompts: int

    def __post_init__(self) -> None:
        problems = []
        if self.dtype not in DTYPES:
            problems.append(f"export.dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}")
        for name, value in self.tolerances.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                problems.append(f"export.logit_tolerance_{name} must be a number >= 0; got {value!r}")
        count = self.verify_prompts
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            problems.append(f"export.verify_prompts must be a positive integer; got {count!r}")
        if problems:
            raise ValueError("; ".join(problems) + ". Fix it in params.yaml (section export).")

    @property
    def tolerances(self) -> dict[str, float]:
        """Export dtype -> logit tolerance."""
        return {dtype: getattr(self, f"logit_tolerance_{dtype}") for dtype in DTYPES}


def allowed_difference(tolerance: float, logit_scale: float) -> float:
    """The largest |logit difference| allowed: ``tolerance`` times the logit scale, at least 1 (rounding
    errors are relative to the size of what is computed; below 1 the tolerance is absolute)."""
    return tolerance * max(1.0, logit_scale)


class NotMergeableError(InputError):
    """The champion was trained with a method whose result cannot be folded into the base's weights."""

    def __init__(self, method: str) -> None:
        super().__init__(
            f"The champion was trained with train.method {method!r}, a soft prompt (virtual tokens) "
            "that peft adds to every input at run time: it changes none of the base's weights, so there "
            "is no merged model to export, and a plain copy of the base would silently answer without "
            "it. Serve it as base + adapter with peft: PeftModel.from_pretrained("
            "AutoModelForCausalLM.from_pretrained(<base model>), <adapter directory>), the adapter "
            "directory being the registry version's 'adapter' artifact (or models/adapter). For a "
            "standalone exported model, train with a mergeable method (train.method qlora, lora, dora, "
            "adalora or ia3) or with full."
        )
        self.method = method


def export_kind(method: str, mergeable: bool) -> str:
    """``"merge"`` (peft ``merge_and_unload``) or ``"copy"`` (``full``: already the whole model) for a
    training record's ``method`` and ``mergeable``; raises NotMergeableError for a soft prompt."""
    if method == "full":
        return "copy"
    if not mergeable:
        raise NotMergeableError(method)
    return "merge"


class MergeVerificationError(RuntimeError):
    """The merged model's logits differ from the adapter-on-base logits by more than allowed.

    ``float32_measured``/``float32_allowed``: the same merge measured in float32, when a lower-precision
    export failed; it tells the dtype's rounding (float32 passes) from an unfaithful merge (it fails too).
    """

    def __init__(
        self,
        stage: str,
        measured: float,
        allowed: float,
        *,
        dtype: str = "float32",
        tolerance: float | None = None,
        logit_scale: float = 1.0,
        float32_measured: float | None = None,
        float32_allowed: float | None = None,
    ) -> None:
        setting = f"export.logit_tolerance_{dtype}"
        tolerance = allowed if tolerance is None else tolerance
        head = (
            f"Merged model ({stage}, {dtype}) differs from adapter-on-base by max |logit diff| = "
            f"{measured:.3g}, more than the {allowed:.3g} allowed ({setting} = {tolerance:.3g} x logit scale "
            f"{max(1.0, logit_scale):.3g})."
        )
        unfaithful = (
            "The merge is not faithful: check that the adapter was trained on this base model and "
            "quantization (its training_config.json)."
        )
        if dtype == "float32":
            cause = unfaithful
        elif (
            float32_measured is not None
            and float32_allowed is not None
            and float32_measured <= float32_allowed
        ):
            epsilons = measured / max(1.0, logit_scale) / MACHINE_EPSILON[dtype]
            suggested = _round_up(2 * measured / max(1.0, logit_scale))
            cause = (
                f"The cause is the {dtype} dtype, not the merge: in float32 the same merge differs by only "
                f"{float32_measured:.3g}. {dtype} keeps {_fraction_bits(dtype)} fraction bits (machine "
                f"epsilon {MACHINE_EPSILON[dtype]:.3g}), and rounding the merged weights moved the logits by "
                f"{epsilons:.1f} epsilon of their scale. Set {setting} to {suggested:.2g} or more in "
                "params.yaml to accept that rounding, or export in float32 (export.dtype)."
            )
        else:
            checked = (
                "" if float32_measured is None else f" (max |logit diff| {float32_measured:.3g} in float32)"
            )
            cause = (
                f"It fails in float32 as well{checked}, so {dtype} rounding is not the cause. {unfaithful}"
            )
        super().__init__(f"{head} {cause}")
        self.stage = stage
        self.measured = measured
        self.allowed = allowed
        self.dtype = dtype
        self.float32_measured = float32_measured


def _fraction_bits(dtype: str) -> int:
    return round(-math.log2(MACHINE_EPSILON[dtype]))


def _round_up(value: float) -> float:
    """``value`` rounded up to one significant digit (0.0078 -> 0.008), for a suggested setting."""
    if value <= 0:
        return 0.0
    magnitude = 10 ** math.floor(math.log10(value))
    return math.ceil(value / magnitude) * magnitude


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


def _merged_and_reference(
    *,
    base_dir: Path,
    adapter_dir: Path,
    batch: dict[str, torch.Tensor],
    quantization: str | None,
    dtype: str,
    device: str,
    kind: str = "merge",
) -> tuple[PreTrainedModel, torch.Tensor, torch.Tensor]:
    """The merged model in ``dtype``, its logits on ``batch`` and those of adapter-on-base (the base
    loaded as in training, computing in ``dtype``). For ``kind == "copy"`` (full fine-tuning) the
    exported model is the trained one in ``dtype``, and its logits are also the reference: the check
    that matters is the reloaded one."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if kind == "copy":
        model = AutoModelForCausalLM.from_pretrained(
            adapter_dir, dtype=torch_dtype(dtype), device_map={"": device}, local_files_only=True
        )
        logits = _logits(model, batch)
        return model, logits, logits

    reference_model = PeftModel.from_pretrained(
        load_causal_lm(base_dir, quantization=quantization, dtype=dtype, device=device), adapter_dir
    )
    reference = _logits(reference_model, batch)
    del reference_model
    _free_memory()

    base = load_causal_lm(base_dir, quantization=quantization, dtype=dtype, device=device)
    if quantization is not None:
        base = base.dequantize()
    base = base.to(torch_dtype(dtype))
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    return merged, _logits(merged, batch), reference


def merge_and_verify(
    base_dir: Path,
    adapter_dir: Path,
    out_dir: Path,
    *,
    dtype: str,
    tolerances: dict[str, float],
    verify_prompts: list[str],
    device: str = "cpu",
    extra_files: Mapping[str, str | Callable[[dict[str, Any]], str]] | None = None,
) -> dict[str, Any]:
    """Merge ``adapter_dir`` into the de-quantized base of ``base_dir`` and save it to ``out_dir`` in
    ``dtype``, with the training tokenizer (and its chat template) and a generation config. A ``full``
    training output (the whole model) is saved in ``dtype`` as it is, verified the same way; a soft
    prompt raises NotMergeableError (an InputError) before anything is loaded.

    ``tolerances`` maps each dtype to its logit tolerance (see :func:`allowed_difference`). Raises
    MergeVerificationError when the merged model, in memory or reloaded from disk, differs from
    adapter-on-base by more than that on ``verify_prompts``; for a bfloat16 or float16 export the same
    merge is then measured in float32, so the error can say whether the dtype is the cause.
    ``extra_files`` (name -> text, or a function of the returned report giving the text, as for the
    model card) are written beside the model, in the same atomic replacement. Returns
    the measured differences, the allowed one, the top-1 token agreement, the parameter count, the
    training ``method`` and ``export`` (``merged`` or ``copied``).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    if not verify_prompts:
        raise InputError(
            "No prompt to verify the merge on: test_split has no user turn. Materialize split with a "
            "non-empty test split."
        )
    if dtype not in DTYPES:
        raise InputError(
            f"export.dtype must be one of {', '.join(DTYPES)}; got {dtype!r}. Fix it in params.yaml."
        )
    for name in DTYPES:
        value = tolerances.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise InputError(
                f"export.logit_tolerance_{name} must be a number >= 0; got {value!r}. Fix it in params.yaml."
            )
    record = read_training_record(adapter_dir)
    kind = export_kind(record.method, record.mergeable)
    if kind == "copy" and not (Path(adapter_dir) / "config.json").is_file():
        raise InputError(
            f"{adapter_dir} was trained with train.method 'full' but holds no config.json: it is not a "
            "complete model. Re-train (materialize adapter), register and promote it again."
        )
    # Load the base exactly as it was during training.
    quantization = record.quantization
    # The adapter directory holds the tokenizer exactly as used in training.
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    batch = dict(tokenizer(list(verify_prompts), padding=True, return_tensors="pt"))
    options = {
        "base_dir": base_dir,
        "adapter_dir": adapter_dir,
        "quantization": quantization,
        "device": device,
        "kind": kind,
    }

    merged, merged_logits, reference = _merged_and_reference(batch=batch, dtype=dtype, **options)
    scale = float(reference.abs().max())
    allowed = allowed_difference(tolerances[dtype], scale)
    measured = float((merged_logits - reference).abs().max())
    top1 = float((merged_logits.argmax(-1) == reference.argmax(-1)).float().mean())
    if measured > allowed:
        del merged
        _free_memory()
        raise _verification_error("in memory", measured, allowed, dtype, tolerances, scale, batch, options)
    parameters = int(merged.num_parameters())

    with atomic_directory(out_dir) as staging:
        merged.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if not (staging / "generation_config.json").is_file():
            # A base without one: generation still has to know where answers end.
            GenerationConfig(
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            ).save_pretrained(staging)
        del merged
        _free_memory()
        config = json.loads((staging / "config.json").read_text(encoding="utf-8"))
        if "quantization_config" in config:
            raise RuntimeError(
                "The merged model's config.json still has a quantization_config "
                f"({config['quantization_config']}); a merged model must be a plain transformers model."
            )
        reloaded_model = AutoModelForCausalLM.from_pretrained(
            staging, dtype=torch_dtype(dtype), device_map={"": device}, local_files_only=True
        )
        reloaded = float((_logits(reloaded_model, batch) - reference).abs().max())
        del reloaded_model
        _free_memory()
        if reloaded > allowed:
            raise _verification_error(
                "reloaded from disk", reloaded, allowed, dtype, tolerances, scale, batch, options
            )
        report = {
            "max_abs_logit_diff": measured,
            "reloaded_max_abs_logit_diff": reloaded,
            "allowed_max_abs_logit_diff": allowed,
            "logit_tolerance": tolerances[dtype],
            "logit_scale": scale,
            "top1_agreement": top1,
            "parameters": parameters,
            "dtype": dtype,
            "machine_epsilon": MACHINE_EPSILON[dtype],
            "trained_quantization": quantization,
            "verify_prompts": len(verify_prompts),
            "method": record.method,
            "export": "merged" if kind == "merge" else "copied",
        }
        (staging / VERIFICATION_FILE).write_text(
            json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text if isinstance(text, str) else text(report), encoding="utf-8")
    return report


def _verification_error(
    stage: str,
    measured: float,
    allowed: float,
    dtype: str,
    tolerances: dict[str, float],
    scale: float,
    batch: dict[str, torch.Tensor],
    options: dict[str, Any],
) -> MergeVerificationError:
    """The error for a failed check; for a lower-precision export, after measuring the same merge in
    float32 (one more pair of loads, paid only on failure) to tell rounding from an unfaithful merge."""
    float32: dict[str, float] = {}
    if dtype != "float32":
        merged, logits, reference = _merged_and_reference(batch=batch, dtype="float32", **options)
        del merged
        _free_memory()
        float32 = {
            "float32_measured": float((logits - reference).abs().max()),
            "float32_allowed": allowed_difference(tolerances["float32"], float(reference.abs().max())),
        }
    return MergeVerificationError(
        stage, measured, allowed, dtype=dtype, tolerance=tolerances[dtype], logit_scale=scale, **float32
    )
