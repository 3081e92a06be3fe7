"""evaluation_report: base model vs candidate adapter vs current champion, on test_split."""

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from assets.params import config_class, section
from assets.publishing import Stopwatch, code_version, config_overrides, record_stage, stage_settings
from assets.types import Dataset
from resources.dvc import DvcResource
from resources.models import ModelLoader
from resources.registry import ModelRegistry
from resources.storage import StorageResource

EvaluateConfig = config_class("evaluate", dg.Config)
METRIC_COLUMNS = ("perplexity", "rougeL", "bleu", "answer_exact_match", "n_examples")


@dg.asset(
    group_name="model",
    kinds={"evaluate", "dvc"},
    code_version=code_version("evaluation_report"),
    tags={"stage": "evaluate"},
)
def evaluation_report(
    config: EvaluateConfig,
    base_model: Path,
    adapter: Path,
    test_split: Dataset,
    storage: StorageResource,
    dvc: DvcResource,
    models: ModelLoader,
    registry: ModelRegistry,
) -> Iterator[dg.MaterializeResult]:
    """Perplexity (assistant tokens), ROUGE-L, BLEU and exact match of generated answers, per category
    where the data has categories, for the base model, the candidate adapter and the current champion
    (when there is one, trained on the same base), all on the same test_split. The promotion gate reads
    this report."""
    from assets.evaluate.compare import evaluate_models
    from assets.evaluate.scoring import EvalSettings
    from assets.train.qlora import TRAINING_CONFIG_FILE

    stopwatch = Stopwatch()
    store = storage.store()
    # Score the base exactly as the adapter was trained: same quantization, same truncation.
    trained = json.loads((adapter / TRAINING_CONFIG_FILE).read_text(encoding="utf-8"))["settings"]
    settings = stage_settings(
        EvalSettings, {**config.model_dump(), "max_seq_length": trained["max_seq_length"]}
    )
    model_name = section("registry")["model_name"]
    base_md5, adapter_md5 = store.md5("base_model"), store.md5("adapter")
    champion = registry.champion(model_name)
    champion_note = "no champion yet"
    champion_is_candidate = False
    adapters: dict[str, Path] = {"candidate": adapter}
    with tempfile.TemporaryDirectory(prefix="champion-") as tmp:
        if champion is not None:
            if champion["tags"].get("adapter_md5") == adapter_md5:
                # An unchanged re-run: the champion's metrics are the candidate's, no need to score twice.
                champion_is_candidate = True
                champion_note = f"the candidate is the champion (version {champion['version']})"
            elif champion["tags"].get("base_model_md5") == base_md5:
                adapters["champion"] = registry.download_adapter(champion, Path(tmp))
                champion_note = f"champion is version {champion['version']}"
            else:
                champion_note = (
                    f"champion version {champion['version']} was trained on another base model "
                    f"({champion['tags'].get('base_model', '?')}); compared with the base model instead"
                )
        model = models.causal_lm(base_model, quantization=trained["quantization"])
        tokenizer = models.tokenizer(base_model)
        results = evaluate_models(model, tokenizer, adapters, test_split.to_list(), settings)
    if champion_is_candidate:
        results["champion"] = results["candidate"]
    report = {
        "test_rows": len(test_split),
        "test_split_md5": store.md5("test_split"),
        "adapter_md5": adapter_md5,
        "base_model_md5": base_md5,
        "champion": {"version": champion["version"], "run_id": champion["run_id"]}
        if "champion" in results
        else None,
        "champion_note": champion_note,
        "models": results,
    }
    store.write_json("evaluation_report", report)
    metadata = {
        "metrics": dg.MetadataValue.md(metric_table(results)),
        "champion": champion_note,
        "candidate_perplexity": results["candidate"]["perplexity"],
        "base_perplexity": results["base"]["perplexity"],
    }
    overridden = config_overrides(config, "evaluate")
    yield from record_stage(storage, dvc, {"evaluation_report": metadata}, stopwatch, overridden=overridden)


def metric_table(results: dict[str, dict[str, Any]]) -> str:
    """Models as rows, headline metrics as columns, in markdown."""
    lines = ["| model | " + " | ".join(METRIC_COLUMNS) + " |", "|---" * (len(METRIC_COLUMNS) + 1) + "|"]
    for name, metrics in results.items():
        cells = [_cell(metrics.get(column)) for column in METRIC_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
