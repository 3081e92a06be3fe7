"""What every asset does after its logic ran: write, record in DVC, report to Dagster.

Assets persist their own outputs (through the artifact store) rather than returning values to the IO
manager, because the DVC md5 of the written bytes is the asset's Dagster data version and must be known
when the asset returns. The IO manager reads the same store back for downstream assets.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg

from assets import stages
from assets.params import (
    checked_value,
    config_class,
    qualified_names,
    section_hash,
    setting_values,
    settings_from,
)
from assets.shared.errors import InputError
from resources.artifacts import READ_MD5, READ_PATH, ArtifactStore
from resources.dvc import DvcResource
from resources.project import PROJECT_ROOT
from resources.registry import RegistryError
from resources.storage import StorageResource

if TYPE_CHECKING:
    from datasets import Dataset

T = TypeVar("T")

# Tags Dagster itself puts on a materialization (dagster._core.definitions.data_version); a runtime
# AssetMaterialization must carry them for staleness to work.
DATA_VERSION_TAG = "dagster/data_version"
DATA_VERSION_IS_USER_PROVIDED_TAG = "dagster/data_version_is_user_provided"
CODE_VERSION_TAG = "dagster/code_version"


def code_version(stage_name: str) -> str:
    """Hash of a stage's code files (computed from its imports, see assets/stages.py) and of its params:
    Dagster marks the asset stale when it changes, as DVC marks the stage changed."""
    stage = stages.stage(stage_name)
    digest = hashlib.sha256(section_hash(stage.params).encode())
    for name in stages.code_files(stage_name):
        digest.update(name.encode())
        digest.update((PROJECT_ROOT / name).read_bytes())
    return digest.hexdigest()[:16]


def stage_policy(stage_name: str, *, multi_asset: bool = False) -> dict[str, Any]:
    """Decorator arguments every stage's asset shares, so an asset names its stage once: its code
    version and a ``stage`` tag with the stage-table name (an op tag for a multi-asset)."""
    tags = {"stage": stage_name}
    return {"code_version": code_version(stage_name), ("op_tags" if multi_asset else "tags"): tags}


def artifact_store(storage: StorageResource) -> ArtifactStore:
    """The artifact store of the pipeline's stage table under the storage root."""
    return storage.store(stages.ARTIFACTS)


class Stopwatch:
    """Wall time since the asset started, for the `duration_s` metadata."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 2)


def stage_config(stage_name: str) -> type[dg.Config]:
    """The Dagster Config class of a stage: one field per setting of its params entries (the stage
    table), defaulting to params.yaml, so the launchpad can override any of them for one run."""
    stage = stages.stage(stage_name)
    return config_class(stage_name, dg.Config, entries=stage.params, exclude=stage.config_exclude)


def current_config(stage_name: str) -> dict[str, Any]:
    """A stage's config values from params.yaml as it is now (what a run launched now should use)."""
    stage = stages.stage(stage_name)
    values = setting_values(stage.params)
    return {key: value for key, value in values.items() if key not in stage.config_exclude}


def config_overrides(config: dg.Config, stage_name: str) -> list[str]:
    """Fields of a run's config that differ from params.yaml as it is now: launchpad overrides, or
    defaults that went stale because params.yaml changed after the definitions were loaded."""
    current = current_config(stage_name)
    values = config.model_dump()
    return sorted(name for name in values if values[name] != current.get(name))


def record_stage(
    context: dg.AssetExecutionContext,
    config: dg.Config,
    storage: StorageResource,
    dvc: DvcResource,
    outputs: dict[str, dict[str, Any]],
    stopwatch: Stopwatch,
    read: dict[str, str] | None = None,
) -> Iterator[dg.MaterializeResult]:
    """Record the stage that wrote ``outputs`` (every asset key of the stage -> its metadata) in DVC,
    then report each asset with its DVC md5 as data version. All outputs must already be written.

    A run whose config differs from params.yaml is not recorded: dvc.lock would pair these outputs with
    params they were not made from. `dvc status` then shows the stage as changed until a run with the
    params.yaml settings (or `dvc commit`) records it.

    ``read`` (dependency path -> DVC md5 of what the stage read) keeps dvc.lock from recording a
    dependency that changed after it was read (see DvcResource.record).

    A stage's outputs are always written together, so they stay consistent with each other. When a
    selection names only some of them (``--select test_split``), the others are reported as runtime
    materializations with their own data version, so Dagster's lineage and staleness see every write.
    """
    [stage_name] = {stages.STAGE_OF_KEY[key].name for key in outputs}
    assert set(outputs) == set(stages.stage(stage_name).keys), f"{stage_name} must report every output"
    store = artifact_store(storage)
    # Hash before recording: the data version is what this run wrote.
    md5s = {key: store.md5(key) for key in outputs}
    log = dg.get_dagster_logger()
    overridden = config_overrides(config, stage_name)
    if overridden:
        committed = False
        log.warning(
            f"Not recorded in DVC: this run's settings differ from params.yaml ({', '.join(overridden)})."
        )
    else:
        # The values this run used, not params.yaml when DVC reads it: an edit during the run is not
        # recorded as if trained with (DvcResource.record).
        names = qualified_names(stages.stage(stage_name).params)
        ran_with = {names[k]: v for k, v in config.model_dump().items() if k in names}
        committed = dvc.record(stage_name, read={**inputs_read(context), **(read or {})}, params=ran_with)
    selected = {key.to_user_string() for key in context.selected_asset_keys}
    settings = {"settings": dg.MetadataValue.json(config.model_dump())}
    if overridden:
        settings["params_overridden"] = ", ".join(overridden)
    for key, metadata in outputs.items():
        rows = f"{metadata['dagster/row_count']} rows, " if "dagster/row_count" in metadata else ""
        log.info(f"{key}: {rows}md5 {md5s[key]}, {stopwatch.seconds:.1f} s")
        full = {
            **metadata,
            **settings,
            "dvc_md5": md5s[key],
            "dvc_recorded": committed,
            "path": dg.MetadataValue.path(str(store.path(key))),
            "duration_s": stopwatch.seconds,
        }
        if key in selected:
            yield dg.MaterializeResult(asset_key=key, data_version=dg.DataVersion(md5s[key]), metadata=full)
        else:
            full["written_with"] = (
                f"{', '.join(sorted(selected))} (outputs of stage {stage_name} are written together)"
            )
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=key,
                    metadata=full,
                    tags={
                        DATA_VERSION_TAG: md5s[key],
                        DATA_VERSION_IS_USER_PROVIDED_TAG: "true",
                        # The version the decorator declared, not a second hash of the files.
                        CODE_VERSION_TAG: context.assets_def.code_versions_by_key[dg.AssetKey(key)],
                    },
                )
            )


def inputs_read(context: dg.AssetExecutionContext) -> dict[str, str]:
    """Path -> DVC md5 of every upstream file this step loaded, as the IO manager recorded them when it
    read them (pipelines/io_manager.py)."""
    step_key = context.op_execution_context.get_step_execution_context().step.key
    records = context.instance.get_records_for_run(
        context.run_id, of_type=dg.DagsterEventType.LOADED_INPUT
    ).records
    read = {}
    for record in records:
        if record.event_log_entry.step_key != step_key:
            continue
        metadata = record.event_log_entry.dagster_event.event_specific_data.metadata or {}
        if READ_PATH in metadata and READ_MD5 in metadata:
            read[metadata[READ_PATH].value] = metadata[READ_MD5].value
    return read


def recorded_settings(context: dg.AssetExecutionContext, key: str, md5: str) -> dict[str, Any] | None:
    """The settings the materialization that wrote ``key``'s current bytes (DVC md5 ``md5``) ran with,
    from the Dagster event log; None when no recent materialization wrote these bytes (e.g. they came
    from `dvc checkout`, or from a version of the pipeline that did not record settings)."""
    records = context.instance.fetch_materializations(dg.AssetKey(key), limit=20).records
    for record in records:
        materialization = record.asset_materialization
        if materialization is None or materialization.tags.get(DATA_VERSION_TAG) != md5:
            continue
        settings = materialization.metadata.get("settings")
        return settings.value if settings is not None else None
    return None


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


@contextlib.contextmanager
def user_errors(stage_name: str) -> Iterator[None]:
    """Turn an :class:`InputError` raised by logic modules (bad data or settings, see
    assets/shared/errors.py) or a :class:`RegistryError` (a registry that cannot be reached or is
    locked, resources/registry.py) into a Failure with its message; any other exception keeps its
    traceback."""
    try:
        yield
    except (InputError, RegistryError) as exc:
        raise fail(f"{stage_name}: {exc}") from None


def refuse_stale_adapter(stage_name: str, record: Any, store: ArtifactStore) -> None:
    """Fail when the adapter was trained from another base or other splits than those on disk now: it
    would be scored on rows it trained on, or registered with a lineage it does not have."""
    from assets.shared.training_record import stale_inputs

    stale = stale_inputs(record, {key: store.md5(key) for key in record.inputs})
    if stale:
        raise fail(
            f"{stage_name}: the adapter is out of date ({'; '.join(stale)}): materialize adapter first "
            "(or the whole job), so it is trained on the current data."
        )


def stage_settings(cls: type[T], values: dict[str, Any]) -> T:
    """A logic module's settings from a stage's Config; a bad value fails the asset with the
    validation message (which names the field) instead of a traceback."""
    try:
        return settings_from(cls, values)
    except (TypeError, ValueError) as exc:
        raise fail(f"Invalid setting (params.yaml or launchpad config): {exc}") from None


def stage_value(config: dg.Config, name: str, annotation: Any) -> Any:
    """One Config field an asset reads directly, checked like :func:`stage_settings` checks a dataclass:
    the field's type follows the YAML value, so a quoted ``'no'`` would otherwise read as true."""
    try:
        return checked_value(name, getattr(config, name), annotation)
    except ValueError as exc:
        raise fail(f"Invalid setting (params.yaml or launchpad config): {exc}") from None


def champion_files_gone(stage: str, model_name: str, exc: FileNotFoundError) -> dg.Failure:
    """The Failure for a champion whose registry files cannot be read: what is gone, and the repair."""
    return fail(
        f"{stage}: the champion of '{model_name}' cannot be loaded: {exc} Nothing was changed (the last "
        f"export is kept). Run `python -m pipelines.registry --name {model_name} repair`: it tags the "
        "broken version and moves the champion alias to the newest earlier champion whose files exist "
        "(or clears it); or restore the registry's artifact files (or `rollback` to the previous "
        "version), then materialize again."
    )


# The Dagster UI shows a markdown metadata value inline only when it is shorter than this many
# characters; a longer one hides behind "[Show Markdown]" (ui-core MetadataEntry.tsx).
INLINE_MARKDOWN_CHARS = 1000


def inline_markdown(render: Callable[[int], str], sizes: Sequence[int]) -> dg.MetadataValue:
    """Markdown the UI shows without a click: ``render(size)`` for each size in turn (largest first)
    until the text fits :data:`INLINE_MARKDOWN_CHARS`; the last rendering if none does."""
    text = ""
    for size in sizes:
        text = render(size)
        if len(text) < INLINE_MARKDOWN_CHARS:
            break
    return dg.MetadataValue.md(text)


def refuse_other_base(stage_name: str, context: dg.AssetExecutionContext, recorded: dict[str, Any]) -> None:
    """Fail when the base_model asset on disk (its record, ``recorded``) was materialized from another
    model than the ``train.base_model`` this run has (params.yaml, with the run's overrides for
    base_model): the stage would otherwise use the old base under the new setting's name, and DVC would
    call it up to date."""
    from resources.project import resolve_path

    values = setting_values(stages.stage("base_model").params, PROJECT_ROOT)
    ops = (context.run.run_config or {}).get("ops") or {}
    values.update(((ops.get("base_model") or {}).get("config")) or {})
    wanted, source = values.get("base_model"), recorded.get("source")
    if source is None or not isinstance(wanted, str) or wanted.strip() == source:
        return
    # The same directory spelled another way ("./models/x" and "models/x") is the same base.
    if resolve_path(source, PROJECT_ROOT).resolve() == resolve_path(wanted.strip(), PROJECT_ROOT).resolve():
        return
    raise fail(
        f"{stage_name}: base_model was materialized from {source!r}, but train.base_model is {wanted!r}: "
        "re-materialize base_model (python -m pipelines.materialize base_model), then the stages after it, "
        f"or set train.base_model back to {source!r}."
    )


def refuse_other_upstream_settings(
    stage_name: str, context: dg.AssetExecutionContext, config: dg.Config, store: ArtifactStore, upstream: str
) -> None:
    """Fail when the settings ``stage_name`` shares with the stage that writes ``upstream`` (an asset key:
    the entries of that stage's section in this stage's params, e.g. the split's ``clean.*``) differ from
    those the materialization of ``upstream``'s current bytes recorded. Nothing to compare (no such
    materialization in the event log, or no file) passes: the check refuses only a known mismatch."""
    section = stages.STAGE_OF_KEY[upstream].params[0].partition(".")[0]
    names = qualified_names(stages.stage(stage_name).params)
    shared = [name for name, qualified in names.items() if qualified.startswith(f"{section}.")]
    try:
        recorded = recorded_settings(context, upstream, store.md5(upstream)) or {}
    except FileNotFoundError:
        return
    ours = config.model_dump()
    differ = [name for name in shared if name in recorded and name in ours and recorded[name] != ours[name]]
    if not differ:
        return
    producer = stages.STAGE_OF_KEY[upstream].name
    detail = "; ".join(
        f"{names[name]} is {ours[name]!r} in this run, but {upstream} was made with {recorded[name]!r}"
        for name in differ
    )
    raise fail(
        f"{stage_name}: {detail}. Re-materialize {producer} with these settings (python -m "
        f"pipelines.materialize {producer}) and then {stage_name}, or set them back."
    )
