"""Resolve, record and load the base causal LM and its tokenizer, offline.

``prepare_base_model`` turns the ``train.base_model`` setting into a directory that says which weights
to use: the tiny embedded model is built into it; a local directory or a hub id already in the local
Hugging Face cache is recorded in ``base_model.json`` (weights are not copied). Everything that loads the
base model afterwards goes through ``resolve_model_source``, so a run always uses the recorded weights.
Nothing here downloads: a hub model must be fetched beforehand (``hf download <id>``).

``base_model.json`` holds no machine-specific path, because its md5 is the base_model asset's data
version and is stamped on every registered adapter: the same base must give the same bytes on every
checkout. A hub model is recorded by id and commit hash, and its cache snapshot is looked up at load
time; a local directory by the path as configured (relative to the project root) and a content
fingerprint, checked at load time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resources.artifacts import atomic_directory
from resources.model_source import (
    EMBEDDED,
    ModelSourceError,
    classify_model_spec,
    directory_fingerprint,
)
from resources.project import PROJECT_ROOT, resolve_path

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SETTING = "train.base_model"
BASE_MODEL_FILE = "base_model.json"
QUANTIZATIONS = ("nf4",)
DTYPES = ("float32", "bfloat16", "float16")


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype for a setting such as ``"float32"``; a clear error for anything else."""
    import torch

    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {name!r}.")
    return getattr(torch, name)


def _hub_snapshot(repo_id: str, revision: str | None = None) -> Path:
    """The local cache snapshot of ``repo_id`` (at ``revision``, else the cached main), or a
    ModelSourceError telling how to fetch it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError) as error:
        fetch = f"hf download {repo_id}" + (f" --revision {revision}" if revision else "")
        at = f" at revision {revision}" if revision else ""
        raise ModelSourceError(
            f"Base model {repo_id!r}{at} is neither a local directory nor in the local Hugging Face cache, "
            f"and this pipeline never downloads. Fetch it first (`{fetch}`), or set {SETTING} in "
            f"params.yaml to a local directory or to {EMBEDDED!r}. ({error})"
        ) from error


def _describe(source: str, *, spec: str) -> dict[str, Any]:
    """Model type, vocabulary size and parameter count, read from the config without loading weights;
    ``spec`` is the setting's value, for the error message."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ModelSourceError(
            f"{SETTING} = {spec!r} (params.yaml): {source} does not hold a transformers model with a usable "
            f"config.json ({error}). Point {SETTING} at a directory written by save_pretrained (config.json, "
            f"weights, tokenizer), a hub id in the local cache, or {EMBEDDED!r}."
        ) from error
    # Building on the meta device allocates nothing, so this is cheap even for large models.
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {
        "model_type": config.model_type,
        "vocab_size": int(config.vocab_size),
        "parameters": int(model.num_parameters()),
    }


def prepare_base_model(spec: str, out_dir: Path, *, seed: int, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """Make ``out_dir`` name the base model ``spec`` and return its ``base_model.json`` record.

    ``spec`` is ``"embedded"`` (build the tiny model into ``out_dir`` with ``seed``), an existing
    directory (absolute, or relative to ``root``) or a hub id already in the local cache. The record has
    ``source`` (the spec as configured), ``kind``, ``model_type``, ``vocab_size`` and ``parameters``, plus
    ``seed`` (embedded), ``fingerprint`` (local) or ``revision`` (hub, the cached commit hash).
    """
    source = classify_model_spec(spec, setting=SETTING, root=root)
    record: dict[str, Any] = {"source": source.spec, "kind": source.kind}
    location: Path | None = source.path
    if source.kind == "embedded":
        record["seed"] = seed
    elif source.kind == "hub":
        location = _hub_snapshot(source.spec)
        # A snapshot folder is named by its commit hash: loading later pins exactly these files.
        record["revision"] = location.name

    with atomic_directory(Path(out_dir)) as staging:
        if source.kind == "embedded":
            from resources.embedded.tiny_lm import build_tiny_causal_lm

            location = build_tiny_causal_lm(staging, seed=seed)
        assert location is not None
        record.update(_describe(str(location), spec=source.spec))
        if source.kind == "local":
            record["fingerprint"] = directory_fingerprint(location)
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


def resolve_model_source(base_dir: Path, *, root: Path = PROJECT_ROOT) -> str:
    """The directory to give ``from_pretrained`` for the base model recorded in ``base_dir``: the hub
    snapshot of the recorded revision, or the recorded local directory (relative to ``root``) after
    checking that its content still has the recorded fingerprint."""
    record = read_base_model_record(base_dir)
    where = Path(base_dir) / BASE_MODEL_FILE
    kind = record.get("kind")
    if kind == "embedded":
        return str(Path(base_dir))
    if kind == "hub" and isinstance(record.get("revision"), str):
        return str(_hub_snapshot(record["source"], record["revision"]))
    if kind != "local" or not isinstance(record.get("fingerprint"), str):
        raise ModelSourceError(
            f"{where} was written by an older or unknown version of the pipeline (kind {kind!r}). "
            "Re-materialize the base_model asset."
        )
    path = resolve_path(record["source"], root)
    if not path.is_dir():
        raise ModelSourceError(
            f"The base model recorded in {where} ({SETTING} = {record['source']!r}) is no longer at "
            f"{path}. Restore it, or re-materialize the base_model asset."
        )
    if directory_fingerprint(path) != record["fingerprint"]:
        raise ModelSourceError(
            f"The base model at {path} changed since {where} recorded it, so an adapter trained now would "
            "not match the recorded base. Re-materialize the base_model asset (then retrain), or restore "
            "the files it recorded."
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
