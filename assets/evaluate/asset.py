"""evaluation_report: base model vs candidate adapter vs current champion, on test_split."""

import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from assets.publishing import (
    Stopwatch,
    artifact_store,
    fail,
    inline_markdown,
    record_stage,
    refuse_other_base,
    refuse_stale_adapter,
    stage_config,
    stage_policy,
    stage_settings,
    user_errors,
)
from assets.types import Dataset
from resources.dvc import DvcResource
from resources.models import ModelLoader
from resources.registry import ModelRegistry, model_name_problem
from resources.storage import StorageResource

# The evaluate settings, plus registry.model_name: whose champion the candidate faces.
EvaluationReportConfig = stage_config("evaluation_report")


@dg.asset(
    group_name="model",
    kinds={"evaluate", "dvc"},
    **stage_policy("evaluation_report"),
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    config: EvaluationReportConfig,
    base_model: Path,
    adapter: Path,
    test_split: Dataset,
    storage: StorageResource,
    dvc: DvcResource,
    models: ModelLoader,
    registry: ModelRegistry,
) -> Iterator[dg.MaterializeResult]:
    """Perplexity (answer tokens), ROUGE-L, BLEU and exact match of generated answers, per category
    where the data has categories, for the base model, the candidate adapter and the current champion
    (when there is one, trained on the same base), all on the same test_split rows. Each is loaded as
    its training record says: any peft method on the base quantized as in training, or the whole model
    for `full`; candidate and champion may be of different methods. Prompts are cut from
    the left to fit the adapter's train.max_seq_length; a row whose answer alone does not fit is counted
    as not scored, with its reason. Per-row losses and answers are in the report's `examples`. The
    promotion gate reads this report."""
    from assets.evaluate.compare import evaluate_models
    from assets.evaluate.scoring import EvalSettings
    from assets.evaluate.summary import answers_table, metric_table, rows_table
    from assets.shared.reference import choose_reference
    from assets.shared.training_record import read_training_record

    stopwatch = Stopwatch()
    if (problem := model_name_problem(config.model_name)) is not None:
        raise fail(problem)
    store = artifact_store(storage)
    with user_errors("evaluation_report"):
        trained = read_training_record(adapter)
    refuse_stale_adapter("evaluation_report", trained, store)
    base_record = models.base_record(base_model)
    refuse_other_base("evaluation_report", context, base_record)
    base_source, trained_on = base_record["source"], trained.base_model.get("source")
    if trained_on != base_source:
        # Its weights would not fit this base (a traceback), or would be scored on the wrong model.
        raise fail(
            f"evaluation_report: the adapter was trained on base model {trained_on!r} (its "
            f"training_config.json), but base_model now holds {base_source!r} (train.base_model): "
            "materialize adapter again on this base, or set train.base_model back and materialize base_model."
        )
    # Score the base exactly as the adapter was trained: same quantization, same truncation.
    settings = stage_settings(EvalSettings, {**config.model_dump(), "max_seq_length": trained.max_seq_length})
    base_md5, adapter_md5 = store.md5("base_model"), store.md5("adapter")
    with user_errors("evaluation_report"):  # a registry that cannot be reached or stays locked
        champion = registry.champion(config.model_name)
    reference = choose_reference(champion, base_model_md5=base_md5, adapter_md5=adapter_md5)
    trained_models: dict[str, Path] = {"candidate": adapter}
    artifacts_missing = None
    with tempfile.TemporaryDirectory(prefix="champion-") as tmp, user_errors("evaluation_report"):
        if reference.kind == "champion":
            try:
                trained_models["champion"] = registry.download_adapter(champion, Path(tmp))
            except FileNotFoundError as exc:
                # A champion that cannot be scored must not block every later run: compare with the
                # base, say so loudly, and record it so the gate judges against the same reference.
                artifacts_missing = champion["version"]
                reference = choose_reference(
                    champion,
                    base_model_md5=base_md5,
                    adapter_md5=adapter_md5,
                    artifacts_missing=artifacts_missing,
                )
                context.log.warning(f"evaluation_report: {exc} Reference: {reference.note}.")
        tokenizer = models.tokenizer(base_model)
        # An unchanged re-run: the champion's results are the candidate's, no need to score twice.
        aliases = {"champion": "candidate"} if reference.kind == "candidate_is_champion" else None
        # Each model is loaded as its own training record says (method, quantization): the base as
        # the candidate was trained, a champion of another method on a base of its own.
        measured = evaluate_models(
            lambda quantization: models.causal_lm(base_model, quantization=quantization),
            tokenizer,
            trained_models,
            test_split.to_list(),
            settings,
            aliases=aliases,
        )
    results = measured["models"]
    for name, metrics in results.items():
        context.log.info(
            f"{name}: perplexity {metrics['perplexity']:.4g} on {metrics['n_scored']} scored rows "
            f"({metrics['n_unscored']} not scored), ROUGE-L {metrics['rougeL']:.4g}"
        )
    if measured["unscored"]:
        context.log.warning(
            f"{sum(measured['unscored'].values())} of {len(test_split)} test rows not scored: "
            + ", ".join(f"{reason} {count}" for reason, count in measured["unscored"].items())
            + " (see the report's examples and the 'rows' metadata)"
        )
    report = {
        "test_rows": len(test_split),
        "test_split_md5": store.md5("test_split"),
        "adapter_md5": adapter_md5,
        "base_model_md5": base_md5,
        "registry_model_name": config.model_name,
        "reference": reference.kind,
        "champion": {"version": champion["version"], "run_id": champion["run_id"]}
        if "champion" in results
        else None,
        "champion_note": reference.note,
        "champion_artifacts_missing": artifacts_missing,
        "max_tokens": measured["max_tokens"],
        "models": results,
        "unscored": measured["unscored"],
        "candidate_vs_base": measured["candidate_vs_base"],
        "methods": measured["methods"],
        "examples": measured["examples"],
    }
    store.write_json("evaluation_report", report)
    metadata = {
        "metrics": dg.MetadataValue.md(metric_table(results)),
        "rows": dg.MetadataValue.md(
            rows_table(len(test_split), measured["unscored"], measured["max_tokens"])
        ),
        # A few answers side by side, short enough to show inline; every generated answer in answers_full.
        "answers": inline_markdown(
            lambda width: answers_table(measured["examples"], limit=3, width=width), (60, 40, 25, 15)
        ),
        "answers_full": dg.MetadataValue.md(answers_table(measured["examples"])),
        "champion": reference.note,
        "reference": f"base (champion v{artifacts_missing} artifacts missing)"
        if artifacts_missing
        else reference.kind,
        "candidate_method": measured["methods"]["candidate"],
        "n_scored": results["candidate"]["n_scored"],
        "n_unscored": results["candidate"]["n_unscored"],
        "candidate_perplexity": results["candidate"]["perplexity"],
        "base_perplexity": results["base"]["perplexity"],
        "candidate_vs_base_max_abs_logit_diff": measured["candidate_vs_base"]["max_abs_logit_diff"],
    }
    yield from record_stage(context, config, storage, dvc, {"evaluation_report": metadata}, stopwatch)
