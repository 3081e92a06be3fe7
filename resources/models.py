"""Model loading as a Dagster resource: the base LM and the translation models.

The real loading code for every source: "embedded" builds a tiny model offline (fixed seed), a local
directory or a hub id is loaded with from_pretrained. The device is an environment setting
(PIPELINE_DEVICE), not a pipeline parameter.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from resources.project import PROJECT_ROOT

if TYPE_CHECKING:
    from resources.translators import Translator


def device_from_env() -> str:
    return os.environ.get("PIPELINE_DEVICE", "cpu")


class ModelLoader(dg.ConfigurableResource):
    """Loads base models (quantized as training needs) and back-translation models."""

    device: str = "cpu"
    # Embedded translation models are built here once and reused (they are deterministic).
    embedded_root: str = str(PROJECT_ROOT / "models" / "embedded")

    def prepare_base(self, spec: str, out_dir: Path, *, seed: int) -> dict[str, Any]:
        from resources.model_loading import prepare_base_model, resolve_model_source

        with _people_errors():
            info = prepare_base_model(spec, out_dir, seed=seed)
            # Where the weights are on this machine; base_model.json itself stays machine-independent.
            return {**info, "weights_at": resolve_model_source(out_dir)}

    def base_record(self, base_dir: Path) -> dict[str, Any]:
        """The ``base_model.json`` record of a base_model directory (``source``, ``kind``...)."""
        from resources.model_loading import read_base_model_record

        with _people_errors():
            return read_base_model_record(base_dir)

    def causal_lm(self, base_dir: Path, *, quantization: str | None, dtype: str = "float32") -> Any:
        from resources.model_loading import load_causal_lm

        with _people_errors():
            return load_causal_lm(base_dir, quantization=quantization, dtype=dtype, device=self.device)

    def tokenizer(self, base_dir: Path) -> Any:
        from resources.model_loading import load_tokenizer

        with _people_errors():
            return load_tokenizer(base_dir)

    def translator(
        self,
        spec: str,
        *,
        direction: tuple[str, str],
        seed: int,
        setting: str,
        backend: str = "transformers",
        converted_root: str | None = None,
    ) -> Translator:
        """``setting`` names the params.yaml field ``spec`` came from, for error messages; ``backend`` is
        ``transformers`` or ``ctranslate2``, whose converted models are kept under ``converted_root``."""
        from resources.translators import load_translator, resolve_translator

        root = Path(self.embedded_root)
        with _people_errors():
            source = resolve_translator(
                spec, direction=direction, embedded_root=root, seed=seed, setting=setting
            )
            return load_translator(
                source,
                device=self.device,
                setting=setting,
                backend=backend,
                converted_root=Path(converted_root) if converted_root else None,
            )


@contextlib.contextmanager
def _people_errors() -> Iterator[None]:
    """A model that is missing, changed or unusable is the user's to fix: fail with the message (it
    names the setting and what to do), not with a traceback."""
    from resources.model_source import ModelSourceError

    try:
        yield
    except ModelSourceError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
