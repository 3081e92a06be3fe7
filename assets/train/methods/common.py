"""What every method family's settings share: the params.yaml key and help of each field, and checks.

A family's settings are a frozen dataclass whose fields are flat ``train.<name>`` settings in params.yaml;
each field's metadata holds its ``help``. Framework-free.
"""

from __future__ import annotations

from typing import Any

# Methods whose names these modules know; the registry (methods/__init__.py) maps each to its family.
LORA_TARGETS_HELP = (
    "Modules the adapter wraps: 'all-linear' (every linear layer but the output head, as in the QLoRA "
    "paper) or a list of module names (q_proj, v_proj...)."
)


def positive_int(name: str, value: Any) -> str | None:
    """A problem sentence when ``value`` is not a positive integer, else None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"train.{name} must be a positive integer; got {value!r}"
    return None


def non_negative_int(name: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"train.{name} must be an integer >= 0; got {value!r}"
    return None


def module_names(name: str, value: Any, *, allow_all_linear: bool) -> tuple[Any, str | None]:
    """Normalize a module-list setting (a YAML list becomes a tuple) and check it."""
    if isinstance(value, list):
        value = tuple(value)
    if value is None:
        return value, None
    if isinstance(value, str):
        if allow_all_linear and value == "all-linear":
            return value, None
        allowed = "'all-linear' or a list of module names" if allow_all_linear else "a list of module names"
        return value, f"train.{name} must be {allowed}; got {value!r}"
    if not value or not all(isinstance(item, str) and item for item in value):
        return value, f"train.{name} must be a non-empty list of module names; got {list(value)!r}"
    return value, None


def raise_problems(family: str, problems: list[str | None]) -> None:
    """Raise one ValueError listing every problem (None entries are fine values)."""
    found = [p for p in problems if p]
    if found:
        raise ValueError(f"Invalid {family} settings (params.yaml, section train): " + "; ".join(found) + ".")


def as_list(value: Any) -> Any:
    """A tuple of module names as the list peft's configs expect; other values unchanged."""
    return list(value) if isinstance(value, tuple) else value
