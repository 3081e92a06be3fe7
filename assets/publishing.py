"""What every asset does after its logic ran: write, record in DVC, report to Dagster.

Assets persist their own outputs (through the artifact store) rather than returning values to the IO
manager, because the DVC md5 of the written bytes is the asset's Dagster data version and must be known
when the asset returns. The IO manager reads the same store back for downstream assets.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg

from assets.params import section, section_hash, settings_from
from resources.artifacts import artifact
from resources.dvc import DvcResource
from resources.project import PROJECT_ROOT
from resources.storage import StorageResource

if TYPE_CHECKING:
    from datasets import Dataset

T = TypeVar("T")


# The code and params each dvc.yaml stage depends on: its DVC deps (besides upstream outputs) and the
# inputs of its Dagster code version, so both tools agree on what a code or params edit invalidates.
# tests/test_dvc_sync.py holds dvc.yaml to this table.
_SCHEMA = "assets/schema.py"
STAGE_SOURCES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "raw_examples": (("assets/ingest", _SCHEMA), ("data",)),
    "clean": (("assets/clean", _SCHEMA), ("clean",)),
    "augmented_examples": (
        (
            "assets/augment",
            _SCHEMA,
            "resources/translators.py",
            "resources/model_source.py",
            "resources/embedded/tiny_marian.py",
        ),
        ("augment",),
    ),
    "split": (("assets/split", _SCHEMA), ("split",)),
    "base_model": (
        (
            "assets/base",
            _SCHEMA,
            "resources/model_loading.py",
            "resources/model_source.py",
            "resources/embedded/tiny_lm.py",
        ),
        ("train.base_model",),
    ),
    "adapter": (("assets/train", _SCHEMA), ("train",)),
    "evaluation_report": (("assets/evaluate", _SCHEMA), ("evaluate",)),
    "registered_adapter": (("assets/registry", _SCHEMA), ("registry",)),
    "merged_model": (("assets/export", _SCHEMA), ("export",)),
}


def code_version(stage: str) -> str:
    """Hash of a stage's source files and params (STAGE_SOURCES): Dagster marks the asset stale when
    it changes, as DVC marks the stage changed."""
    paths, sections = STAGE_SOURCES[stage]
    files: list[Path] = []
    for name in paths:
        path = PROJECT_ROOT / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    digest = hashlib.sha256(section_hash(sections).encode())
    for path in files:
        digest.update(path.relative_to(PROJECT_ROOT).as_posix().encode())
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()[:16]


class Stopwatch:
    """Wall time since the asset started, for the `duration_s` metadata."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 2)


def config_overrides(config: dg.Config, section_name: str, fields: Sequence[str] | None = None) -> list[str]:
    """Fields of a run's config that differ from params.yaml (launchpad overrides), optionally only
    among ``fields``: the ones the stage's output depends on."""
    defaults = section(section_name)
    values = config.model_dump()
    names = fields if fields is not None else values
    return sorted(name for name in names if values[name] != defaults.get(name))


def record_stage(
    storage: StorageResource,
    dvc: DvcResource,
    outputs: dict[str, dict[str, Any]],
    stopwatch: Stopwatch,
    *,
    overridden: Sequence[str] = (),
) -> Iterator[dg.MaterializeResult]:
    """Record the stage that wrote ``outputs`` (asset key -> metadata) in DVC, then report each asset
    with its DVC md5 as data version. All outputs must already be written.

    A run whose config overrides params.yaml (``overridden`` names the fields) is not recorded: dvc.lock
    would pair these outputs with params they were not made from. `dvc status` then shows the stage as
    changed until a run with the params.yaml settings (or `dvc commit`) records it.
    """
    stages = {artifact(key).stage for key in outputs}
    assert len(stages) == 1, f"outputs of one call must come from one dvc stage, got {stages}"
    store = storage.store()
    # Hash before recording: the data version is what this run wrote.
    md5s = {key: store.md5(key) for key in outputs}
    if overridden:
        committed = False
        dg.get_dagster_logger().warning(
            f"Not recorded in DVC: this run overrides params.yaml ({', '.join(overridden)})."
        )
    else:
        committed = dvc.record(stages.pop())
    log = dg.get_dagster_logger()
    for key, metadata in outputs.items():
        rows = f"{metadata['dagster/row_count']} rows, " if "dagster/row_count" in metadata else ""
        log.info(f"{key}: {rows}md5 {md5s[key]}, {stopwatch.seconds:.1f} s")
        extra = {"params_overridden": ", ".join(overridden)} if overridden else {}
        yield dg.MaterializeResult(
            asset_key=key,
            data_version=dg.DataVersion(md5s[key]),
            metadata={
                **metadata,
                **extra,
                "dvc_md5": md5s[key],
                "dvc_recorded": committed,
                "path": dg.MetadataValue.path(str(store.path(key))),
                "duration_s": stopwatch.seconds,
            },
        )


def dataset_metadata(dataset: Dataset) -> dict[str, Any]:
    """Row count and time range of an example dataset."""
    metadata: dict[str, Any] = {"dagster/row_count": len(dataset)}
    if "created_at" in dataset.column_names and len(dataset):
        times = [t for t in dataset["created_at"] if t is not None]
        if times:
            metadata["oldest"] = min(times).isoformat()
            metadata["newest"] = max(times).isoformat()
    return metadata


def count_table(counts: Iterable[tuple[str, int]], label: str) -> dg.MetadataValue:
    """A two-column markdown table, e.g. drops by reason."""
    rows = [f"| {name} | {n} |" for name, n in sorted(counts, key=lambda item: (-item[1], item[0]))]
    return dg.MetadataValue.md("\n".join([f"| {label} | rows |", "|---|---|", *rows]) if rows else "none")


def counts_by(dataset: Dataset, column: str) -> Counter[str]:
    return Counter(str(v) for v in dataset[column]) if len(dataset) else Counter()


def fail(message: str) -> dg.Failure:
    """A user-facing failure: Dagster shows the message, not a traceback of our internals."""
    return dg.Failure(description=message, allow_retries=False)


def stage_settings(cls: type[T], values: dict[str, Any]) -> T:
    """A logic module's settings from a stage's Config; a bad value fails the asset with the
    validation message (which names the field) instead of a traceback."""
    try:
        return settings_from(cls, values)
    except (TypeError, ValueError) as exc:
        raise fail(f"Invalid setting (params.yaml or launchpad config): {exc}") from None
