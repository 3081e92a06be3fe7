"""Merging an adapter into the de-quantized base (assets/export/merge.py), on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assets.export.merge import VERIFICATION_FILE, MergeVerificationError, merge_and_verify
from assets.shared.errors import InputError
from assets.shared.training_record import TRAINING_CONFIG_FILE, TrainingRecord, TrainingRecordError
from resources.model_loading import load_causal_lm, load_tokenizer, prepare_base_model

PROMPTS = ["What is 3 plus 3?", "Hallo Welt, wie geht es dir heute?"]


@pytest.fixture(scope="module")
def base_and_adapter(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny base and a LoRA adapter on its 4-bit form with random, non-zero weights in A and B."""
    import torch
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("merge")
    base = root / "base"
    prepare_base_model("embedded", base, seed=0)
    torch.manual_seed(0)
    model = load_causal_lm(base, quantization="nf4", dtype="float32", device="cpu")
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    adapter = root / "adapter"
    get_peft_model(model, lora).save_pretrained(adapter)
    load_tokenizer(base).save_pretrained(adapter)
    TrainingRecord(
        settings={"quantization": "nf4", "max_seq_length": 64}, base_model={"source": "embedded"}
    ).write(adapter)
    return base, adapter


def test_merged_model_reproduces_the_adapter_and_is_a_plain_model(
    base_and_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    import bitsandbytes as bnb
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base, adapter = base_and_adapter
    out = tmp_path / "merged"
    report = merge_and_verify(
        base, adapter, out, dtype="float32", max_abs_logit_diff=1e-3, verify_prompts=PROMPTS
    )
    assert report["max_abs_logit_diff"] <= 1e-4 and report["reloaded_max_abs_logit_diff"] <= 1e-4
    assert report["top1_agreement"] == 1.0 and report["trained_quantization"] == "nf4"
    assert json.loads((out / VERIFICATION_FILE).read_text()) == report
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["merged"]

    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in merged.modules())
    assert merged.num_parameters() == report["parameters"]
    # The adapter changed the model: the merged weights are not the base's.
    original = load_causal_lm(base, quantization=None, dtype="float32", device="cpu")
    batch = AutoTokenizer.from_pretrained(out)(PROMPTS[:1], return_tensors="pt")
    with torch.inference_mode():
        assert (merged(**batch).logits - original(**batch).logits).abs().max() > 1e-2


def test_merging_into_the_original_weights_would_not_be_faithful(base_and_adapter: tuple[Path, Path]) -> None:
    """Why merge_and_verify de-quantizes: the full-precision weights are not what the adapter trained on."""
    import torch
    from peft import PeftModel

    base, adapter = base_and_adapter
    batch = load_tokenizer(base)(PROMPTS[:1], return_tensors="pt")
    on_4bit = PeftModel.from_pretrained(
        load_causal_lm(base, quantization="nf4", dtype="float32", device="cpu"), adapter
    )
    naive = PeftModel.from_pretrained(
        load_causal_lm(base, quantization=None, dtype="float32", device="cpu"), adapter
    )
    with torch.inference_mode():
        difference = (
            (on_4bit.eval()(**batch).logits - naive.merge_and_unload().eval()(**batch).logits).abs().max()
        )
    assert difference > 1e-3


def test_unfaithful_merge_is_refused_and_the_previous_export_kept(
    base_and_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    base, adapter = base_and_adapter
    out = tmp_path / "merged"
    out.mkdir()
    (out / "previous.txt").write_text("the export before")
    # bfloat16 rounds the merged weights far beyond this tolerance.
    with pytest.raises(MergeVerificationError, match=r"export\.max_abs_logit_diff") as caught:
        merge_and_verify(
            base, adapter, out, dtype="bfloat16", max_abs_logit_diff=1e-4, verify_prompts=PROMPTS
        )
    assert caught.value.measured > caught.value.allowed == 1e-4
    assert [p.name for p in out.iterdir()] == ["previous.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["merged"]


def test_bad_inputs_are_explained(base_and_adapter: tuple[Path, Path], tmp_path: Path) -> None:
    base, adapter = base_and_adapter
    with pytest.raises(InputError, match="No prompt to verify"):
        merge_and_verify(
            base, adapter, tmp_path / "m", dtype="float32", max_abs_logit_diff=1e-3, verify_prompts=[]
        )
    with pytest.raises(TrainingRecordError, match=TRAINING_CONFIG_FILE):
        merge_and_verify(
            base, tmp_path, tmp_path / "m", dtype="float32", max_abs_logit_diff=1e-3, verify_prompts=PROMPTS
        )
    assert not (tmp_path / "m").exists()
