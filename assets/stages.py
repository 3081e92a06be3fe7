"""The stage table: the one place a stage of the pipeline is declared.

A stage is one Dagster node (an asset, or a multi-asset with several outputs) and one dvc.yaml stage of
the same name. For each it says which folder holds its code, which asset keys it writes (path and kind
on disk, and the schema of dataset outputs), and which params.yaml sections or settings it reads.
Everything else is derived from it:

- the artifact store's paths and kinds (``ARTIFACTS``), which the IO manager and DVC recording read;
- each stage's code dependencies, computed from the imports its modules make (:func:`code_files`), which
  feed both the Dagster ``code_version`` and the DVC deps, so the two tools agree on what is stale;
- dvc.yaml itself (``python -m pipelines.dvc_yaml`` writes it; a test fails when it drifts);
- the schema checks, the CLI's stage names (``python -m pipelines.materialize <stage>``).

A new stage is a new folder under ``assets/`` and one entry here. Plain Python, no dagster.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from resources.artifacts import Artifact, Kind
from resources.project import PROJECT_ROOT

Schema = Literal["raw", "example", "rejected"]


@dataclass(frozen=True)
class Output:
    """One asset a stage writes: its key, its path under the project root, its kind on disk and, for a
    dataset, which canonical schema it has (assets/shared/schema.py)."""

    key: str
    path: str
    kind: Kind
    schema: Schema | None = None


@dataclass(frozen=True)
class Stage:
    """A Dagster node and the dvc.yaml stage of the same ``name``.

    ``folder`` is the stage's package; ``params`` are params.yaml sections (``"clean"``) or single
    settings (``"train.base_model"``) whose values decide its outputs; they are also its Dagster config
    fields, less ``config_exclude`` (settings another stage owns). ``extra_deps`` are DVC deps that are
    not upstream assets (the raw input file).
    """

    name: str
    folder: str
    outputs: tuple[Output, ...]
    params: tuple[str, ...]
    extra_deps: tuple[str, ...] = ()
    config_exclude: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(output.key for output in self.outputs)


STAGES: tuple[Stage, ...] = (
    Stage(
        "raw_examples",
        "assets/ingest",
        (Output("raw_examples", "data/raw_examples.parquet", "dataset", "raw"),),
        ("data",),
        extra_deps=("${data.raw_path}",),
    ),
    Stage(
        "clean",
        "assets/clean",
        (
            Output("clean_examples", "data/clean_examples.parquet", "dataset", "example"),
            Output("rejected_examples", "data/rejected_examples.parquet", "dataset", "rejected"),
        ),
        # Rows longer than training's sequence length are rejected here, with a reason.
        ("clean", "train.max_seq_length"),
    ),
    Stage(
        "augmented_examples",
        "assets/augment",
        (Output("augmented_examples", "data/augmented_examples.parquet", "dataset", "example"),),
        ("augment",),
    ),
    Stage(
        "split",
        "assets/split",
        (
            Output("train_split", "data/splits/train.parquet", "dataset", "example"),
            Output("validation_split", "data/splits/validation.parquet", "dataset", "example"),
            Output("test_split", "data/splits/test.parquet", "dataset", "example"),
        ),
        # Near-duplicate clusters are groups, and near duplicates across splits leaks, by clean's rule.
        ("split", "clean.near_dup_threshold", "clean.minhash_permutations", "clean.shingle_size"),
    ),
    Stage(
        "base_model",
        "assets/base",
        (Output("base_model", "models/base_model", "directory"),),
        ("train.base_model",),
    ),
    Stage(
        "adapter",
        "assets/train",
        (Output("adapter", "models/adapter", "directory"),),
        ("train",),
        # The base is whatever the base_model asset holds; a second base_model field here could only
        # mislabel the adapter.
        config_exclude=("base_model",),
    ),
    Stage(
        "evaluation_report",
        "assets/evaluate",
        (Output("evaluation_report", "models/evaluation_report.json", "json"),),
        # Which champion the candidate faces depends on the registered model name.
        ("evaluate", "registry.model_name"),
    ),
    Stage(
        "registered_adapter",
        "assets/registry",
        (Output("registered_adapter", "models/registered_adapter.json", "json"),),
        ("registry",),
    ),
    Stage(
        "merged_model",
        "assets/export",
        (Output("merged_model", "models/merged_model", "directory"),),
        ("export",),
    ),
)

STAGE_BY_NAME: dict[str, Stage] = {stage.name: stage for stage in STAGES}
STAGE_OF_KEY: dict[str, Stage] = {output.key: stage for stage in STAGES for output in stage.outputs}
OUTPUT_OF_KEY: dict[str, Output] = {output.key: output for stage in STAGES for output in stage.outputs}
# What the artifact store needs to know: where each asset lives and how it is read back.
ARTIFACTS: dict[str, Artifact] = {
    output.key: Artifact(output.key, output.path, output.kind, stage.name)
    for stage in STAGES
    for output in stage.outputs
}

# Modules that record and report a stage's outputs (DVC, Dagster metadata, paths) but do not decide
# their content. Every stage imports them, so counting them as code dependencies would mark every stage
# stale after any edit to the bookkeeping; they are neither followed nor counted.
RECORDING_MODULES = frozenset(
    {
        "assets/params.py",
        "assets/preflight.py",
        "assets/publishing.py",
        "assets/stages.py",
        "assets/types.py",
        "assets/checks.py",
        "resources/dvc.py",
        "resources/storage.py",
        "resources/project.py",
    }
)
# Top-level packages of this project; imports of anything else are libraries.
_PROJECT_PACKAGES = ("assets", "resources")


def stage(name: str) -> Stage:
    """The stage called ``name``; raises KeyError listing the stages."""
    try:
        return STAGE_BY_NAME[name]
    except KeyError:
        raise KeyError(f"Unknown stage {name!r}. Stages: {', '.join(STAGE_BY_NAME)}.") from None


def _module_file(module: str, root: Path) -> Path | None:
    """The project file of a dotted module name, or None for a library or a top-level package (whose
    ``__init__`` holds no code, only the ``from assets import stages`` form names it)."""
    parts = module.split(".")
    if parts[0] not in _PROJECT_PACKAGES or len(parts) == 1:
        return None
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _imported_modules(path: Path) -> tuple[str, ...]:
    """Every module named by an import anywhere in the file, function-level (lazy) imports included;
    ``from a.b import c`` gives both ``a.b`` and ``a.b.c`` (``c`` may be a module). Parsed once per file:
    the definitions load computes every stage's code at import."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return tuple(names)


@functools.cache
def code_files(name: str, root: Path = PROJECT_ROOT) -> tuple[str, ...]:
    """The project files a stage's code consists of, relative to ``root``, sorted: every ``.py`` file in
    its folder and, transitively, every project module they import (lazy imports inside functions
    included), except the :data:`RECORDING_MODULES`."""
    folder = root / stage(name).folder
    pending = sorted(folder.rglob("*.py"))
    seen: set[Path] = set()
    while pending:
        path = pending.pop()
        relative = path.relative_to(root).as_posix()
        if path in seen or relative in RECORDING_MODULES:
            continue
        seen.add(path)
        for module in _imported_modules(path):
            found = _module_file(module, root)
            if found is not None and found not in seen:
                pending.append(found)
    return tuple(sorted(path.relative_to(root).as_posix() for path in seen))


def code_deps(name: str, root: Path = PROJECT_ROOT) -> tuple[str, ...]:
    """:func:`code_files` as DVC deps: the stage's folder as one entry, then the files outside it."""
    folder = stage(name).folder
    outside = [path for path in code_files(name, root) if not path.startswith(f"{folder}/")]
    return (folder, *outside)
