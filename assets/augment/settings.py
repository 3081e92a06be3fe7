"""Back-translation settings (params.yaml, section ``augment``), checked, and the model spec of each pivot.

Several pivot languages each need a forward (source -> pivot) and a backward (pivot -> source) model. A
model setting names them all at once: ``embedded`` builds a tiny pair per pivot, and a hub id or directory
may hold the placeholders ``{source}`` and ``{pivot}``, e.g. ``Helsinki-NLP/opus-mt-{source}-{pivot}``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Literal

from assets.augment.paraphrase_filter import validate_bounds
from resources.model_source import EMBEDDED
from resources.translators import BACKENDS

ROLES = ("system", "user", "assistant")
PLACEHOLDERS = ("source", "pivot")


@dataclass(frozen=True)
class AugmentSettings:
    """Back-translation settings; values come from params.yaml, section ``augment``.

    ``seed`` seeds the embedded translator weights and the row sample; decoding itself is greedy or beam
    search, never sampled, so the same models and rows always give the same paraphrases. ``turns`` are the
    roles whose messages are paraphrased (the others are copied verbatim); ``sample_rate`` is the share of
    eligible rows paraphrased, chosen by a hash of the row id and ``seed`` (a row keeps its draw when
    other rows are added, so a re-run with new data reuses the cached translations of the old rows).
    """

    forward_model: str
    backward_model: str
    source_lang: str
    pivot_langs: tuple[str, ...]
    turns: tuple[str, ...]
    sample_rate: float
    backend: str
    max_new_tokens: int
    num_beams: int
    batch_size: int
    min_similarity: float
    max_similarity: float
    min_length_ratio: float
    max_length_ratio: float
    seed: int

    def __post_init__(self) -> None:
        # Lists from params.yaml or the launchpad become tuples: the settings stay hashable and frozen.
        for name in ("pivot_langs", "turns"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        self._check_languages()
        self._check_turns()
        if (
            not isinstance(self.sample_rate, int | float)
            or isinstance(self.sample_rate, bool)
            or not 0.0 <= self.sample_rate <= 1.0
        ):
            raise ValueError(
                f"AugmentSettings.sample_rate must be a number in [0, 1] (the share of eligible rows "
                f"paraphrased), got {self.sample_rate!r}."
            )
        if self.backend not in BACKENDS:
            raise ValueError(
                f"AugmentSettings.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}."
            )
        for name in ("max_new_tokens", "num_beams", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"AugmentSettings.{name} must be a positive integer, got {value!r}.")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"AugmentSettings.seed must be a non-negative integer, got {self.seed!r}.")
        validate_bounds(self, owner="AugmentSettings")
        for name in ("forward_model", "backward_model"):
            self._check_model_template(name)

    def _check_languages(self) -> None:
        if not isinstance(self.source_lang, str) or not self.source_lang.strip():
            raise ValueError(
                f"AugmentSettings.source_lang must be a language code such as 'en', got {self.source_lang!r}."
            )
        pivots = self.pivot_langs
        if not isinstance(pivots, tuple) or not pivots:
            raise ValueError(
                f"AugmentSettings.pivot_langs must be a non-empty list of language codes such as "
                f"[de, fr], got {pivots!r}."
            )
        for pivot in pivots:
            if not isinstance(pivot, str) or not pivot.strip():
                raise ValueError(
                    f"AugmentSettings.pivot_langs must hold language codes such as 'de', got {pivot!r}."
                )
        if self.source_lang in pivots:
            raise ValueError(
                f"AugmentSettings.pivot_langs must not hold source_lang ({self.source_lang!r}): a round trip "
                "through the same language paraphrases nothing."
            )
        if len(set(pivots)) != len(pivots):
            raise ValueError(f"AugmentSettings.pivot_langs lists a language twice: {list(pivots)}.")

    def _check_turns(self) -> None:
        turns = self.turns
        if not isinstance(turns, tuple) or not turns or not set(turns) <= set(ROLES):
            raise ValueError(
                f"AugmentSettings.turns must be a non-empty list of roles among {', '.join(ROLES)} "
                f"(the messages to paraphrase), got {turns!r}."
            )
        if len(set(turns)) != len(turns):
            raise ValueError(f"AugmentSettings.turns lists a role twice: {list(turns)}.")

    def _check_model_template(self, name: str) -> None:
        spec = getattr(self, name)
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(
                f"AugmentSettings.{name} must be 'embedded', a directory or a hub id, got {spec!r}."
            )
        try:
            fields = {field for _, field, _, _ in string.Formatter().parse(spec) if field is not None}
        except ValueError as err:
            raise ValueError(
                f"AugmentSettings.{name} = {spec!r} is not a valid model template: {err}."
            ) from err
        unknown = fields - set(PLACEHOLDERS)
        if unknown:
            raise ValueError(
                f"AugmentSettings.{name} = {spec!r} uses {', '.join(sorted(repr(f) for f in unknown))}; the "
                "only placeholders are {source} and {pivot}, e.g. Helsinki-NLP/opus-mt-{source}-{pivot}."
            )
        if spec.strip() != EMBEDDED and len(self.pivot_langs) > 1 and "pivot" not in fields:
            raise ValueError(
                f"AugmentSettings.{name} = {spec!r} names one model, but pivot_langs lists "
                f"{len(self.pivot_langs)} languages: put {{pivot}} where the pivot language goes, e.g. "
                "Helsinki-NLP/opus-mt-{source}-{pivot} (forward) and Helsinki-NLP/opus-mt-{pivot}-{source} "
                "(backward)."
            )

    def model_spec(self, direction: Literal["forward", "backward"], pivot: str) -> str:
        """The model spec of one direction for ``pivot``, placeholders filled in."""
        template = self.forward_model if direction == "forward" else self.backward_model
        return template.format(source=self.source_lang, pivot=pivot)

    def source_tag(self, pivot: str) -> str:
        """The ``source`` value of rows paraphrased through ``pivot``."""
        return f"back_translation:{self.source_lang}->{pivot}"
