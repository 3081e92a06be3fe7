"""registered_adapter and its promotion gate."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from assets.params import config_class, params_hash, section, settings_from
from assets.publishing import Stopwatch, code_version, config_overrides, fail, record_stage
from resources.dvc import DvcResource
from resources.project import PROJECT_ROOT
from resources.registry import ModelRegistry
from resources.storage import StorageResource

RegistryConfig = config_class("registry", dg.Config)


@dg.asset(
    group_name="model",
    kinds={"mlflow", "dvc"},
    code_version=code_version("registered_adapter"),
    deps=["raw_examples", "clean_examples", "train_split", "validation_split", "test_split", "base_model"],
    tags={"stage": "register"},
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
    from assets.registry.lineage import LINEAGE_ARTIFACTS, git_commit, lineage_tags

    stopwatch = Stopwatch()
    store = storage.store()
    md5s = {key: store.md5(key) for key in LINEAGE_ARTIFACTS}
    if evaluation_report.get("adapter_md5") != md5s["adapter"]:
        raise fail(
            "evaluation_report was made for another adapter than the current one: materialize "
            "evaluation_report before registered_adapter, so the registry gets this adapter's metrics."
        )
    existing = registry.find_version(config.model_name, "adapter_md5", md5s["adapter"])
    candidate_metrics = {
        k: v for k, v in evaluation_report["models"]["candidate"].items() if isinstance(v, (int, float))
    }
    if existing is not None:
        info, reused = existing, True
    else:
        tags = lineage_tags(
            md5s,
            params_hash=params_hash(),
            git_commit=git_commit(PROJECT_ROOT),
            run_id=context.run_id,
            base_model=section("train")["base_model"],
            raw_path=section("data")["raw_path"],
        )
        params = {
            f"{s}.{k}": v for s in ("train", "split", "clean", "augment") for k, v in section(s).items()
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
    overridden = config_overrides(config, "registry")
    yield from record_stage(storage, dvc, {"registered_adapter": metadata}, stopwatch, overridden=overridden)


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

    try:
        settings = settings_from(GateSettings, registered_adapter["gate"])
    except ValueError as exc:
        return dg.AssetCheckResult(passed=False, metadata={"reasons": dg.MetadataValue.md(f"- {exc}")})
    name, version = registered_adapter["name"], registered_adapter["version"]
    champion = registry.champion(name)
    evaluated_against = (evaluation_report.get("champion") or {}).get("version")
    if evaluation_report.get("adapter_md5") != registered_adapter["tags"].get("adapter_md5"):
        decision = GateDecision(
            False, "none", ["the evaluation report is for another adapter: re-materialize evaluation_report"]
        )
    elif champion is not None and champion["version"] == version:
        decision = GateDecision(True, "champion", [f"version {version} is already the champion"])
    elif (
        champion is not None
        and evaluated_against != champion["version"]
        and champion["tags"].get("base_model_md5") == evaluation_report.get("base_model_md5")
    ):
        decision = GateDecision(
            False,
            "champion",
            [
                f"the report did not compare with the current champion (version {champion['version']}): "
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
