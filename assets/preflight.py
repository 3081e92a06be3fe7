"""Preflight: every setting of a run checked before its first step.

Each asset builds its logic settings (frozen dataclasses that validate themselves) from its Config when
it starts, so a bad ``train.method`` used to fail only at ``adapter``, after every data stage had run.
:func:`preflight` builds the same settings, from the same values and with the same checks
(:func:`assets.params.settings_from`), for every stage a run will execute, before any of them runs, and
reports every problem at once, each naming its ``section.key``. It also refuses a setting no stage reads
(a misspelled key would otherwise be silently ignored), naming the closest known key, and, for a run
that evaluates, registers or exports, checks that the model registry can be used (a tracking server that
answers within the registry's short timeout, a readable SQLite file), so an unreachable server fails the
run in seconds, before its data stages.

Framework-free: the CLI, the schedule and the sensor call it before they launch a run. The settings
classes are named as ``module:Class`` text and imported when checked, so this module is no code
dependency of any stage (``assets/stages.py`` follows import statements) and loading it imports no
stage's logic.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from assets import stages
from assets.params import checked_value, closest, load_params, qualified_names, setting_values, settings_from
from assets.shared.errors import InputError
from resources.project import PROJECT_ROOT

# The logic settings each stage builds from its Config (its asset's `stage_settings` calls).
STAGE_SETTINGS: dict[str, tuple[str, ...]] = {
    "raw_examples": ("assets.ingest.settings:IngestOptions",),
    "clean": ("assets.clean.pipeline:CleanSettings",),
    "augmented_examples": ("assets.augment.settings:AugmentSettings",),
    "split": ("assets.split.timesplit:SplitSettings",),
    "base_model": (),
    "adapter": ("assets.train.settings:TrainSettings",),
    "evaluation_report": ("assets.evaluate.scoring:EvalSettings",),
    "registered_adapter": ("assets.registry.gate:GateSettings",),
    "merged_model": ("assets.export.merge:ExportSettings",),
}
# Stages that load a model on the run's device (PIPELINE_DEVICE): checked before the first step.
DEVICE_STAGES = frozenset({"adapter", "evaluation_report", "merged_model"})
# Stages that read or write the model registry: a run of any of them checks it can be used first.
REGISTRY_STAGES = frozenset({"evaluation_report", "registered_adapter", "merged_model"})
# Sections no stage reads but a command does, with the settings class that command builds from them (it
# checks their values when it runs; a run only needs their keys to be known).
COMMAND_SETTINGS: dict[str, str] = {"retention": "resources.retention:RetentionPolicy"}
# Config fields an asset reads itself (`stage_value`, `config.<field>`), with the type it needs.
DIRECT_READS: dict[str, dict[str, Any]] = {
    "raw_examples": {"raw_path": str, "max_chars": int},
    "clean": {"max_seq_length": int},
    "augmented_examples": {"enabled": bool},
    "base_model": {"base_model": str},
    "evaluation_report": {"model_name": str},
    "registered_adapter": {"model_name": str},
}


def _settings_class(spec: str) -> type:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def stage_values(name: str, run_config: Mapping[str, Any] | None = None, root: Path = PROJECT_ROOT) -> dict:
    """The Config values stage ``name`` runs with: params.yaml, less what another stage owns, with the
    run config's ``ops.<stage>.config`` (launchpad overrides) on top."""
    stage = stages.stage(name)
    values = {k: v for k, v in setting_values(stage.params, root).items() if k not in stage.config_exclude}
    ops = (run_config or {}).get("ops") or {}
    values.update(((ops.get(name) or {}).get("config")) or {})
    return values


def stage_problems(name: str, run_config: Mapping[str, Any] | None = None, root: Path = PROJECT_ROOT) -> list:
    """What is wrong with stage ``name``'s settings, one message each ([] when they are fine)."""
    names = qualified_names(stages.stage(name).params, root)
    values = stage_values(name, run_config, root)
    problems = []
    for field, annotation in DIRECT_READS.get(name, {}).items():
        try:
            checked_value(names.get(field, field), values.get(field), annotation)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    if name == "base_model" and not problems:
        problems += base_model_problems(values.get("base_model"), root)
    if name in DEVICE_STAGES:
        problems += device_problems(values.get("precision") if name == "adapter" else None)
    if name == "augmented_examples" and values.get("enabled") is False:
        return problems  # a disabled augmentation builds no settings (as its asset does)
    if name == "evaluation_report":
        # The asset takes it from the adapter's training record: the run's train.max_seq_length.
        values["max_seq_length"] = stage_values("adapter", run_config, root).get("max_seq_length")
        names["max_seq_length"] = "train.max_seq_length"
    for spec in STAGE_SETTINGS.get(name, ()):
        try:
            settings_from(_settings_class(spec), values, names)
        except (TypeError, ValueError) as exc:
            problems.append(f"{name}: {exc}")
    return problems


def device_problems(precision: Any = None) -> list[str]:
    """What is wrong with the device the model stages run on (the ``PIPELINE_DEVICE`` environment
    variable, resources/models.py): not a torch device, or CUDA asked for where torch has none; and
    whether ``train.precision`` (when given) can run there (assets/train/device_defaults.py)."""
    import torch

    from assets.train.device_defaults import resolve_precision
    from resources.models import device_from_env

    name = device_from_env()
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return [f"PIPELINE_DEVICE={name!r} is not a torch device: set it to 'cpu', 'cuda' or 'cuda:<n>'"]
    if device.type == "cuda" and not torch.cuda.is_available():
        return [
            f"PIPELINE_DEVICE={name!r}, but this torch has no usable CUDA device: unset it (cpu) or install "
            "a CUDA build of torch on a machine with a GPU"
        ]
    if precision is not None and isinstance(precision, str):
        try:
            resolve_precision(precision, device.type)
        except InputError as exc:
            return [f"adapter: {exc}"]
    return []


def base_model_problems(spec: Any, root: Path = PROJECT_ROOT) -> list[str]:
    """What is wrong with ``train.base_model``, found without loading it: a path that does not exist, a
    hub id missing from the local Hugging Face cache (nothing is downloaded at run time), a model whose
    tokenizer has no chat template (conversations could not be formatted). A tokenizer whose files
    do not say is left to the ``base_model`` stage, which loads it."""
    from resources.model_source import ModelSourceError, classify_model_spec

    try:
        source = classify_model_spec(spec, setting="train.base_model", root=root)
    except ModelSourceError as exc:
        return [f"base_model: {exc}"]
    if source.kind == "embedded":
        return []  # built here, with a template
    directory = source.path
    if source.kind == "hub":
        from huggingface_hub import snapshot_download

        try:
            directory = Path(snapshot_download(source.spec, local_files_only=True))
        except Exception:  # huggingface_hub raises several kinds for "not cached"; all mean the same here
            return [
                f"base_model: train.base_model = {source.spec!r} is not in the local Hugging Face cache and "
                f"runs never download; run `hf download {source.spec}` first, or name a local directory."
            ]
    if directory is not None and _lacks_chat_template(directory):
        return [
            f"base_model: train.base_model = {source.spec!r}: its tokenizer has no chat template "
            f"({directory}), so conversations cannot be formatted. Pick an instruct/chat variant, or add a "
            "chat_template.jinja to the model directory."
        ]
    return []


def _lacks_chat_template(directory: Path) -> bool:
    """True only when the tokenizer's files say it has no template: transformers reads one from
    ``chat_template.jinja``, ``chat_template.json`` or the ``chat_template`` of tokenizer_config.json."""
    if (directory / "chat_template.jinja").is_file() or (directory / "chat_template.json").is_file():
        return False
    config = directory / "tokenizer_config.json"
    if not config.is_file():
        return False
    try:
        return not json.loads(config.read_text(encoding="utf-8")).get("chat_template")
    except (OSError, ValueError, AttributeError):
        return False  # unreadable here: the stage's own load reports it


def registry_problem(registry: Any = None) -> str | None:
    """Why the model registry cannot be used now, or None: ``registry`` (a ModelRegistry; by default
    the one the environment names, as the definitions build it) is asked cheaply, under its short
    timeout (:meth:`resources.registry.ModelRegistry.check_reachable`)."""
    from resources.registry import RegistryError, registry_from_env

    try:
        (registry if registry is not None else registry_from_env()).check_reachable()
    except RegistryError as exc:
        return str(exc)
    return None


def read_settings(root: Path = PROJECT_ROOT) -> set[str]:
    """Every ``section.key`` some stage reads (the fields of its settings classes and its direct reads,
    where its params entries give them) or a command reads (``COMMAND_SETTINGS``)."""
    known: set[str] = set()
    for stage in stages.STAGES:
        names = qualified_names(stage.params, root)
        read = set(DIRECT_READS.get(stage.name, {}))
        for spec in STAGE_SETTINGS.get(stage.name, ()):
            read |= {f.name for f in fields(_settings_class(spec))}
        known |= {names[field] for field in read if field in names and field not in stage.config_exclude}
    for section_name, spec in COMMAND_SETTINGS.items():
        known |= {f"{section_name}.{f.name}" for f in fields(_settings_class(spec))}
    return known


def unknown_settings(root: Path = PROJECT_ROOT) -> list[str]:
    """A message for each params.yaml setting no stage reads, naming the closest one that is read."""
    known = read_settings(root)
    problems = []
    for section_name, settings in load_params(root).items():
        in_section = [k.split(".", 1)[1] for k in known if k.startswith(f"{section_name}.")]
        for key in settings:
            if f"{section_name}.{key}" not in known:
                problems.append(
                    f"params.yaml: setting '{section_name}.{key}' is not read by any stage"
                    f"{closest(key, in_section)}"
                )
    return problems


def run_stages(asset_keys: Iterable[str] | None) -> list[str] | None:
    """The stages a run of these asset keys executes (a run's asset selection, as user strings), in table
    order; None (every stage) for None, a whole-job run."""
    if asset_keys is None:
        return None
    wanted = {stages.STAGE_OF_KEY[key].name for key in asset_keys if key in stages.STAGE_OF_KEY}
    return [stage.name for stage in stages.STAGES if stage.name in wanted]


def preflight(
    stage_names: Iterable[str] | None = None,
    run_config: Mapping[str, Any] | None = None,
    root: Path = PROJECT_ROOT,
    registry: Any = None,
) -> None:
    """Check every setting of a run before it starts: the settings of each stage in ``stage_names``
    (every stage by default) with the run config's overrides, and that params.yaml holds no setting
    nobody reads; for ``base_model``, that the base exists offline and has a chat template
    (:func:`base_model_problems`); for a run with a stage in :data:`REGISTRY_STAGES`, that the model
    registry (``registry``, by default the environment's) can be used (:func:`registry_problem`).
    Settings take well under a second (no data is read, no model is loaded); a tracking server is given
    its request timeout and retries (15 s, 2 by default), a refused connection about 4 s.

    Raises:
        assets.params.ParamsError: params.yaml is missing, malformed or has an unknown section.
        InputError: listing every problem, each naming its ``section.key`` and what it must be, and
            the registry's problem, naming its URI (no credentials) or file and the cause.
    """
    names = [stage.name for stage in stages.STAGES] if stage_names is None else list(stage_names)
    problems = unknown_settings(root)
    for name in names:
        problems += stage_problems(name, run_config, root)
    unusable = registry_problem(registry) if REGISTRY_STAGES & set(names) else None
    parts = []
    if problems:
        parts.append(
            f"{len(problems)} setting problem(s); fix them in params.yaml (or the launchpad config) and "
            "run again:\n" + "\n".join(f"- {p}" for p in problems)
        )
    if unusable is not None:
        parts.append(f"The run needs the model registry, and {unusable}")
    if parts:
        raise InputError("\n".join(parts))
