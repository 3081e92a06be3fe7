"""The training methods: one table mapping each ``train.method`` name to its family module.

A family module (lora, adalora, ia3, prompt, full) holds a frozen settings dataclass (its flat
``train.*`` keys in params.yaml, help per field, checked in ``__post_init__``) and ``build(settings,
method, total_steps=...)`` returning the peft config (None for full fine-tuning). ``mergeable`` says
whether the result can be folded into the base weights (peft ``merge_and_unload``), so export knows when
merging means nothing. Framework-free; peft is imported by the builders only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from assets.train.methods import adalora, full, ia3, lora, prompt


@dataclass(frozen=True)
class Method:
    """One ``train.method``: its settings family, builder and what it asks of the base model."""

    name: str
    settings_class: type
    build: Callable[..., Any]
    mergeable: bool
    # "required": trains on a quantized base only; "forbidden": on a full-precision base only.
    quantization: str
    # Prefix tuning feeds past key/values, which peft refuses under gradient checkpointing.
    gradient_checkpointing: bool
    summary: str


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("qlora", lora.LoraSettings, lora.build, True, "required", True, "LoRA on a 4-bit base"),
        Method(
            "lora", lora.LoraSettings, lora.build, True, "forbidden", True, "LoRA on a full-precision base"
        ),
        Method("dora", lora.LoraSettings, lora.build, True, "allowed", True, "weight-decomposed LoRA"),
        Method(
            "adalora", adalora.AdaLoraSettings, adalora.build, True, "allowed", True, "LoRA, adaptive rank"
        ),
        Method("ia3", ia3.IA3Settings, ia3.build, True, "allowed", True, "learned activation scales"),
        Method("prefix", prompt.PromptSettings, prompt.build, False, "allowed", False, "prefix tuning"),
        Method("prompt", prompt.PromptSettings, prompt.build, False, "allowed", True, "prompt tuning"),
        Method("p_tuning", prompt.PromptSettings, prompt.build, False, "allowed", True, "P-tuning"),
        Method("full", full.FullSettings, full.build, False, "forbidden", True, "every weight trained"),
    )
}


def _declared_defaults() -> dict[str, tuple[Any, set[str]]]:
    """Every method-specific key -> (its default, the methods that use it)."""
    declared: dict[str, tuple[Any, set[str]]] = {}
    for method in METHODS.values():
        for f in dataclasses.fields(method.settings_class):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            previous = declared.get(f.name)
            if previous is not None and previous[0] != default:
                raise AssertionError(f"train.{f.name} has two defaults: {previous[0]!r} and {default!r}")
            declared[f.name] = (default, (previous[1] if previous else set()) | {method.name})
    return declared


METHOD_SETTINGS = _declared_defaults()


def method(name: Any) -> Method:
    """The method called ``name``; ValueError naming the allowed values otherwise."""
    if name not in METHODS:
        raise ValueError(f"train.method must be one of {sorted(METHODS)}; got {name!r}")
    return METHODS[name]


def _same(value: Any, default: Any) -> bool:
    normalize = lambda v: list(v) if isinstance(v, tuple | list) else v  # noqa: E731
    return normalize(value) == normalize(default)


def method_settings(name: str, values: Mapping[str, Any]) -> tuple[Method, Any]:
    """The method ``name`` and its family settings built from the flat ``train`` values.

    Raises ValueError when the method is unknown, a value is invalid, or a method-specific setting of
    another family differs from its default: it would mean nothing here, and silently ignoring it hides
    a mistake. The message names the setting, the methods it belongs to and the allowed values.
    """
    chosen = method(name)
    own = {f.name for f in dataclasses.fields(chosen.settings_class)}
    meaningless = [
        f"train.{key} = {values[key]!r} means nothing for method {name!r} (it is a setting of "
        f"{', '.join(sorted(users))}); set it back to {default!r} or choose one of those methods"
        for key, (default, users) in sorted(METHOD_SETTINGS.items())
        if key not in own and key in values and not _same(values[key], default)
    ]
    if meaningless:
        raise ValueError("; ".join(meaningless))
    return chosen, chosen.settings_class(**{key: values[key] for key in own if key in values})
