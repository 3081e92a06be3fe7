"""The composition root: every asset, check, resource, job, schedule and sensor.

`dagster dev` (make ui; pyproject.toml names this module under [tool.dagster]) serves it; tests load
`defs` directly. Environment settings come from variables here, pipeline settings from params.yaml
through each stage's Config class (assets/publishing.py, the stage table).
"""

from __future__ import annotations

import dagster as dg

from assets.augment.asset import augmented_examples
from assets.base.asset import base_model
from assets.checks import schema_checks
from assets.clean.asset import clean, row_accounting
from assets.evaluate.asset import evaluation_report
from assets.export.asset import merged_model
from assets.ingest.asset import raw_examples
from assets.registry.asset import promotion_gate, registered_adapter
from assets.split.asset import split, split_leakage
from assets.train.asset import adapter
from assets.tune.job import hyperparameter_search
from pipelines.approval import approve_candidate_job, export_after_approval, export_champion
from pipelines.automation import full_pipeline, raw_data_changed, weekly_retrain
from pipelines.console import console_logger
from pipelines.io_manager import ArtifactIOManager
from resources.dvc import DvcResource
from resources.models import ModelLoader, device_from_env
from resources.registry import ModelRegistry, request_settings_from_env, tracking_uri_from_env
from resources.storage import StorageResource

ASSETS = [
    raw_examples,
    clean,
    augmented_examples,
    split,
    base_model,
    adapter,
    evaluation_report,
    registered_adapter,
    merged_model,
]
CHECKS = [row_accounting, split_leakage, promotion_gate, *schema_checks()]


def build_resources() -> dict[str, object]:
    storage = StorageResource()
    return {
        "storage": storage,
        "io_manager": ArtifactIOManager(storage=storage),
        "dvc": DvcResource(),
        "models": ModelLoader(device=device_from_env()),
        # The URI by its variable's name (no credentials shown); MLflow's HTTP timeout and retries.
        "registry": ModelRegistry(tracking_uri=tracking_uri_from_env(), **request_settings_from_env()),
    }


defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    # hyperparameter_search is started by hand (UI, `python -m pipelines.tune`): no schedule or sensor.
    jobs=[full_pipeline, hyperparameter_search, approve_candidate_job, export_champion],
    schedules=[weekly_retrain],
    sensors=[raw_data_changed, export_after_approval],
    resources=build_resources(),
    # One process runs the steps in order: on a 2-core machine parallel steps only fight over the CPU,
    # and torch is imported once. A team deployment swaps this for a multiprocess/k8s executor.
    executor=dg.in_process_executor,
    # The console shows a user error's message without Dagster's stack trace (the event log keeps it).
    loggers={"console": console_logger},
)
