"""registered_adapter and its promotion gate."""

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from assets.params import settings_hash
from assets.publishing import (
    Stopwatch,
    artifact_store,
    fail,
    record_stage,
    recorded_settings,
    refuse_stale_adapter,
    stage_config,
    stage_policy,
    stage_settings,
    user_errors,
)
from assets.registry.lineage import LINEAGE_ARTIFACTS
from assets.stages import ARTIFACTS
from resources.dvc import DvcResource
from resources.project import PROJECT_ROOT
from resources.registry import ModelRegistry, RegistryConflict, RegistryUnavailable, model_name_problem
from resources.storage import StorageResource

if TYPE_CHECKING:
    from assets.shared.training_record import TrainingRecord

RegistryConfig = stage_config("registered_adapter")
# The registry artifact holding the dvc.lock entries of a version's inputs (restore reads it).
LINEAGE_FILE = "dvc_lock_inputs.json"
# The registry artifact (folder `plots`) drawing the training and validation loss.
LOSS_CURVE_FILE = "loss_curve.png"
# Lineage tags shown for the champion besides the *_md5 ones.
LINEAGE_KEYS = ("base_model", "git_commit", "params_hash", "dagster_run_id", "raw_path", "promotion")


@dg.asset(
    group_name="model",
    kinds={"mlflow", "dvc"},
    **stage_policy("registered_adapter"),
    # Lineage reads the md5 of every dataset and model the candidate came from.
    deps=[key for key in LINEAGE_ARTIFACTS if key != "adapter"],
)
def registered_adapter(
    context: dg.AssetExecutionContext,
    config: RegistryConfig,
    adapter: Path,
    evaluation_report: dict[str, Any],
    storage: StorageResource,
    dvc: DvcResource,
    registry: ModelRegistry,
) -> Iterator[dg.MaterializeResult]:
    """The candidate adapter as a version in the model registry (MLflow), tagged with its lineage: the
    DVC md5 of the raw, clean and split data and of the base model and adapter, the params hash, the
    git commit and the Dagster run. It becomes the `champion` only if the promotion gate passes; the
    same adapter bytes registered again reuse their version."""
    from mlflow.exceptions import MlflowException

    from assets.registry.gate import GateSettings
    from assets.registry.lineage import (
        LINEAGE_ARTIFACTS,
        dvc_lock_snapshot,
        git_commit,
        lineage_tags,
        raw_sources,
    )
    from assets.registry.promotion import evaluate_gate
    from assets.registry.weights import lora_weight_delta
    from assets.shared.training_curves import loss_curve_png, read_histories, step_series
    from assets.shared.training_record import read_training_record

    stopwatch = Stopwatch()
    if (problem := model_name_problem(config.model_name)) is not None:
        raise fail(problem)
    # The gate reads these settings after registration; a bad one must fail before anything is registered.
    stage_settings(GateSettings, config.model_dump())
    store = artifact_store(storage)
    try:
        md5s = {key: store.md5(key) for key in LINEAGE_ARTIFACTS}
    except FileNotFoundError as exc:  # MissingArtifactError: names the asset to materialize first
        raise fail(f"registered_adapter: its lineage needs every upstream artifact, but {exc}") from None
    if evaluation_report.get("adapter_md5") != md5s["adapter"]:
        raise fail(
            "evaluation_report was made for another adapter than the current one: materialize "
            "evaluation_report before registered_adapter, so the registry gets this adapter's metrics."
        )
    evaluated_for = evaluation_report.get("registry_model_name")
    if evaluated_for != config.model_name:
        raise fail(
            f"evaluation_report compared the candidate with the champion of {evaluated_for!r}, but this run "
            f"registers it under {config.model_name!r}: give registry.model_name the same value for "
            "evaluation_report and registered_adapter (params.yaml, or both ops in the launchpad)."
        )
    with user_errors("registered_adapter"):
        trained = read_training_record(adapter)
    refuse_stale_adapter("registered_adapter", trained, store)
    with user_errors("registered_adapter"):
        weight_delta = lora_weight_delta(adapter)
        train_history, validation_history = read_histories(adapter)
    candidate_metrics = {
        k: v for k, v in evaluation_report["models"]["candidate"].items() if isinstance(v, (int, float))
    }
    # The MLflow run shows the candidate's metrics under their own names and the reference models'
    # (base, champion) beside them, plus the training curves against the optimizer step.
    run_metrics = {**candidate_metrics, **reference_metrics(evaluation_report)}
    curves = step_series(train_history, validation_history)
    # What each upstream stage recorded it ran with, not params.yaml as it is now.
    settings = {
        stage: recorded_settings(context, key, md5s[key])
        for stage, key in (
            ("data", "raw_examples"),
            ("clean", "clean_examples"),
            ("augment", "augmented_examples"),
            ("split", "train_split"),
        )
    }
    settings["train"] = trained.settings
    settings["registry"] = config.model_dump()
    tags = lineage_tags(
        md5s,
        params_hash=settings_hash(settings),
        git_commit=git_commit(PROJECT_ROOT),
        run_id=context.run_id,
        base_model=trained.base_model["source"],
        raw_path=raw_sources(store.path("raw_examples")),
    )
    params = {f"{stage}.{k}": v for stage, values in settings.items() if values for k, v in values.items()}
    params.update(training_facts(trained))
    paths = {key: str(ARTIFACTS[key].path) for key in md5s}
    snapshot = dvc_lock_snapshot(Path(storage.root), md5s, paths)
    with tempfile.TemporaryDirectory(prefix="lineage-") as tmp:
        lineage_file = Path(tmp) / LINEAGE_FILE
        lineage_file.write_text(json.dumps(snapshot, indent=2, sort_keys=True) + "\n")
        artifacts = {"lineage": lineage_file}
        if train_history or validation_history:
            plot = Path(tmp) / LOSS_CURVE_FILE
            plot.write_bytes(
                loss_curve_png(train_history, validation=validation_history, title="candidate adapter loss")
            )
            artifacts["plots"] = plot
        try:
            info, reused = registry.register_once(
                config.model_name,
                adapter,
                tags=tags,
                metrics=run_metrics,
                params=params,
                extra_artifacts=artifacts,
                metric_history=curves,
            )
        except RegistryConflict as exc:
            raise fail(f"registered_adapter: {exc}") from None
        except RegistryUnavailable as exc:
            raise fail(
                f"registered_adapter: {exc} No version was registered and nothing was promoted; "
                "re-materialize registered_adapter once the registry is back."
            ) from None
        except MlflowException as exc:  # unreachable server, no permission, a locked database
            raise fail(
                f"registered_adapter: the registry at {registry.where()} refused the registration "
                f"({exc.message}); nothing was promoted. Check MLFLOW_TRACKING_URI and that the server or "
                "database is reachable, then re-materialize registered_adapter."
            ) from None
    # The gate reads its settings from this record, so a launchpad override of them applies to it too.
    gate = {k: v for k, v in config.model_dump().items() if k != "model_name"}
    record = {
        **info,
        "reused_existing_version": reused,
        "candidate_metrics": candidate_metrics,
        "gate": gate,
        "adapter_weight_delta": weight_delta,
        "dagster_run_id": context.run_id,
    }
    store.write_json("registered_adapter", record)
    # What the gate will decide (the same seeded computation the check runs next) and who is champion
    # now: the page of this materialization says both, for a version made by this run or reused.
    with user_errors("registered_adapter"):  # the registry lost since the registration
        champion = registry.champion(config.model_name)
    decision, _ = evaluate_gate(record, evaluation_report, champion)
    if decision.reference == "candidate_is_champion":
        context.log.info(f"registered_adapter: {decision.verdict}; the gate passes without promoting.")
    state = info["tags"].get("promotion")
    if state is None or not reused:
        state = "awaiting promotion_gate: " + ("passes" if decision.passed else "fails")
        if decision.passed and gate.get("require_approval"):
            state += " (then pending approval: python -m pipelines.registry approve " + info["version"] + ")"
    metadata = {
        "model_name": info["name"],
        "version": info["version"],
        "promotion": state,
        "gate_verdict": dg.MetadataValue.md(decision.markdown()),
        "champion": dg.MetadataValue.md(champion_summary(champion)),
        "reused_existing_version": reused,
        "mlflow_run_id": info["run_id"],
        "mlflow_run_curves": ", ".join(f"{k} ({len(v)} steps)" for k, v in sorted(curves.items())) or "none",
        "adapter_weight_delta": weight_delta
        if weight_delta is not None
        else "not a LoRA safetensors adapter",
        "lineage": dg.MetadataValue.json(info["tags"]),
        "not_in_dvc_lock": ", ".join(snapshot["not_in_dvc_lock"]) or "none",
        "record": dg.MetadataValue.json(record),
    }
    yield from record_stage(context, config, storage, dvc, {"registered_adapter": metadata}, stopwatch)


def reference_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The numeric metrics of every model in ``report`` but the candidate, named ``<model>/<metric>``
    (``base/perplexity``, ``champion/rougeL``), for the MLflow run beside the candidate's."""
    return {
        f"{model}/{key}": value
        for model, values in report["models"].items()
        if model != "candidate"
        for key, value in values.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def training_facts(trained: "TrainingRecord") -> dict[str, Any]:
    """What the training record says the run did (counts, method, library versions), as MLflow params
    ``trained.*``; the settings it ran with are the ``train.*`` params."""
    facts = {
        "method": trained.method,
        "steps": trained.steps,
        "train_examples": trained.train_examples,
        "validation_examples": trained.validation_examples,
        "trainable_params": trained.trainable_params,
        "total_params": trained.total_params,
        **{f"version.{lib}": version for lib, version in trained.library_versions.items()},
    }
    return {f"trained.{key}": value for key, value in facts.items()}


def champion_summary(champion: dict[str, Any] | None) -> str:
    """The current champion and its lineage tags, as markdown."""
    if champion is None:
        return "no champion yet"
    tags = champion["tags"]
    rows = [f"| {key} | {tags[key]} |" for key in sorted(tags) if key.endswith("_md5") or key in LINEAGE_KEYS]
    return "\n".join([f"**version {champion['version']}**", "", "| lineage | value |", "|---|---|", *rows])


def this_run_record(context: dg.AssetCheckExecutionContext) -> dict[str, Any] | None:
    """The registered_adapter record materialized by this run (from the event log), or None when the
    check runs without it: registered_adapter.json may meanwhile hold another run's registration."""
    run_id = context.run.run_id
    events = context.instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    for event in reversed(events):
        materialization = event.asset_materialization
        if materialization is not None and materialization.asset_key == dg.AssetKey("registered_adapter"):
            entry = materialization.metadata.get("record")
            return entry.value if entry is not None else None
    return None


@dg.asset_check(
    asset="registered_adapter",
    additional_ins={"evaluation_report": dg.AssetIn("evaluation_report")},
    blocking=True,
    description="Promotion gate: the candidate must beat the champion (or the base model when there is "
    "none) on the primary metric without regressing elsewhere. On pass it becomes the champion; on "
    "failure nothing downstream (the merged export) runs.",
)
def promotion_gate(
    context: dg.AssetCheckExecutionContext,
    registered_adapter: dict[str, Any],
    evaluation_report: dict[str, Any],
    registry: ModelRegistry,
) -> dg.AssetCheckResult:
    return gate_result(this_run_record(context) or registered_adapter, evaluation_report, registry)


def gate_result(
    record: dict[str, Any], evaluation_report: dict[str, Any], registry: ModelRegistry
) -> dg.AssetCheckResult:
    """Judge and act on the version in ``record`` (see assets/registry/promotion.py); the verdict, the
    interval and every guardrail go into the check's metadata."""
    from assets.registry.gate import GateDecision
    from assets.registry.promotion import GateOutcome, apply_gate

    try:
        outcome = apply_gate(record, evaluation_report, registry)
    except (TypeError, ValueError) as exc:
        outcome = GateOutcome(GateDecision(False, "none", str(exc), [str(exc)]), "rejected", None)
    except RegistryConflict as exc:
        outcome = GateOutcome(GateDecision(False, "champion", str(exc), [str(exc)]), "not promoted", None)
    except RegistryUnavailable as exc:  # nothing moved: the champion and the export stay as they were
        outcome = GateOutcome(GateDecision(False, "none", str(exc), [str(exc)]), "not promoted", None)
    try:
        champion = registry.champion(record["name"])
    except RegistryUnavailable:
        champion = {"version": "unknown (registry unavailable)"}
    decision = outcome.decision
    return dg.AssetCheckResult(
        passed=decision.passed and outcome.state != "not promoted",
        metadata={
            "version": record["version"],
            "verdict": decision.verdict,
            "promotion": outcome.state,
            "compared_with": decision.reference,
            "interval": decision.interval.text() if decision.interval else "none",
            "champion_version": (champion or {}).get("version", "none"),
            "gate": dg.MetadataValue.md(decision.markdown()),
            "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons)),
        },
    )
