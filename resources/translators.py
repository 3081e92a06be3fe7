"""Finding and loading the translation models used for back-translation.

A translator is named by a spec: ``"embedded"`` (a tiny random Marian model built offline), a local
directory (absolute or relative to the project root), or a Hugging Face hub id such as
``Helsinki-NLP/opus-mt-en-de``; :mod:`resources.model_source` holds the rule that tells them apart. Hub
ids are only read from the local Hugging Face cache: nothing is ever downloaded at run time.

Two backends run the same checkpoint. ``transformers`` generates with the model itself; ``ctranslate2``
converts the checkpoint once into CTranslate2's format (kept under ``converted_root``, keyed by the
translator's identity) and decodes with it, 9-16x faster on the embedded pair on a 2-core CPU
(benchmarks/backtranslation.py, docs/benchmarks.md). Both decode greedily or with beam search, never
sampled.

Every translator has an ``identity`` that changes whenever its outputs could: the hub id and the cached
revision, or the content fingerprint of a directory (for the embedded model, a function of its languages,
seed and format). Back-translation caches translations under it. The tokenizer and config are read when
the translator is made, so a wrong model fails at once; the weights are loaded on first use, so a run
whose translations are all cached never loads them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resources.embedded.tiny_marian import build_tiny_marian, is_complete
from resources.model_source import ModelSourceError, classify_model_spec, directory_fingerprint
from resources.project import PROJECT_ROOT

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# The settings a translator spec comes from, for error messages.
SETTINGS = "augment.forward_model / augment.backward_model"
TRANSFORMERS = "transformers"
CTRANSLATE2 = "ctranslate2"
BACKENDS = (TRANSFORMERS, CTRANSLATE2)
# A converted CTranslate2 model holds this file; conversions are moved into place whole, so its presence
# means a finished one.
_CONVERTED_MARKER = "model.bin"


class TranslatorUnavailableError(ModelSourceError):
    """A translation model could not be found or loaded locally; the message says what to do."""


def _check_options(max_new_tokens: int, num_beams: int, batch_size: int) -> None:
    for field, value in (
        ("max_new_tokens", max_new_tokens),
        ("num_beams", num_beams),
        ("batch_size", batch_size),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"Translator.translate: {field} must be a positive integer, got {value!r}.")


def _unusable(location: str, setting: str, spec: str, err: object) -> TranslatorUnavailableError:
    return TranslatorUnavailableError(
        f"Could not load a translation model from {location!r} ({setting} = {spec!r}): {err}. "
        "The directory must hold a sequence-to-sequence model and its tokenizer saved with "
        f"save_pretrained, such as a Helsinki-NLP opus-mt checkpoint: fix {setting} in params.yaml, or "
        "use 'embedded'."
    )


class Translator:
    """A sequence-to-sequence model and its tokenizer (transformers backend), translating batches of texts
    deterministically. The weights are loaded on first use."""

    backend = TRANSFORMERS

    def __init__(
        self,
        location: str,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str,
        identity: str,
        device: str,
        setting: str = SETTINGS,
    ) -> None:
        self.location = location
        self.tokenizer = tokenizer
        self.name = name
        self.identity = identity
        self.device = device
        self.setting = setting
        self._model: PreTrainedModel | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={self.device!r})"

    @property
    def model(self) -> PreTrainedModel:
        """The model, loaded on first access; ``TranslatorUnavailableError`` when its weights are unusable."""
        if self._model is None:
            from transformers import AutoModelForSeq2SeqLM

            try:
                model = AutoModelForSeq2SeqLM.from_pretrained(self.location, local_files_only=True)
            except (OSError, ValueError, KeyError) as err:
                raise _unusable(self.location, self.setting, self.name, err) from err
            model.to(self.device)
            model.eval()
            self._model = model
        return self._model

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), truncation=True)["input_ids"]

    def translate(
        self, texts: list[str], *, max_new_tokens: int, num_beams: int, batch_size: int
    ) -> list[str]:
        """Translate ``texts`` in order, with greedy (``num_beams=1``) or beam search; no sampling."""
        import torch

        _check_options(max_new_tokens, num_beams, batch_size)
        results: list[str] = [""] * len(texts)
        # A blank text has nothing to translate: it stays blank (in either backend).
        todo = [i for i, text in enumerate(texts) if text.strip()]
        if not todo:
            return results
        encoded = dict(zip(todo, self._encode([texts[i] for i in todo]), strict=True))
        # Batches of texts of similar token length waste less compute on padding: longest first (a memory
        # problem shows at once), ties in input order; results go back in input order.
        order = sorted(todo, key=lambda i: (-len(encoded[i]), i))
        model = self.model
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                indices = order[start : start + batch_size]
                batch = self.tokenizer.pad(
                    {"input_ids": [encoded[i] for i in indices]}, return_tensors="pt"
                ).to(self.device)
                generated = model.generate(
                    **batch, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False
                )
                decoded = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
                for i, text in zip(indices, decoded, strict=True):
                    results[i] = text.strip()
        return results


class Ctranslate2Translator(Translator):
    """The same checkpoint decoded by CTranslate2: converted once into ``converted_dir`` (on first use),
    tokenized and detokenized by the checkpoint's own tokenizer, decoding options mapped so that the
    outputs match the transformers backend's (the benchmark counts the texts where they differ)."""

    backend = CTRANSLATE2

    def __init__(
        self, location: str, tokenizer: PreTrainedTokenizerBase, *, converted_dir: Path, **kwargs: Any
    ) -> None:
        super().__init__(location, tokenizer, **kwargs)
        self.converted_dir = converted_dir
        self._engine: Any = None
        from transformers import GenerationConfig

        try:
            generation = GenerationConfig.from_pretrained(location, local_files_only=True)
        except OSError:
            generation = None
        # transformers counts a forced end-of-sequence token in max_new_tokens; CTranslate2 does not.
        self._forced_eos = generation is not None and generation.forced_eos_token_id is not None

    @property
    def engine(self) -> Any:
        """The ``ctranslate2.Translator``, converting the checkpoint first when no conversion is cached."""
        if self._engine is None:
            import ctranslate2
            import torch

            convert_to_ctranslate2(self.location, self.converted_dir, setting=self.setting, spec=self.name)
            # As many threads as torch uses, so that the two backends compare on the same resources.
            self._engine = ctranslate2.Translator(
                str(self.converted_dir), device=self.device, intra_threads=torch.get_num_threads()
            )
        return self._engine

    def translate(
        self, texts: list[str], *, max_new_tokens: int, num_beams: int, batch_size: int
    ) -> list[str]:
        """Translate ``texts`` in order; CTranslate2 sorts each call's inputs by length into batches."""
        _check_options(max_new_tokens, num_beams, batch_size)
        results: list[str] = [""] * len(texts)
        todo = [i for i, text in enumerate(texts) if text.strip()]
        if not todo:
            return results
        tokens = [self.tokenizer.convert_ids_to_tokens(ids) for ids in self._encode([texts[i] for i in todo])]
        translated = self.engine.translate_batch(
            tokens,
            max_batch_size=batch_size,
            batch_type="examples",
            beam_size=num_beams,
            max_input_length=0,
            max_decoding_length=max(1, max_new_tokens - 1 if self._forced_eos else max_new_tokens),
        )
        for i, result in zip(todo, translated, strict=True):
            ids = self.tokenizer.convert_tokens_to_ids(result.hypotheses[0])
            results[i] = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return results


def convert_to_ctranslate2(location: str, target: Path, *, setting: str = SETTINGS, spec: str = "") -> Path:
    """Convert the checkpoint at ``location`` into a CTranslate2 model directory ``target`` (float32, the
    same weights), unless a finished conversion is there; returns ``target``."""
    target = Path(target)
    if (target / _CONVERTED_MARKER).is_file():
        return target
    import ctranslate2

    target.parent.mkdir(parents=True, exist_ok=True)
    # Convert beside the target and move it into place: an interrupted conversion leaves nothing that
    # looks finished, and a concurrent one that finished first wins (the result is the same).
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        try:
            ctranslate2.converters.TransformersConverter(location).convert(str(staging), force=True)
        except (OSError, ValueError, KeyError, NotImplementedError) as err:
            raise _unusable(
                location, setting, spec or location, f"CTranslate2 cannot convert it ({err})"
            ) from err
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / _CONVERTED_MARKER).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


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


def translator_identity(spec: str, location: str, *, kind: str) -> str:
    """What a translator's outputs depend on, wherever it is stored: ``hub:<id>@<revision>`` for a hub
    model (the snapshot directory is named by its commit), ``dir:<sha256>`` of a directory's content
    otherwise (the embedded model included)."""
    if kind == "hub":
        return f"hub:{spec}@{Path(location).name}"
    return f"dir:{directory_fingerprint(Path(location))}"


def load_translator(
    path_or_id: str,
    *,
    device: str = "cpu",
    cache_dir: Path | None = None,
    root: Path = PROJECT_ROOT,
    setting: str = SETTINGS,
    backend: str = TRANSFORMERS,
    converted_root: Path | None = None,
) -> Translator:
    """Load a translator from a local directory (absolute or relative to ``root``), or from the local
    Hugging Face cache for a hub id.

    ``cache_dir`` overrides the Hugging Face cache location (default: the ``HF_HUB_CACHE`` environment);
    ``setting`` names the params.yaml field the translator came from, in error messages. ``backend`` is
    ``transformers`` or ``ctranslate2``; the latter keeps its converted model under ``converted_root``.
    Raises ``TranslatorUnavailableError`` when the model is not on this machine or is no translation
    model (its config and tokenizer are read now; its weights on first use).
    """
    from transformers import AutoConfig, AutoTokenizer

    if backend not in BACKENDS:
        raise ValueError(f"load_translator: backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
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
        config = AutoConfig.from_pretrained(location, local_files_only=True)
        if not getattr(config, "is_encoder_decoder", False):
            raise ValueError(f"it holds a {config.model_type!r} model, which is no encoder-decoder")
        tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise _unusable(location, setting, path_or_id, err) from err
    options: dict[str, Any] = {
        "name": path_or_id,
        "identity": translator_identity(source.spec, location, kind=source.kind),
        "device": device,
        "setting": setting,
    }
    if backend == TRANSFORMERS:
        return Translator(location, tokenizer, **options)
    if importlib.util.find_spec("ctranslate2") is None:
        raise TranslatorUnavailableError(
            f"augment.backend is {CTRANSLATE2!r}, but the ctranslate2 package is not installed: "
            f"`pip install 'ctranslate2>=4.8,<5'`, or set augment.backend to {TRANSFORMERS!r}."
        )
    if converted_root is None:
        raise ValueError("load_translator: the ctranslate2 backend needs converted_root.")
    converted_dir = Path(converted_root) / hashlib.sha256(options["identity"].encode()).hexdigest()[:24]
    return Ctranslate2Translator(location, tokenizer, converted_dir=converted_dir, **options)
