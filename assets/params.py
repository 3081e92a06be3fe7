"""params.yaml: the one home of pipeline defaults, and the project root it lives in.

The Dagster Config class of each stage is generated from its params.yaml section, so a setting is named,
typed and defaulted in exactly one place; the launchpad can still override any field for one run.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from resources.project import PROJECT_ROOT

PARAMS_FILE = "params.yaml"
T = TypeVar("T")
SECTIONS = ("data", "clean", "augment", "split", "train", "evaluate", "registry", "export", "retention")
# The types a setting (or each item of a list setting) may have; null is allowed for a whole setting.
SCALARS = (str, int, float, bool)
# A YAML 1.2 float with an exponent. PyYAML follows YAML 1.1, which wants a dot and a signed exponent, so
# it reads `2e-4` or `1E5` as strings (DVC, on YAML 1.2, reads floats): these plain scalars become floats.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")


class ParamsError(ValueError):
    """params.yaml is missing, malformed, or lacks a section or field."""


class _ParamsLoader(yaml.SafeLoader):
    """``yaml.safe_load`` with exponent floats read as floats, and two things DVC cannot read refused
    with the line to fix: an unquoted date or time (a YAML timestamp: DVC fails on it when it records a
    stage, after the stage's outputs were written) and a key given twice in one mapping (PyYAML keeps
    the last silently; DVC calls the file corrupt). Only plain scalars are affected: "2e-4" stays text.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise ParamsError(f"params.yaml line {line}: '{key}' is given twice; keep one of them.")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _refuse_timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    raise ParamsError(
        f"params.yaml line {node.start_mark.line + 1}: {node.value} is an unquoted date; DVC cannot record "
        f"it. Quote it: '{node.value}'."
    )


_ParamsLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+.0123456789"))
_ParamsLoader.add_constructor("tag:yaml.org,2002:timestamp", _refuse_timestamp)


def load_params(root: Path = PROJECT_ROOT) -> dict[str, dict[str, Any]]:
    """Read and check params.yaml; every stage section must be present and be a mapping of settings, each
    a scalar (string, number, boolean, null) or a list of scalars of one type.

    The file is read again whenever it changed (size or modification time): a long-running Dagster code
    server, its sensor and its schedule see an edit at their next evaluation, without a reload.
    """
    path = root / PARAMS_FILE
    try:
        stat = path.stat()
    except FileNotFoundError as exc:
        raise ParamsError(f"{path} not found: the pipeline reads its defaults from it.") from exc
    return _load_params(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _load_params(path: Path, mtime_ns: int, size: int) -> dict[str, dict[str, Any]]:
    try:
        params = yaml.load(path.read_text(encoding="utf-8"), Loader=_ParamsLoader)  # a SafeLoader
    except FileNotFoundError as exc:
        raise ParamsError(f"{path} not found: the pipeline reads its defaults from it.") from exc
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(params, dict):
        raise ParamsError(f"{path} must be a mapping of sections ({', '.join(SECTIONS)}).")
    for name in params:
        if name not in SECTIONS:
            raise ParamsError(f"{path}: section '{name}' is not read by any stage{closest(name, SECTIONS)}")
    for section in SECTIONS:
        if not isinstance(params.get(section), dict):
            raise ParamsError(f"{path}: section '{section}' is missing or not a mapping.")
    for name, settings in params.items():
        if isinstance(settings, dict):
            for key, value in settings.items():
                _check_setting(path, name, key, value)
    return params


def _check_setting(path: Path, section_name: str, key: object, value: object) -> None:
    """Raise a ParamsError unless ``key`` can name a Config field and ``value`` can be its default."""
    where = f"{path}: {section_name}.{key}"
    if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
        raise ParamsError(
            f"{where}: a setting name must be a word of letters, digits and underscores that starts with a "
            f"letter, got {key!r} (YAML reads yes/no/on/off and numbers as non-text keys). Rename it."
        )
    if value is None or isinstance(value, SCALARS):
        return
    if isinstance(value, list):
        kinds = {type(item) for item in value}
        if kinds <= set(SCALARS) and len(kinds) <= 1:
            return
        raise ParamsError(
            f"{where} is {value!r}: a list setting must hold values of one type (all strings, all integers, "
            "all floats or all booleans), without nulls or nested lists or mappings. Make the items alike, "
            "e.g. write 1.0 instead of 1 beside 2.5, or quote them all."
        )
    raise ParamsError(
        f"{where} is a {type(value).__name__} ({value!r}); a setting must be a single value (string, "
        "number, true/false or null) or a list of them. Flatten it into separate settings, or quote it "
        "to keep it as text."
    )


def section(name: str, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """One stage's settings, as a fresh dict."""
    return dict(load_params(root)[name])


def setting_values(entries: tuple[str, ...], root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """Config field name -> current params.yaml value for params entries: a whole section (``"clean"``)
    gives all its settings, a single setting (``"registry.model_name"``) gives that one. Raises ParamsError
    when two entries give the same field name or a setting is missing."""
    params = load_params(root)
    values: dict[str, Any] = {}
    for entry in entries:
        section_name, _, key = entry.partition(".")
        settings = params[section_name]
        if key and key not in settings:
            raise ParamsError(f"{root / PARAMS_FILE}: setting '{entry}' is missing.")
        for name, value in ({key: settings[key]} if key else settings).items():
            if name in values:
                raise ParamsError(f"params entries {entries} give the setting name '{name}' twice.")
            values[name] = value
    return values


def settings_hash(values: Any) -> str:
    """A short stable hash of settings (any JSON-able value; keys sorted, other types as text): the one
    way the project fingerprints settings, in code versions, run tags and registry lineage."""
    payload = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def section_hash(names: tuple[str, ...], root: Path = PROJECT_ROOT) -> str:
    """A short stable hash of some sections ("train") or single settings ("train.base_model"); part of
    each asset's code version."""
    params = load_params(root)
    values = {}
    for name in names:
        section_name, _, key = name.partition(".")
        values[name] = params[section_name][key] if key else params[section_name]
    return settings_hash(values)


def _field_type(value: Any) -> Any:
    # Nulls are optional strings (dates, paths); other types follow the YAML value.
    if value is None:
        return str | None
    if isinstance(value, list):
        return list[type(value[0]) if value else str]
    return type(value)


def config_class(
    name: str,
    base: type,
    root: Path = PROJECT_ROOT,
    *,
    entries: tuple[str, ...] | None = None,
    exclude: tuple[str, ...] = (),
) -> type:
    """A Dagster Config class named after ``name`` whose fields and defaults are the params.yaml settings
    of ``entries`` (default: the section ``name``; see :func:`setting_values`), less ``exclude``."""
    import pydantic

    values = setting_values(entries or (name,), root)
    fields = {key: (_field_type(value), value) for key, value in values.items() if key not in exclude}
    class_name = "".join(part.capitalize() for part in name.split("_")) + "Config"
    sources = ", ".join(f"`{entry}`" for entry in entries or (name,))
    return pydantic.create_model(class_name, __base__=base, __doc__=f"params.yaml {sources}", **fields)


def closest(name: str, known: Any) -> str:
    """'; did you mean X?' for the known name closest to ``name`` (difflib's ratio, at least 0.6), else
    a list of the known names: the end of an "unknown name" message."""
    names = sorted(str(k) for k in known)
    match = difflib.get_close_matches(str(name), names, n=1)
    if match:
        return f"; did you mean '{match[0]}'?"
    return f"; known: {', '.join(names)}." if names else "."


def qualified_names(entries: tuple[str, ...], root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Config field name -> ``section.key`` for params entries (as :func:`setting_values` reads them), so a
    message about a field names the line of params.yaml to edit."""
    params = load_params(root)
    names: dict[str, str] = {}
    for entry in entries:
        section_name, _, key = entry.partition(".")
        for name in [key] if key else params[section_name]:
            names[name] = f"{section_name}.{name}"
    return names


def settings_from(cls: type[T], values: dict[str, Any], names: dict[str, str] | None = None) -> T:
    """Build a logic module's settings dataclass from the fields of a stage Config it declares.

    Each value is checked against the field's annotation first (:func:`checked_value`), because a Config
    field takes its type from the YAML value: ``enabled: 'no'`` (quoted) would otherwise reach the code as
    the text "no", which is true. Raises ValueError naming the setting (as ``names`` spells it, e.g.
    ``data.pii_redaction`` from :func:`qualified_names`); an int is accepted for a float.
    """
    names = names or {}
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation that cannot be resolved here: nothing to check against
        hints = {}
    picked = {k: v for k, v in values.items() if k in fields}
    required = {
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    if missing := sorted(required - set(picked)):
        raise ValueError(
            f"setting(s) {', '.join(repr(names.get(m, m)) for m in missing)} missing: add them to their "
            "section of params.yaml (a misspelled name is not read)."
        )
    return cls(**{k: checked_value(names.get(k, k), v, hints.get(k, Any)) for k, v in picked.items()})


_TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def checked_value(name: str, value: Any, annotation: Any) -> Any:
    """``value`` if it fits ``annotation`` (bool, int, float, str, X | None, list[X], tuple[X, ...],
    Literal); an int for a float comes back as a float. Other annotations are not checked.

    Raises:
        ValueError: naming the setting, the value and what it must be.
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin is typing.Literal:
        if value in args:
            return value
        raise ValueError(f"setting '{name}' is {value!r}; it must be one of {list(args)}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return checked_value(name, value, option)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(
            errors[0] if len(errors) == 1 else f"setting '{name}' is {value!r}: " + "; ".join(errors)
        )
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ValueError(f"setting '{name}' is {value!r}; it must be a list.")
        item = args[0] if args else Any
        items = [checked_value(name, v, item) for v in value]
        return type(value)(items)
    if annotation in _TYPE_WORDS:
        if annotation is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        # bool is a subclass of int, but `epochs: true` is a mistake, not 1.
        fits = isinstance(value, annotation) and (annotation is bool or not isinstance(value, bool))
        if not fits:
            kind = "text" if isinstance(value, str) else type(value).__name__
            raise ValueError(
                f"setting '{name}' is {value!r} ({kind}); it must be {_TYPE_WORDS[annotation]}"
                + (" (write it without quotes)." if isinstance(value, str) else ".")
            )
    return value
