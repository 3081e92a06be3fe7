"""What a model setting names: the embedded model, a local directory, or a Hugging Face hub id.

The base model (``train.base_model``) and the translators (``augment.forward_model`` /
``augment.backward_model``) follow one rule, so a value means the same thing in every setting:

- ``"embedded"``: the tiny model built offline;
- an existing directory, absolute or relative to the project root (like ``data.raw_path``; never the
  working directory, so a command run from another folder finds the same model);
- something that looks like a path (starts with ``/``, ``.`` or ``~``, holds a backslash or more than one
  ``/``) but is no directory: an error naming the setting;
- otherwise a hub id (``name`` or ``owner/name``), read from the local Hugging Face cache only.

Plain Python, no heavy imports: the fingerprint below reads files, it does not load models.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from resources.project import PROJECT_ROOT, resolve_path

EMBEDDED = "embedded"
# A hub id is "name" or "owner/name" made of the characters the hub allows.
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)?")
# Weight files larger than this are fingerprinted from samples; every other file is hashed whole.
_WHOLE_FILE_LIMIT = 16 * 2**20
_SAMPLES = 16
_SAMPLE_BYTES = 64 * 2**10
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack", ".onnx")


class ModelSourceError(OSError):
    """A configured model cannot be found or used offline; the message names the setting and the fix."""


@dataclass(frozen=True)
class ModelSource:
    """A model setting, classified: ``kind`` is ``embedded``, ``local`` or ``hub``; ``spec`` is the value
    as configured (stripped); ``path`` is the directory of a local model."""

    kind: Literal["embedded", "local", "hub"]
    spec: str
    path: Path | None = None


def looks_like_path(spec: str) -> bool:
    """Whether ``spec`` can only mean a place on disk: hub ids never start with ``/``, ``.`` or ``~``, hold
    no backslash and at most one ``/``."""
    return spec.startswith(("/", ".", "~")) or "\\" in spec or spec.count("/") > 1


def classify_model_spec(spec: str, *, setting: str, root: Path = PROJECT_ROOT) -> ModelSource:
    """Classify a model setting by the module's rule; ``setting`` (e.g. ``"train.base_model"``) names it
    in errors and relative directories are looked up under ``root``."""
    value = spec.strip() if isinstance(spec, str) else spec
    if not isinstance(value, str) or not value:
        raise ModelSourceError(
            f"{setting} in params.yaml is {spec!r}; set it to {EMBEDDED!r}, a local model directory "
            "or a hub id such as 'owner/model-name'."
        )
    if value == EMBEDDED:
        return ModelSource("embedded", value)
    path = resolve_path(value, root)
    if path.is_dir():
        return ModelSource("local", value, path)
    if looks_like_path(value):
        raise ModelSourceError(
            f"{setting} = {value!r} (params.yaml) looks like a directory, but {path} does not exist "
            f"(relative paths are relative to the project root, {root}). Fix the path, or use "
            f"{EMBEDDED!r} or a hub id."
        )
    if not _HUB_ID.fullmatch(value):
        raise ModelSourceError(
            f"{setting} = {value!r} (params.yaml) is not {EMBEDDED!r}, not an existing directory "
            f"(looked for {path}) and not a hub id such as 'owner/model-name'. Fix the path or the id."
        )
    return ModelSource("hub", value)


def directory_fingerprint(directory: Path) -> str:
    """A sha256 that identifies a model directory's content wherever it is stored, and is cheap to take.

    It covers every file (hidden files and folders, such as the ``.cache`` that ``hf download
    --local-dir`` writes, and ``__pycache__`` are left out): its relative path and size, and its bytes:
    all of them for configs, tokenizers and small weight files, and for a weight file over 16 MiB sixteen
    evenly spaced 64 KiB blocks including the first and the last (its safetensors header and tail). Any
    retraining rewrites nearly every block, so new weights give a new fingerprint, while a multi-GB model
    costs about 1 MiB of reading per weight file. Paths and modification times are left out: a copy on
    another machine has the same fingerprint.
    """
    directory = Path(directory)
    digest = hashlib.sha256()
    for path in _model_files(directory):
        name = path.relative_to(directory).as_posix()
        size = path.stat().st_size
        digest.update(f"{name}\0{size}\0".encode())
        with path.open("rb") as handle:
            if size <= _WHOLE_FILE_LIMIT or not name.endswith(_WEIGHT_SUFFIXES):
                for block in iter(lambda: handle.read(2**20), b""):
                    digest.update(block)
            else:
                for index in range(_SAMPLES):
                    handle.seek(index * (size - _SAMPLE_BYTES) // (_SAMPLES - 1))
                    digest.update(handle.read(_SAMPLE_BYTES))
    return digest.hexdigest()


def _model_files(directory: Path) -> list[Path]:
    files = []
    # Symlinked files are followed (a cache snapshot links its files to blobs); symlinked folders are not,
    # so a link loop cannot trap the walk.
    for folder, subfolders, names in os.walk(directory):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d != "__pycache__"]
        files.extend(Path(folder) / name for name in names if not name.startswith("."))
    return sorted((p for p in files if p.is_file()), key=lambda p: p.relative_to(directory).as_posix())
