"""The search space of the hyperparameter search: which ``train`` settings may vary, and over what.

A space maps a ``train`` setting to a range or a list of values, as a user writes it in the job's run
config (or the CLI's ``--space`` YAML)::

    learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}   # log-uniform
    lora_dropout: {low: 0.0, high: 0.1}                     # uniform
    lora_r: {choices: [4, 8, 16]}                           # one of these (a plain list means the same)

A range of an integer setting samples integers (``step`` optional). Only settings that change what is
trained and keep validation losses comparable can vary (:data:`TUNABLE`); the others are refused with
the reason (:data:`NOT_TUNABLE`). Framework-free.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from assets.params import checked_value
from assets.shared.errors import InputError
from assets.train.settings import TrainSettings

# Settings a trial may change: the optimizer's, the schedule's and the method's own.
TUNABLE = (
    "learning_rate",
    "warmup_ratio",
    "weight_decay",
    "lr_scheduler",
    "gradient_accumulation_steps",
    "epochs",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "adalora_init_r",
    "adalora_target_r",
    "num_virtual_tokens",
)
# Settings that stay as params.yaml has them, and why: each reason is shown to a user who tries one.
NOT_TUNABLE = {
    "batch_size": "the validation loss is a mean of per-batch means over batch_size rows, so losses at "
    "different batch sizes are not comparable; vary gradient_accumulation_steps for the effective batch",
    "max_seq_length": "it changes which tokens the validation loss counts",
    "truncation": "it changes which tokens the validation loss counts",
    "method": "the method decides which other settings mean anything; run one search per method",
    "quantization": "it belongs to the method (qlora needs it, lora refuses it); run one search per method",
    "seed": "every trial trains with the same seed, so that losses differ by the settings alone",
    "max_steps": "set the length of every trial with the search's own max_steps",
}
# A learning-rate range from QLoRA's 2e-4 for real 0.5B-7B models (Dettmers et al., 2023) to beyond the
# tiny embedded model's 2e-3; ranks and dropout around peft's and the QLoRA paper's (r 8-64, dropout
# 0.05-0.1); warmup up to a tenth of the run.
DEFAULT_SPACE: dict[str, Any] = {
    "learning_rate": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
    "lora_r": {"choices": [4, 8, 16]},
    "lora_dropout": {"low": 0.0, "high": 0.1},
    "warmup_ratio": {"low": 0.0, "high": 0.1},
}
_RANGE_KEYS = {"low", "high", "log", "step"}


@dataclass(frozen=True)
class Dimension:
    """One setting of the space: a range ``[low, high]`` (log-uniform when ``log``; integers when the
    setting is an integer, every ``step``) or a list of ``choices``. ``kind`` is the setting's type."""

    name: str
    kind: type
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    def distribution(self) -> Any:
        """The Optuna distribution this dimension samples from."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.choices is not None:
            return CategoricalDistribution(self.choices)
        if self.kind is int:
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def probes(self) -> list[Any]:
        """Values to check against the base settings before anything trains: the ends or each choice."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def describe(self) -> str:
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        shape = "log-uniform" if self.log else "uniform"
        step = f", step {self.step:g}" if self.step else ""
        return f"{shape} {'integer ' if self.kind is int else ''}[{self.low:g}, {self.high:g}]{step}"


def _closest(name: str, names: Sequence[str]) -> str:
    match = difflib.get_close_matches(name, names, n=1)
    return f" Did you mean {match[0]!r}?" if match else ""


def _setting_types() -> dict[str, type]:
    hints = typing.get_type_hints(TrainSettings)
    return {name: hints[name] for name in TUNABLE}


def parse_space(space: Mapping[str, Any]) -> tuple[Dimension, ...]:
    """The dimensions of ``space`` (setting -> ``{low, high[, log][, step]}``, ``{choices: [...]}`` or a
    list), in the order given.

    Raises:
        InputError: naming ``search_space.<setting>`` for an empty space, a setting that is not a
            ``train`` setting (with the closest name) or that cannot vary (with the reason), a range
            without both ends or with ``low >= high``, a log range that is not positive, unknown keys
            or values of the wrong type.
    """
    if not isinstance(space, Mapping) or not space:
        raise InputError(
            "search_space is empty: give at least one train setting to search, e.g. "
            "{learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}}."
        )
    types = _setting_types()
    known = {field.name for field in dataclasses.fields(TrainSettings)}
    dimensions = []
    for name, spec in space.items():
        where = f"search_space.{name}"
        if name in NOT_TUNABLE:
            raise InputError(f"{where}: {name} cannot be searched: {NOT_TUNABLE[name]}.")
        if name not in types:
            what = "is not searched" if name in known else "is not a train setting"
            raise InputError(
                f"{where}: {name!r} {what}.{_closest(str(name), TUNABLE)} Settings that can be searched: "
                f"{', '.join(TUNABLE)}."
            )
        dimensions.append(_dimension(where, name, types[name], spec))
    return tuple(dimensions)


def _dimension(where: str, name: str, kind: type, spec: Any) -> Dimension:
    if isinstance(spec, list | tuple):
        spec = {"choices": list(spec)}
    if not isinstance(spec, Mapping):
        raise InputError(
            f"{where} is {spec!r}; give a range {{low: ..., high: ...}} (with log: true for a log-uniform "
            "one) or {choices: [...]}."
        )
    try:
        if "choices" in spec:
            if set(spec) != {"choices"}:
                raise InputError(f"{where}: give either choices or a range (low, high), not both.")
            choices = spec["choices"]
            if not isinstance(choices, list | tuple) or not choices:
                raise InputError(f"{where}.choices must be a non-empty list; got {choices!r}.")
            values = tuple(checked_value(where, value, kind) for value in choices)
            if len(set(values)) != len(values):
                raise InputError(f"{where}.choices {list(values)} lists a value twice.")
            return Dimension(name, kind, choices=values)
        unknown = sorted(set(spec) - _RANGE_KEYS)
        if unknown:
            raise InputError(
                f"{where}: unknown keys {unknown}; a range has low, high and optionally log and step."
            )
        if "low" not in spec or "high" not in spec:
            raise InputError(f"{where}: a range needs both low and high; got {dict(spec)}.")
        low = checked_value(f"{where}.low", spec["low"], kind)
        high = checked_value(f"{where}.high", spec["high"], kind)
        log = checked_value(f"{where}.log", spec.get("log", False), bool)
        step = spec.get("step")
        step = None if step is None else checked_value(f"{where}.step", step, kind)
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{exc} (the search space's {name})") from None
    if kind is str:
        raise InputError(f"{where}: {name} is text; give its values as {{choices: [...]}}.")
    if not low < high:
        raise InputError(f"{where}: low ({low}) must be below high ({high}).")
    if log and low <= 0:
        raise InputError(f"{where}: a log range needs low > 0; got {low}.")
    if log and step is not None:
        raise InputError(f"{where}: a log range cannot have a step (Optuna samples it continuously).")
    if step is not None and not step > 0:
        raise InputError(f"{where}.step must be > 0; got {step}.")
    return Dimension(name, kind, low=low, high=high, log=log, step=step)


def check_against(base: TrainSettings, dimensions: Sequence[Dimension]) -> None:
    """Refuse a space whose values the base settings cannot take (a LoRA rank for method ``ia3``, a
    warmup ratio of 1): each end of each range and each choice, one setting at a time, is checked
    as TrainSettings checks params.yaml, before anything trains.

    Raises:
        InputError: naming ``search_space.<setting>``, the value and TrainSettings' reason.
    """
    for dimension in dimensions:
        if dimension.name == "epochs" and base.max_steps > 0:
            raise InputError(
                f"search_space.epochs: every trial runs max_steps = {base.max_steps} optimizer steps, so "
                "epochs means nothing; leave it out of the search, or set max_steps to -1."
            )
        for value in dimension.probes():
            try:
                dataclasses.replace(base, **{dimension.name: value})
            except ValueError as exc:
                raise InputError(
                    f"search_space.{dimension.name} = {value!r} does not fit the train settings of "
                    f"params.yaml (method {base.method!r}): {exc} Change the range, or leave "
                    f"{dimension.name} out of the search."
                ) from None
