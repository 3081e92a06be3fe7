"""Merging an adapter into the de-quantized base (assets/export/merge.py), on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assets.export.merge import (
    MACHINE_EPSILON,
    VERIFICATION_FILE,
    ExportSettings,
    MergeVerificationError,
    NotMergeableError,
    export_kind,
    merge_and_verify,
)
from assets.shared.errors import InputError
from assets.shared.training_record import TRAINING_CONFIG_FILE, TrainingRecord, TrainingRecordError
from resources.model_loading import load_causal_lm, load_tokenizer, prepare_base_model

PROMPTS = ["What is 3 plus 3?", "Hallo Welt, wie geht es dir heute?"]
# The defaults of params.yaml (export.logit_tolerance_<dtype>).
DEFAULTS = {"float32": 1e-3, "bfloat16": 0.03125, "float16": 0.0078125}


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
        base,
        adapter,
        out,
        dtype="float32",
        tolerances=DEFAULTS,
        verify_prompts=PROMPTS,
        extra_files={"README.md": lambda verification: f"diff {verification['max_abs_logit_diff']}"},
    )
    assert report["max_abs_logit_diff"] <= 1e-4 and report["reloaded_max_abs_logit_diff"] <= 1e-4
    assert report["top1_agreement"] == 1.0 and report["trained_quantization"] == "nf4"
    assert report["allowed_max_abs_logit_diff"] == 1e-3  # the logits' scale is below 1
    assert json.loads((out / VERIFICATION_FILE).read_text()) == report
    assert (out / "README.md").read_text() == f"diff {report['max_abs_logit_diff']}"
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    # What generation needs travels with the weights: the chat template and where answers end.
    assert AutoTokenizer.from_pretrained(out).chat_template == load_tokenizer(base).chat_template
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == load_tokenizer(base).eos_token_id
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


def test_case_14_a_bfloat16_export_passes_its_dtype_tolerance(
    base_and_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    """Case 14: a bfloat16 export failed the single default tolerance (0.001). With the bfloat16 default
    it passes, and the saved model is bfloat16."""
    base, adapter = base_and_adapter
    report = merge_and_verify(
        base, adapter, tmp_path / "m", dtype="bfloat16", tolerances=DEFAULTS, verify_prompts=PROMPTS
    )
    assert 1e-3 < report["max_abs_logit_diff"] <= report["allowed_max_abs_logit_diff"] == 0.03125
    assert report["machine_epsilon"] == MACHINE_EPSILON["bfloat16"] == 2**-7
    assert json.loads((tmp_path / "m" / "config.json").read_text())["dtype"] == "bfloat16"


def test_case_14_a_bfloat16_failure_names_the_dtype_and_a_tolerance_that_works(
    base_and_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    base, adapter = base_and_adapter
    out = tmp_path / "merged"
    out.mkdir()
    (out / "previous.txt").write_text("the export before")
    # The tolerance of case 14 (the old single default): bfloat16 rounding alone exceeds it.
    tight = {**DEFAULTS, "bfloat16": 1e-3}
    with pytest.raises(MergeVerificationError) as caught:
        merge_and_verify(base, adapter, out, dtype="bfloat16", tolerances=tight, verify_prompts=PROMPTS)
    error = caught.value
    message = str(error)
    assert error.measured > error.allowed == 1e-3 and error.float32_measured < 1e-4
    assert message.index("The cause is the bfloat16 dtype") < message.index(
        "export.logit_tolerance_bfloat16 to"
    )
    assert "trained on this base model" not in message  # the wrong cause is not blamed
    assert [p.name for p in out.iterdir()] == ["previous.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["merged"]
    # The suggested tolerance works.
    suggested = float(message.split("export.logit_tolerance_bfloat16 to ")[1].split()[0])
    assert suggested >= error.measured
    merge_and_verify(
        base,
        adapter,
        out,
        dtype="bfloat16",
        tolerances={**tight, "bfloat16": suggested},
        verify_prompts=PROMPTS,
    )


@pytest.mark.parametrize(
    ("dtype", "float32_measured", "first", "absent"),
    [
        ("bfloat16", 6e-7, "The cause is the bfloat16 dtype", "trained on this base model"),
        ("float16", 6e-7, "The cause is the float16 dtype", "trained on this base model"),
        ("bfloat16", 0.03, "It fails in float32 as well", "The cause is the"),
        ("float32", None, "The merge is not faithful", "dtype"),
    ],
)
def test_the_failure_message_blames_what_the_float32_measurement_points_at(
    dtype: str, float32_measured: float | None, first: str, absent: str
) -> None:
    error = MergeVerificationError(
        "in memory",
        0.0039,
        0.001,
        dtype=dtype,
        tolerance=0.001,
        logit_scale=0.6,
        float32_measured=float32_measured,
        float32_allowed=0.001 if float32_measured is not None else None,
    )
    message = str(error)
    cause = message.split("). ", 1)[1]  # after the measured difference and the setting
    assert cause.startswith(first) and absent not in cause, message
    assert f"export.logit_tolerance_{dtype}" in message
    if first.startswith("The cause is"):
        # 0.0039 on a scale below 1, doubled and rounded up to one digit.
        assert "to 0.008 or more" in message and "export in float32" in message


@pytest.mark.slow
def test_a_merge_that_fails_in_float32_too_blames_the_merge_not_the_dtype(
    base_and_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    base, adapter = base_and_adapter
    # A zero tolerance stands in for an unfaithful merge: float32 cannot meet it either.
    strict = {"float32": 0.0, "bfloat16": 1e-3, "float16": 1e-3}
    with pytest.raises(MergeVerificationError) as caught:
        merge_and_verify(
            base, adapter, tmp_path / "m", dtype="float16", tolerances=strict, verify_prompts=PROMPTS
        )
    message = str(caught.value)
    assert "fails in float32 as well" in message and "float16 rounding is not the cause" in message
    assert "trained on this base model and quantization" in message
    with pytest.raises(MergeVerificationError) as caught:
        merge_and_verify(
            base, adapter, tmp_path / "m", dtype="float32", tolerances=strict, verify_prompts=PROMPTS
        )
    assert caught.value.float32_measured is None
    assert "(in memory, float32)" in str(caught.value) and "trained on this base model" in str(caught.value)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dtype", "float8"),
        ("logit_tolerance_bfloat16", -1.0),
        ("logit_tolerance_float16", "x"),
        ("verify_prompts", 0),
    ],
)
def test_export_settings_name_the_wrong_field(field: str, value: object) -> None:
    values = {
        "dtype": "float32",
        "logit_tolerance_float32": 1e-3,
        "logit_tolerance_bfloat16": 0.06,
        "logit_tolerance_float16": 0.008,
        "verify_prompts": 2,
    }
    with pytest.raises(ValueError, match=f"export.{field}"):
        ExportSettings(**{**values, field: value})


def test_bad_inputs_are_explained(base_and_adapter: tuple[Path, Path], tmp_path: Path) -> None:
    base, adapter = base_and_adapter
    with pytest.raises(InputError, match="No prompt to verify"):
        merge_and_verify(
            base, adapter, tmp_path / "m", dtype="float32", tolerances=DEFAULTS, verify_prompts=[]
        )
    with pytest.raises(TrainingRecordError, match=TRAINING_CONFIG_FILE):
        merge_and_verify(
            base, tmp_path, tmp_path / "m", dtype="float32", tolerances=DEFAULTS, verify_prompts=PROMPTS
        )
    assert not (tmp_path / "m").exists()


def test_each_method_is_merged_copied_or_refused_by_its_record() -> None:
    """The record's method decides: mergeable ones merge, full is copied, a soft prompt is refused with
    the method named and how to serve it instead."""
    assert [export_kind(m, True) for m in ("qlora", "lora", "dora", "adalora", "ia3")] == ["merge"] * 5
    assert export_kind("full", False) == "copy"
    for method in ("prefix", "prompt", "p_tuning"):
        with pytest.raises(
            NotMergeableError, match=rf"train\.method '{method}'.*Serve it as base \+ adapter"
        ):
            export_kind(method, False)


def test_a_full_record_without_a_model_is_explained(
    base_and_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    base, _ = base_and_adapter
    trained = tmp_path / "trained"
    trained.mkdir()
    TrainingRecord(
        settings={"quantization": None, "max_seq_length": 64},
        base_model={"source": "embedded"},
        method="full",
        mergeable=False,
    ).write(trained)
    with pytest.raises(InputError, match=r"'full' but holds no config\.json"):
        merge_and_verify(
            base, trained, tmp_path / "m", dtype="float32", tolerances=DEFAULTS, verify_prompts=PROMPTS
        )
    assert not (tmp_path / "m").exists()
