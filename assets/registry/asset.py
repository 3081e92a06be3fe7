"""registered_adapter and its promotion gate."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from assets.params import settings_from, settings_hash
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
from resources.dvc import DvcResource
from resources.project import PROJECT_ROOT
from resources.registry import ModelRegistry, model_name_problem
from resources.storage import StorageResource

RegistryConfig = stage_config("registered_adapter")


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
    from assets.registry.gate import GateSettings
    from assets.registry.lineage import (
        LINEAGE_ARTIFACTS,
        git_commit,
        lineage_tags,
        raw_sources,
    )
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
    existing = registry.find_version(config.model_name, "adapter_md5", md5s["adapter"])
    candidate_metrics = {
        k: v for k, v in evaluation_report["models"]["candidate"].items() if isinstance(v, (int, float))
    }
    if existing is not None:
        info, reused = existing, True
    else:
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
        params = {
            f"{stage}.{k}": v for stage, values in settings.items() if values for k, v in values.items()
        }
        info, reused = (
            registry.register(
                config.model_name, adapter, tags=tags, metrics=candidate_metrics, params=params
            ),
            False,
        )
    # The gate reads its settings from this record, so a launchpad override of them applies to it too.
    gate = {k: v for k, v in config.model_dump().items() if k != "model_name"}
    record = {**info, "reused_existing_version": reused, "candidate_metrics": candidate_metrics, "gate": gate}
    store.write_json("registered_adapter", record)
    metadata = {
        "model_name": info["name"],
        "version": info["version"],
        "reused_existing_version": reused,
        "mlflow_run_id": info["run_id"],
        "lineage": dg.MetadataValue.json(info["tags"]),
    }
    yield from record_stage(context, config, storage, dvc, {"registered_adapter": metadata}, stopwatch)


@dg.asset_check(
    asset="registered_adapter",
    additional_ins={"evaluation_report": dg.AssetIn("evaluation_report")},
    blocking=True,
    description="Promotion gate: the candidate must beat the champion (or the base model when there is "
    "none) on the primary metric without regressing elsewhere. On pass it becomes the champion; on "
    "failure nothing downstream (the merged export) runs.",
)
def promotion_gate(
    registered_adapter: dict[str, Any], evaluation_report: dict[str, Any], registry: ModelRegistry
) -> dg.AssetCheckResult:
    from assets.registry.gate import GateDecision, GateSettings, judge
    from assets.shared.reference import choose_reference

    try:
        settings = settings_from(GateSettings, registered_adapter["gate"])
    except ValueError as exc:
        return dg.AssetCheckResult(passed=False, metadata={"reasons": dg.MetadataValue.md(f"- {exc}")})
    name, version = registered_adapter["name"], registered_adapter["version"]
    champion = registry.champion(name)
    reference = choose_reference(
        champion,
        base_model_md5=evaluation_report.get("base_model_md5", ""),
        adapter_md5=registered_adapter["tags"].get("adapter_md5"),
    )
    evaluated_against = (evaluation_report.get("champion") or {}).get("version")
    if evaluation_report.get("adapter_md5") != registered_adapter["tags"].get("adapter_md5"):
        decision = GateDecision(
            False, "none", ["the evaluation report is for another adapter: re-materialize evaluation_report"]
        )
    elif reference.kind == "candidate_is_champion":
        decision = GateDecision(True, "champion", [f"version {version} is already the champion"])
    elif reference.kind != evaluation_report.get("reference") or (
        reference.kind == "champion" and evaluated_against != reference.champion_version
    ):
        decision = GateDecision(
            False,
            reference.kind,
            [
                f"the report was made against another reference than the current one ({reference.note}): "
                "re-materialize evaluation_report"
            ],
        )
    else:
        decision = judge(evaluation_report, settings)
        registry.tag(name, version, "promotion", "champion" if decision.passed else "rejected")
        registry.tag(name, version, "promotion_reason", "; ".join(decision.reasons)[:5000])
        if decision.passed:
            registry.promote(name, version)
    return dg.AssetCheckResult(
        passed=decision.passed,
        metadata={
            "version": version,
            "compared_with": decision.reference,
            "champion_version": (registry.champion(name) or {}).get("version", "none"),
            "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons)),
            "comparisons": dg.MetadataValue.json(decision.comparisons),
        },
    )
