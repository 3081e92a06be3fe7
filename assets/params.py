"""params.yaml: the one home of pipeline defaults, and the project root it lives in.

The Dagster Config class of each stage is generated from its params.yaml section, so a setting is named,
typed and defaulted in exactly one place; the launchpad can still override any field for one run.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml

from resources.project import PROJECT_ROOT

PARAMS_FILE = "params.yaml"
T = TypeVar("T")
SECTIONS = ("data", "clean", "augment", "split", "train", "evaluate", "registry", "export")


class ParamsError(ValueError):
    """params.yaml is missing, malformed, or lacks a section or field."""


@functools.cache
def load_params(root: Path = PROJECT_ROOT) -> dict[str, dict[str, Any]]:
    """Read and check params.yaml; every stage section must be present and be a mapping."""
    path = root / PARAMS_FILE
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ParamsError(f"{path} not found: the pipeline reads its defaults from it.") from exc
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(params, dict):
        raise ParamsError(f"{path} must be a mapping of sections ({', '.join(SECTIONS)}).")
    for section in SECTIONS:
        if not isinstance(params.get(section), dict):
            raise ParamsError(f"{path}: section '{section}' is missing or not a mapping.")
    return params


def section(name: str, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """One stage's settings, as a fresh dict."""
    return dict(load_params(root)[name])


def section_hash(names: tuple[str, ...], root: Path = PROJECT_ROOT) -> str:
    """A short stable hash of some sections ("train") or single settings ("train.base_model"); part of
    each asset's code version."""
    params = load_params(root)
    values = {}
    for name in names:
        section_name, _, key = name.partition(".")
        values[name] = params[section_name][key] if key else params[section_name]
    payload = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def params_hash(root: Path = PROJECT_ROOT) -> str:
    """Hash of every section: the registry tags each model version with it."""
    return section_hash(SECTIONS, root)


def _field_type(value: Any) -> Any:
    # Nulls are optional strings (dates, paths); other types follow the YAML value.
    if value is None:
        return str | None
    if isinstance(value, list):
        return list[type(value[0]) if value else str]
    return type(value)


def config_class(name: str, base: type, root: Path = PROJECT_ROOT) -> type:
    """A Dagster Config class whose fields and defaults are params.yaml section ``name``."""
    import pydantic

    fields = {key: (_field_type(value), value) for key, value in section(name, root).items()}
    class_name = f"{name.capitalize()}Config"
    return pydantic.create_model(class_name, __base__=base, __doc__=f"params.yaml `{name}`", **fields)


def settings_from(cls: type[T], values: dict[str, Any]) -> T:
    """Build a logic module's settings dataclass from the fields of a stage Config it declares."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in values.items() if k in names})
