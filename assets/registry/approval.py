"""approve_version: the Dagster op of the approve_candidate job. It promotes a version the gate left
`pending` (`registry.require_approval`) by the same path as `python -m pipelines.registry approve <version>`
(assets/registry/promotion.py:approve). The job around it, and the export that may follow, are in
pipelines/approval.py."""

import dagster as dg
from pydantic import Field

from assets.publishing import fail
from resources.registry import ModelRegistry, RegistryConflict, model_name_problem


class ApprovalConfig(dg.Config):
    """Which version to approve, and whether the export follows."""

    version: str = Field(description="The registry version to promote; it must be tagged promotion=pending.")
    export: bool = Field(
        default=False,
        description="Re-materialize merged_model once approved (the export_after_approval sensor starts "
        "that run; it needs the Dagster daemon, which `make ui` runs).",
    )
    model_name: str = Field(
        default="",
        description="The registered model; empty: registry.model_name from params.yaml as it is now.",
    )


@dg.op(
    description="Promote a version that passed the promotion gate and waits as `pending` "
    "(registry.require_approval), provided the champion is still the one it was judged against. The "
    "old champion becomes `previous`. Fails, moving nothing, for a version that is not pending.",
    tags={"kind": "mlflow"},
)
def approve_version(context: dg.OpExecutionContext, config: ApprovalConfig, registry: ModelRegistry) -> None:
    from mlflow.exceptions import MlflowException

    from assets.params import section
    from assets.registry.promotion import approve

    name = config.model_name or section("registry")["model_name"]
    if (problem := model_name_problem(name)) is not None:
        raise fail(f"approve_version: {problem}")
    try:
        demoted = approve(registry, name, config.version)
    except (ValueError, RegistryConflict) as exc:  # not pending; another run promoted in between
        raise fail(f"approve_version: {exc}") from None
    except MlflowException as exc:  # no such version or model, a registry that cannot be reached
        raise fail(
            f"approve_version: the registry at {registry.tracking_uri} refused ({exc.message}); "
            "nothing was promoted. Check the version number (`python -m pipelines.registry status`)."
        ) from None
    context.log.info(
        f"version {config.version} of '{name}' is now the champion"
        + (f"; version {demoted} is `previous`" if demoted else "")
    )
    if not config.export:
        context.log.info(
            "merged_model still holds the old champion: materialize merged_model, or run this job with "
            "export: true."
        )
    # The registered_adapter page shows who approved which version, beside its materializations.
    context.log_event(
        dg.AssetObservation(
            asset_key="registered_adapter",
            metadata={
                "model_name": name,
                "version": config.version,
                "promotion": "champion (approved)",
                "previous_champion": demoted or "none",
                "approved_by_run": context.run_id,
                "export_requested": config.export,
            },
        )
    )
