"""merged_model: the champion adapter merged into its de-quantized base, verified."""

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from assets.publishing import (
    Stopwatch,
    artifact_store,
    champion_files_gone,
    fail,
    record_stage,
    recorded_settings,
    refuse_other_base,
    stage_config,
    stage_policy,
    stage_settings,
    user_errors,
)
from assets.types import Dataset
from resources.artifacts import ArtifactStore
from resources.dvc import DvcResource
from resources.models import ModelLoader
from resources.registry import ModelRegistry
from resources.storage import StorageResource

MergedModelConfig = stage_config("merged_model")


@dg.asset(
    group_name="model",
    kinds={"transformers", "safetensors", "dvc"},
    **stage_policy("merged_model"),
)
def merged_model(
    context: dg.AssetExecutionContext,
    config: MergedModelConfig,
    registered_adapter: dict[str, Any],
    base_model: Path,
    test_split: Dataset,
    storage: StorageResource,
    dvc: DvcResource,
    registry: ModelRegistry,
    models: ModelLoader,
) -> Iterator[dg.MaterializeResult]:
    """The current champion from the registry merged into its de-quantized base and saved as a plain
    transformers model in `export.dtype` (safetensors, tokenizer with its chat template, generation
    config, no quantization config): load it with `AutoModelForCausalLM.from_pretrained`. A champion
    trained with `train.method: full` is already a whole model and is saved as it is; a soft prompt
    (prefix, prompt, p_tuning) cannot be merged and fails with how to serve it with peft. Before it
    replaces the previous export, its logits on test prompts must match the adapter applied to the base
    (or the fully fine-tuned model) within the dtype's tolerance (`export.logit_tolerance_<dtype>`).
    `README.md` is its model card (metrics, gate verdict, lineage); `champion.json` says which registry
    version it is."""
    from assets.export.merge import (
        ExportSettings,
        MergeVerificationError,
        NotMergeableError,
        merge_and_verify,
    )
    from assets.export.model_card import model_card, report_for
    from assets.shared.reference import choose_reference

    stopwatch = Stopwatch()
    settings = stage_settings(ExportSettings, config.model_dump())
    store = artifact_store(storage)
    # The champion is merged into the base on disk: it must be the one train.base_model names now.
    refuse_other_base("merged_model", context, models.base_record(base_model))
    name = registered_adapter["name"]
    with user_errors("merged_model"):  # a registry that cannot be reached or stays locked
        champion = registry.champion(name)
    if champion is None:
        raise fail(
            f"merged_model: the registry has no champion for '{name}' yet (registry.model_name): the "
            "promotion_gate check on registered_adapter has never passed, so there is nothing to export. "
            "Materialize registered_adapter with a candidate that passes the gate (its check says why one "
            "failed), then merged_model."
        )
    reference = choose_reference(champion, base_model_md5=store.md5("base_model"))
    if reference.kind != "champion":
        raise fail(
            f"merged_model: {reference.note}, not on the current base_model, so it cannot be merged into "
            "it: re-train on this base (the gate then decides), or set train.base_model back."
        )
    prompts = verification_prompts(test_split.to_list(), settings.verify_prompts)
    if not prompts:
        raise fail(
            "merged_model: test_split has no user prompt to verify the merged model on: materialize split "
            "so that the test split holds conversations (split.test_fraction or split.test_start)."
        )
    # champion.json says which registry version this export is, months later.
    lineage = {
        "registry_name": name,
        "version": champion["version"],
        "run_id": champion["run_id"],
        **champion["tags"],
    }
    if export_holds(context, config, store, lineage):
        # An unchanged re-run: merging and verifying again would write the same export.
        context.log.info(
            f"merged_model: unchanged: the export already holds champion version {champion['version']}, "
            "made with these settings; nothing merged."
        )
        card_path = store.path("merged_model") / "README.md"
        metadata = {
            "model_card": dg.MetadataValue.md(
                card_path.read_text(encoding="utf-8") if card_path.is_file() else ""
            ),
            "champion_version": champion["version"],
            "base_model": champion["tags"].get("base_model", "?"),
            "reused_existing_export": True,
        }
        yield from record_stage(context, config, storage, dvc, {"merged_model": metadata}, stopwatch)
        return
    # The evaluation report on disk describes the champion only when it evaluated the same adapter.
    report_path = store.path("evaluation_report")
    report = report_for(champion, store.read_json("evaluation_report") if report_path.is_file() else None)

    def card(verification: dict[str, Any]) -> str:
        return model_card(champion, verification, report=report, registration=registered_adapter)

    with tempfile.TemporaryDirectory(prefix="champion-") as tmp, user_errors("merged_model"):
        try:
            adapter_dir = registry.download_adapter(champion, Path(tmp))
        except FileNotFoundError as exc:
            raise champion_files_gone("merged_model", name, exc) from None
        try:
            # merge_and_verify writes atomically: the previous export stays unless this one verifies.
            result = merge_and_verify(
                base_model,
                adapter_dir,
                store.path("merged_model"),
                dtype=settings.dtype,
                tolerances=settings.tolerances,
                verify_prompts=prompts,
                device=models.device,
                extra_files={
                    "champion.json": json.dumps(lineage, indent=2, sort_keys=True) + "\n",
                    "README.md": card,
                },
            )
        except (MergeVerificationError, NotMergeableError) as exc:
            raise fail(
                f"merged_model: registry version {champion['version']}: {exc} The previous export was "
                "kept (its champion.json says which version it holds)."
            ) from None
    context.log.info(
        f"merged_model: {result['method']} champion {result['export']}; the {settings.dtype} export "
        "differs from the trained model by "
        f"{result['max_abs_logit_diff']:.3g} (allowed {result['allowed_max_abs_logit_diff']:.3g}); "
        "model card written"
    )
    metadata = {
        "model_card": dg.MetadataValue.md(card(result)),
        "champion_version": champion["version"],
        "base_model": champion["tags"].get("base_model", "?"),
        "reused_existing_export": False,
        **{k: v for k, v in result.items() if isinstance(v, (int, float, str, bool))},
    }
    yield from record_stage(context, config, storage, dvc, {"merged_model": metadata}, stopwatch)


def verification_prompts(rows: list[dict[str, Any]], count: int) -> list[str]:
    """The first user turn of the first ``count`` test rows: real prompts the model will see."""
    prompts = []
    for row in rows:
        user = next((m["content"] for m in row["messages"] if m["role"] == "user"), None)
        if user:
            prompts.append(user)
        if len(prompts) == count:
            break
    return prompts


# What identifies the champion an export holds (its champion.json), whatever other tags it has gained.
_EXPORT_IDENTITY = ("registry_name", "version", "run_id", "adapter_md5")


def export_holds(
    context: dg.AssetExecutionContext, config: dg.Config, store: ArtifactStore, lineage: dict[str, Any]
) -> bool:
    """Whether the export on disk already is this one: the same champion (``lineage``, as champion.json
    records it) written by a materialization with the same export settings (found in the event log by
    the export's DVC md5). An export nobody recorded (e.g. after `dvc checkout`) is made again."""
    path = store.path("merged_model") / "champion.json"
    try:
        held = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if any(held.get(key) != lineage.get(key) for key in _EXPORT_IDENTITY):
        return False
    return recorded_settings(context, "merged_model", store.md5("merged_model")) == config.model_dump()
