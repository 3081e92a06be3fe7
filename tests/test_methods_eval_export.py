"""Evaluation and export for every train.method (assets/evaluate/compare.py, assets/export/merge.py):
each model trained a few steps on the tiny model with the train stage's own entry point, then scored
and exported as its training record says."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from assets.evaluate.compare import evaluate_models
from assets.evaluate.scoring import EvalSettings
from assets.export.merge import NotMergeableError, merge_and_verify
from assets.shared.chat import IGNORE_INDEX
from assets.shared.training_record import read_training_record
from assets.train.methods import METHODS
from assets.train.settings import TrainSettings
from assets.train.training import train_adapter
from resources.model_loading import load_causal_lm, load_tokenizer

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Learning rates that move each method visibly in a few steps (as in tests/test_train_methods.py).
LEARNING_RATES = {"prefix": 0.05, "prompt": 0.3, "p_tuning": 0.05, "ia3": 0.2, "full": 0.002}
TOLERANCES = {"float32": 1e-3, "bfloat16": 0.03125, "float16": 0.0078125}
PROMPTS = ["What is 3 plus 3?", "Hallo Welt, wie geht es dir heute?"]
SETTINGS = EvalSettings(max_new_tokens=4, max_examples=2, batch_size=4, max_seq_length=48)


def _rows(count: int, offset: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": f"row-{i}",
            "category": None,
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."},
            ],
        }
        for i in range(offset, offset + count)
    ]


@pytest.fixture(scope="module")
def trained(base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``trained(method)``: the directory of that method trained 4 steps on 4 rows (once per module)."""
    root = tmp_path_factory.mktemp("trained")
    done: dict[str, Path] = {}

    def train(name: str) -> Path:
        if name not in done:
            values = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["train"]
            values.pop("base_model")
            values.update(
                method=name,
                batch_size=4,
                max_seq_length=48,
                learning_rate=LEARNING_RATES.get(name, 0.02),
                max_steps=4,
                warmup_ratio=0.0,
            )
            if METHODS[name].quantization != "required":
                values["quantization"] = None
            if name in ("prefix", "prompt", "p_tuning"):
                values["num_virtual_tokens"] = 4
            settings = TrainSettings.from_mapping(values)
            model = load_causal_lm(
                base_dir, quantization=settings.quantization, dtype="float32", device="cpu"
            )
            train_adapter(
                model,
                load_tokenizer(base_dir),
                _rows(4),
                [],
                settings,
                root / name,
                base_model_source="embedded",
            )
            done[name] = root / name
        return done[name]

    return train


def _evaluate(base_dir: Path, models: dict[str, Path], **kwargs: Any) -> dict[str, Any]:
    def load_base(quantization: str | None) -> Any:
        return load_causal_lm(base_dir, quantization=quantization, dtype="float32", device="cpu")

    return evaluate_models(
        load_base, load_tokenizer(base_dir), models, _rows(3, offset=5), SETTINGS, **kwargs
    )


def _reference_losses(model: Any, base_dir: Path, report: dict[str, Any]) -> list[float]:
    """Each scored row's mean answer NLL computed by the model's own loss (transformers, through peft's
    forward, which pads the labels of a soft prompt's virtual tokens itself)."""
    import torch

    from assets.evaluate.examples import prepare_examples

    examples = prepare_examples(
        load_tokenizer(base_dir), _rows(3, offset=5), max_tokens=report["max_tokens"], max_new_tokens=4
    )
    losses = []
    with torch.inference_mode():
        for example in examples:
            ids = torch.tensor([example.input_ids])
            labels = torch.tensor([example.labels])
            assert (labels != IGNORE_INDEX).any()
            losses.append(
                float(model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss)
            )
    return losses


def _trained_model(base_dir: Path, path: Path) -> Any:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    record = read_training_record(path)
    if record.method == "full":
        return AutoModelForCausalLM.from_pretrained(path, dtype="float32").eval()
    base = load_causal_lm(base_dir, quantization=record.quantization, dtype="float32", device="cpu")
    model = PeftModel.from_pretrained(base, path).eval()
    if model.active_peft_config.is_prompt_learning:
        # Only peft's forward adds a soft prompt (and pads its labels).
        return model
    # Injected layers compute within the transformers model itself, whose loss is the plain NLL (peft's
    # AdaLoRA forward would add its orthogonality penalty to a loss computed with labels).
    return model.get_base_model()


def _check_scored_as_the_model_computes(
    base_dir: Path, path: Path, report: dict[str, Any], name: str
) -> None:
    expected = _reference_losses(_trained_model(base_dir, path), base_dir, report)
    actual = [example["loss"][name] for example in report["examples"]]
    assert actual == pytest.approx(expected, rel=1e-4)


def test_prompt_tuning_is_scored_on_the_text_positions_and_cannot_be_exported(
    base_dir: Path, trained: Callable[[str], Path], tmp_path: Path
) -> None:
    """peft prepends prompt tuning's virtual tokens to the logits: unsliced, every row's loss would be
    computed against the wrong positions. Export refuses it, naming the method and how to serve it."""
    path = trained("prompt")
    report = _evaluate(base_dir, {"candidate": path})
    assert report["methods"] == {"candidate": "prompt"}
    # The 4 virtual tokens take 4 of the model's 512 positions; max_seq_length 48 still fits.
    assert report["max_tokens"] == 48
    assert {m["n_scored"] for m in report["models"].values()} == {3}
    _check_scored_as_the_model_computes(base_dir, path, report, "candidate")
    assert report["candidate_vs_base"]["max_abs_logit_diff"] > 1e-3
    assert all(isinstance(e["generation"]["candidate"], str) for e in report["examples"][:2])

    with pytest.raises(NotMergeableError, match=r"train\.method 'prompt'.*PeftModel\.from_pretrained"):
        merge_and_verify(
            base_dir, path, tmp_path / "out", dtype="float32", tolerances=TOLERANCES, verify_prompts=PROMPTS
        )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["prefix", "p_tuning"])
@pytest.mark.slow
def test_other_soft_prompts_are_scored_on_the_text_positions(
    name: str, base_dir: Path, trained: Callable[[str], Path], tmp_path: Path
) -> None:
    path = trained(name)
    report = _evaluate(base_dir, {"candidate": path})
    _check_scored_as_the_model_computes(base_dir, path, report, "candidate")
    assert report["candidate_vs_base"]["max_abs_logit_diff"] > 1e-3
    with pytest.raises(NotMergeableError, match=f"train.method '{name}'"):
        merge_and_verify(
            base_dir, path, tmp_path / "out", dtype="float32", tolerances=TOLERANCES, verify_prompts=PROMPTS
        )


@pytest.mark.slow
def test_ia3_on_a_full_precision_base_is_scored_and_merged(
    base_dir: Path, trained: Callable[[str], Path], tmp_path: Path
) -> None:
    path = trained("ia3")
    assert read_training_record(path).quantization is None
    report = _evaluate(base_dir, {"candidate": path})
    _check_scored_as_the_model_computes(base_dir, path, report, "candidate")
    assert report["candidate_vs_base"]["max_abs_logit_diff"] > 1e-3
    result = merge_and_verify(
        base_dir, path, tmp_path / "out", dtype="float32", tolerances=TOLERANCES, verify_prompts=PROMPTS
    )
    assert (result["method"], result["export"], result["trained_quantization"]) == ("ia3", "merged", None)
    assert result["reloaded_max_abs_logit_diff"] <= 1e-4 and result["top1_agreement"] == 1.0
    assert not (tmp_path / "out" / "adapter_config.json").exists()


@pytest.mark.slow
def test_a_full_candidate_faces_a_champion_of_another_method_and_is_exported_as_it_is(
    base_dir: Path, trained: Callable[[str], Path], tmp_path: Path
) -> None:
    """full: the candidate is a whole model, compared with the base loaded separately; the LoRA champion
    is scored on the base as it was trained. Export saves the trained model, nothing merged."""
    import torch
    from transformers import AutoModelForCausalLM

    full, lora = trained("full"), trained("lora")
    report = _evaluate(base_dir, {"candidate": full, "champion": lora})
    assert report["methods"] == {"candidate": "full", "champion": "lora"}
    assert {m["n_scored"] for m in report["models"].values()} == {3}
    _check_scored_as_the_model_computes(base_dir, full, report, "candidate")
    _check_scored_as_the_model_computes(base_dir, lora, report, "champion")
    assert report["candidate_vs_base"]["max_abs_logit_diff"] > 1e-3

    out = tmp_path / "out"
    result = merge_and_verify(
        base_dir, full, out, dtype="float32", tolerances=TOLERANCES, verify_prompts=PROMPTS
    )
    assert (result["method"], result["export"]) == ("full", "copied")
    assert result["max_abs_logit_diff"] == 0.0 and result["reloaded_max_abs_logit_diff"] == 0.0
    assert not (out / "adapter_config.json").exists() and (out / "tokenizer.json").is_file()
    exported = AutoModelForCausalLM.from_pretrained(out).eval()
    trained_model = AutoModelForCausalLM.from_pretrained(full).eval()
    batch = load_tokenizer(base_dir)(PROMPTS[:1], return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(exported(**batch).logits, trained_model(**batch).logits)
    assert json.loads((out / "merge_verification.json").read_text())["export"] == "copied"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lora", "dora", "adalora"])
def test_lora_family_on_a_full_precision_base_merges_without_dequantizing(
    name: str, base_dir: Path, trained: Callable[[str], Path], tmp_path: Path
) -> None:
    path = trained(name)
    report = _evaluate(base_dir, {"candidate": path})
    _check_scored_as_the_model_computes(base_dir, path, report, "candidate")
    result = merge_and_verify(
        base_dir, path, tmp_path / "out", dtype="float32", tolerances=TOLERANCES, verify_prompts=PROMPTS
    )
    assert (result["method"], result["export"], result["trained_quantization"]) == (name, "merged", None)
    assert result["max_abs_logit_diff"] <= 1e-4 and result["reloaded_max_abs_logit_diff"] <= 1e-4


@pytest.mark.slow
def test_a_qlora_candidate_and_a_soft_prompt_champion_each_get_their_own_base(
    base_dir: Path, trained: Callable[[str], Path]
) -> None:
    """The base is scored 4-bit, as the candidate was trained; the champion was trained on the
    full-precision base and is scored on one."""
    qlora, prompt = trained("qlora"), trained("prompt")
    report = _evaluate(base_dir, {"candidate": qlora, "champion": prompt})
    assert report["methods"] == {"candidate": "qlora", "champion": "prompt"}
    _check_scored_as_the_model_computes(base_dir, qlora, report, "candidate")
    _check_scored_as_the_model_computes(base_dir, prompt, report, "champion")
    alone = _evaluate(base_dir, {"candidate": prompt})
    assert [e["loss"]["champion"] for e in report["examples"]] == pytest.approx(
        [e["loss"]["candidate"] for e in alone["examples"]], rel=1e-6
    )


@pytest.mark.slow
def test_the_assets_evaluate_a_soft_prompt_against_an_ia3_champion_and_refuse_to_export_it(
    base_dir: Path, trained: Callable[[str], Path], tmp_path: Path
) -> None:
    """Through Dagster: evaluation_report loads each model by its own record; merged_model fails with a
    message naming the method and how to serve it, and keeps the previous export."""
    import shutil

    from resources.registry import ModelRegistry
    from tests.test_failures import (
        assert_says,
        example_rows,
        failure_description,
        materialize,
        store_at,
        write_base,
        write_examples,
    )

    store = store_at(tmp_path)
    write_base(tmp_path, base_dir)
    write_examples(tmp_path, "test_split", example_rows(3))
    shutil.copytree(trained("prompt"), store.path("adapter"))
    registry = ModelRegistry(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_location=str(tmp_path / "mlartifacts")
    )
    tags = {"base_model_md5": store.md5("base_model"), "base_model": "embedded"}
    name = "finetuned-adapter"
    ia3 = registry.register(name, trained("ia3"), tags={**tags, "adapter_md5": "ia3"}, metrics={}, params={})
    registry.promote(name, ia3["version"], expected_champion=None)

    result = materialize(tmp_path, ["evaluation_report"], {"max_examples": 2, "max_new_tokens": 4})
    assert result.success
    report = store.read_json("evaluation_report")
    assert report["methods"] == {"candidate": "prompt", "champion": "ia3"}
    assert report["reference"] == "champion" and report["champion"]["version"] == ia3["version"]
    assert {m["n_scored"] for m in report["models"].values()} == {3}
    assert report["candidate_vs_base"]["max_abs_logit_diff"] > 1e-3

    soft = registry.register(
        name, store.path("adapter"), tags={**tags, "adapter_md5": store.md5("adapter")}, metrics={}, params={}
    )
    registry.promote(name, soft["version"], expected_champion=ia3["version"])
    previous = store.path("merged_model")
    previous.mkdir(parents=True)
    (previous / "champion.json").write_text('{"version": "1"}\n')
    store.write_json("registered_adapter", {"name": name, "version": soft["version"]})
    result = materialize(tmp_path, ["merged_model"])
    assert_says(
        failure_description(result, "merged_model"),
        f"registry version {soft['version']}",
        "train.method 'prompt'",
        "PeftModel.from_pretrained",
        "previous export was kept",
    )
    assert [p.name for p in previous.iterdir()] == ["champion.json"]


@pytest.mark.slow
@pytest.mark.parametrize(("candidate", "champion"), [("dora", "lora"), ("adalora", "adalora")])
def test_adapters_of_one_kind_share_the_base_and_score_as_alone(
    candidate: str, champion: str, base_dir: Path, trained: Callable[[str], Path]
) -> None:
    """peft ``load_adapter`` puts the champion beside the candidate on one base; each scores as it
    does alone (for adalora: the same directory twice, since AdaLoRA allows one trainable adapter)."""
    report = _evaluate(base_dir, {"candidate": trained(candidate), "champion": trained(champion)})
    alone = _evaluate(base_dir, {"candidate": trained(champion)})
    assert [e["loss"]["champion"] for e in report["examples"]] == pytest.approx(
        [e["loss"]["candidate"] for e in alone["examples"]], rel=1e-6
    )
    _check_scored_as_the_model_computes(base_dir, trained(candidate), report, "candidate")
