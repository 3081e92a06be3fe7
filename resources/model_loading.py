"""Resolve, record and load the base causal LM and its tokenizer, offline.

``prepare_base_model`` turns the ``train.base_model`` setting into a directory that says where the
weights are: the tiny embedded model is built into it; a local directory or a hub id already in the local
Hugging Face cache is recorded in ``base_model.json`` (weights are not copied). Everything that loads the
base model afterwards goes through ``resolve_model_source``, so a run always uses the recorded revision.
Nothing here downloads: a hub model must be fetched beforehand (``hf download <id>``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resources.artifacts import atomic_directory

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

EMBEDDED = "embedded"
BASE_MODEL_FILE = "base_model.json"
QUANTIZATIONS = ("nf4",)
DTYPES = ("float32", "bfloat16", "float16")
# A hub id is "name" or "owner/name" made of the characters the hub allows.
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)?")


class ModelSourceError(RuntimeError):
    """The configured base model cannot be found or used offline."""


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype for a setting such as ``"float32"``; a clear error for anything else."""
    import torch

    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {name!r}.")
    return getattr(torch, name)


def _hub_snapshot(repo_id: str) -> Path:
    """The local cache snapshot of ``repo_id``, or a ModelSourceError telling how to fetch it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError) as error:
        raise ModelSourceError(
            f"Base model {repo_id!r} is neither a local directory nor in the local Hugging Face cache, and "
            f"this pipeline never downloads. Fetch it first (`hf download {repo_id}`), or set "
            f"train.base_model in params.yaml to a local directory or to {EMBEDDED!r}. ({error})"
        ) from error


def _describe(source: str) -> dict[str, Any]:
    """Model type, vocabulary size and parameter count, read from the config without loading weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ModelSourceError(
            f"{source} does not hold a transformers model with a usable config.json: {error}"
        ) from error
    # Building on the meta device allocates nothing, so this is cheap even for large models.
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {
        "model_type": config.model_type,
        "vocab_size": int(config.vocab_size),
        "parameters": int(model.num_parameters()),
    }


def prepare_base_model(spec: str, out_dir: Path, *, seed: int) -> dict[str, Any]:
    """Make ``out_dir`` point at the base model named by ``spec`` and return facts about it.

    ``spec`` is ``"embedded"`` (build the tiny model into ``out_dir`` with ``seed``), an existing local
    directory, or a hub id already in the local cache. Returns ``source``, ``kind``, ``model_type``,
    ``vocab_size`` and ``parameters`` (plus ``revision`` for a hub model), for run metadata.
    """
    out_dir = Path(out_dir)
    record: dict[str, Any] = {"source": spec}
    if spec == EMBEDDED:
        record.update(kind="embedded", seed=seed)
    elif Path(spec).expanduser().is_dir():
        record.update(kind="local", path=str(Path(spec).expanduser().resolve()))
    elif _HUB_ID.fullmatch(spec) and not spec.startswith("."):
        snapshot = _hub_snapshot(spec)
        record.update(kind="hub", path=str(snapshot), revision=snapshot.name)
    else:
        raise ModelSourceError(
            f"train.base_model = {spec!r} (params.yaml) is not {EMBEDDED!r}, not an existing directory and "
            "not a hub id such as 'Qwen/Qwen2.5-0.5B-Instruct'. Fix the path or the id."
        )

    with atomic_directory(out_dir) as staging:
        if record["kind"] == "embedded":
            from resources.embedded.tiny_lm import build_tiny_causal_lm

            build_tiny_causal_lm(staging, seed=seed)
        record.update(_describe(str(staging) if record["kind"] == "embedded" else record["path"]))
        text = json.dumps(record, indent=2, sort_keys=True) + "\n"
        (staging / BASE_MODEL_FILE).write_text(text, encoding="utf-8")
    return record


def read_base_model_record(base_dir: Path) -> dict[str, Any]:
    """The ``base_model.json`` written by ``prepare_base_model``."""
    path = Path(base_dir) / BASE_MODEL_FILE
    if not path.is_file():
        raise ModelSourceError(
            f"{path} is missing: {base_dir} was not made by prepare_base_model. Materialize the "
            "base_model asset first."
        )
    return json.loads(path.read_text(encoding="utf-8"))


def resolve_model_source(base_dir: Path) -> str:
    """The path to give ``from_pretrained`` for the base model recorded in ``base_dir``."""
    record = read_base_model_record(base_dir)
    if record["kind"] == "embedded":
        return str(Path(base_dir))
    path = Path(record["path"])
    if not path.is_dir():
        restore = "Restore it"
        if record["kind"] == "hub":
            restore += f" with `hf download {record['source']} --revision {record['revision']}`"
        raise ModelSourceError(
            f"The base model recorded in {Path(base_dir) / BASE_MODEL_FILE} is no longer at {path}. "
            f"{restore}, or re-materialize the base_model asset."
        )
    return str(path)


def load_tokenizer(base_dir: Path) -> PreTrainedTokenizerBase:
    """The base model's tokenizer; pad falls back to EOS, and a chat template is required."""
    from transformers import AutoTokenizer

    source = resolve_model_source(base_dir)
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    if not tokenizer.chat_template:
        raise ModelSourceError(
            f"The tokenizer of {source} has no chat template, so conversations cannot be formatted. Pick an "
            "instruct/chat variant of the model (e.g. '...-Instruct'), or add a chat_template.jinja to the "
            "model directory."
        )
    if tokenizer.pad_token is None:
        # Padding positions are masked out of attention and loss, so reusing EOS is safe.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(base_dir: Path, *, quantization: str | None, dtype: str, device: str) -> PreTrainedModel:
    """Load the base causal LM, in 4-bit NF4 with double quantization when ``quantization == "nf4"``.

    ``dtype`` is the weight dtype of a full-precision load, and the compute dtype of a 4-bit one.
    """
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ValueError(
            f"quantization must be null or one of {', '.join(QUANTIZATIONS)}; got {quantization!r}."
        )
    compute_dtype = torch_dtype(dtype)
    source = resolve_model_source(base_dir)
    kwargs: dict[str, Any] = {"dtype": compute_dtype, "device_map": {"": device}, "local_files_only": True}
    if quantization == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    if quantization is not None and device == "cpu":
        _disable_cpu_bf16_repacking(model)
    return model


def _disable_cpu_bf16_repacking(model: PreTrainedModel) -> None:
    """Make 4-bit CPU inference compute exactly what training computes.

    On CPUs with AVX512-BF16, bitsandbytes repacks 4-bit weights on the first inference forward, rounding
    the block scales to bfloat16 and computing in bfloat16. Logits then drift by ~1e-3 from the training
    forward (fp32 de-quantize + matmul), which breaks merge verification and makes evaluation numbers
    depend on the CPU model; a repacked layer also stops supporting training.
    """
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit) and hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
