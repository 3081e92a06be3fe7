"""Finding and loading the translation models used for back-translation.

A translator is named by a spec: ``"embedded"`` (a tiny random Marian model built offline), a local
directory (absolute or relative to the project root), or a Hugging Face hub id such as
``Helsinki-NLP/opus-mt-en-de``; :mod:`resources.model_source` holds the rule that tells them apart. Hub
ids are only read from the local Hugging Face cache: nothing is ever downloaded at run time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from resources.embedded.tiny_marian import build_tiny_marian, is_complete
from resources.model_source import ModelSourceError, classify_model_spec
from resources.project import PROJECT_ROOT

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# The settings a translator spec comes from, for error messages.
SETTINGS = "augment.forward_model / augment.backward_model"


class TranslatorUnavailableError(ModelSourceError):
    """A translation model could not be found or loaded locally; the message says what to do."""


class Translator:
    """A sequence-to-sequence model and its tokenizer, translating batches of texts deterministically."""

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, name: str, device: str
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.device = device

    def __repr__(self) -> str:
        return f"Translator(name={self.name!r}, device={self.device!r})"

    def translate(
        self, texts: list[str], *, max_new_tokens: int, num_beams: int, batch_size: int
    ) -> list[str]:
        """Translate ``texts`` in order, with greedy (``num_beams=1``) or beam search; no sampling."""
        import torch

        for field, value in (
            ("max_new_tokens", max_new_tokens),
            ("num_beams", num_beams),
            ("batch_size", batch_size),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Translator.translate: {field} must be a positive integer, got {value!r}.")
        # Batching texts of similar length wastes less compute on padding; results go back in input order.
        order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
        results: list[str] = [""] * len(texts)
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                indices = order[start : start + batch_size]
                encoded = self.tokenizer(
                    [texts[i] for i in indices], return_tensors="pt", padding=True, truncation=True
                ).to(self.device)
                generated = self.model.generate(
                    **encoded, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False
                )
                decoded = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
                for i, text in zip(indices, decoded, strict=True):
                    results[i] = text.strip()
        return results


def resolve_translator(
    spec: str,
    *,
    direction: tuple[str, str],
    embedded_root: Path,
    seed: int,
    setting: str = SETTINGS,
    root: Path = PROJECT_ROOT,
) -> str:
    """Turn a translator spec into what ``load_translator`` takes: a local directory or a hub id.

    ``"embedded"`` builds the tiny model for ``direction`` under ``embedded_root/<src>-<tgt>`` once and
    reuses it while it is complete and was built with the same seed; an existing directory (absolute, or
    relative to ``root``) is returned as an absolute path; a hub id is returned unchanged. A spec that
    looks like a path but is no directory raises ``ModelSourceError`` naming ``setting``.
    """
    source = classify_model_spec(spec, setting=setting, root=root)
    if source.kind == "embedded":
        src_lang, tgt_lang = direction
        return str(_ensure_embedded(Path(embedded_root), src_lang=src_lang, tgt_lang=tgt_lang, seed=seed))
    if source.path is not None:
        return str(source.path.resolve())
    return source.spec


def _ensure_embedded(root: Path, *, src_lang: str, tgt_lang: str, seed: int) -> Path:
    target = root / f"{src_lang}-{tgt_lang}"
    if is_complete(target, src_lang=src_lang, tgt_lang=tgt_lang, seed=seed):
        return target.resolve()
    root.mkdir(parents=True, exist_ok=True)
    # Build beside the target and move it into place, so that an interrupted build or a concurrent run
    # never leaves a half-written directory that looks finished.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    try:
        build_tiny_marian(staging, src_lang=src_lang, tgt_lang=tgt_lang, seed=seed)
        if target.exists() and not is_complete(target, src_lang=src_lang, tgt_lang=tgt_lang, seed=seed):
            # A stale or unfinished earlier build in our own cache directory.
            shutil.rmtree(target)
        try:
            os.replace(staging, target)
        except OSError:
            if not is_complete(target, src_lang=src_lang, tgt_lang=tgt_lang, seed=seed):
                raise
            # Another process finished the same build first; theirs is identical.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target.resolve()


def _local_snapshot(hub_id: str, cache_dir: Path | None, setting: str = SETTINGS) -> str:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(hub_id, local_files_only=True, cache_dir=cache_dir)
    except (LocalEntryNotFoundError, HFValidationError) as err:
        raise TranslatorUnavailableError(
            f"Translation model {hub_id!r} is neither a local directory nor in the local Hugging Face cache "
            f"({cache_dir or 'HF_HUB_CACHE / HF_HOME'}). Nothing is downloaded at run time (hub access is "
            "off). Either fetch it on a machine with internet access (`hf download "
            f"{hub_id}`) and copy the cache here (set HF_HOME or HF_HUB_CACHE to it, with HF_HUB_OFFLINE=1), "
            f"or save the model with save_pretrained to a directory and put that directory in params.yaml "
            f"({setting}), or use 'embedded'."
        ) from err


def load_translator(
    path_or_id: str,
    *,
    device: str = "cpu",
    cache_dir: Path | None = None,
    root: Path = PROJECT_ROOT,
    setting: str = SETTINGS,
) -> Translator:
    """Load a translator from a local directory (absolute or relative to ``root``), or from the local
    Hugging Face cache for a hub id.

    ``cache_dir`` overrides the Hugging Face cache location (default: the ``HF_HUB_CACHE`` environment);
    ``setting`` names the params.yaml field the translator came from, in error messages. Raises
    ``TranslatorUnavailableError`` when the model is not on this machine or is no translation model.
    """
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    source = classify_model_spec(path_or_id, setting=setting, root=root)
    if source.kind == "embedded":
        raise ModelSourceError(
            "load_translator: 'embedded' names no model yet; pass the spec through resolve_translator, "
            "which builds the embedded translator and returns its directory."
        )
    location = (
        str(source.path) if source.path is not None else _local_snapshot(source.spec, cache_dir, setting)
    )
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=True)
        model = AutoModelForSeq2SeqLM.from_pretrained(location, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise TranslatorUnavailableError(
            f"Could not load a translation model from {location!r} ({setting} = {path_or_id!r}): {err}. "
            "The directory must hold a sequence-to-sequence model and its tokenizer saved with "
            f"save_pretrained, such as a Helsinki-NLP opus-mt checkpoint: fix {setting} in params.yaml, or "
            "use 'embedded'."
        ) from err
    model.to(device)
    model.eval()
    return Translator(model, tokenizer, name=path_or_id, device=device)
