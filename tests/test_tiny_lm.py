"""The tiny embedded base LM and the base-model resolving and loading code (resources/model_loading.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from resources.artifacts import atomic_directory
from resources.embedded.tiny_lm import build_tiny_causal_lm
from resources.model_loading import (
    BASE_MODEL_FILE,
    ModelSourceError,
    load_causal_lm,
    load_tokenizer,
    prepare_base_model,
    resolve_model_source,
)

MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Wie spät ist es?"},
    {"role": "assistant", "content": "Es ist acht Uhr."},
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def _file_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_same_seed_gives_identical_files_and_another_seed_other_weights(
    tiny_dir: Path, tmp_path: Path
) -> None:
    again = build_tiny_causal_lm(tmp_path / "again", seed=0)
    other = build_tiny_causal_lm(tmp_path / "other", seed=1)
    assert _file_bytes(again) == _file_bytes(tiny_dir)
    assert (other / "model.safetensors").read_bytes() != (tiny_dir / "model.safetensors").read_bytes()
    assert (other / "tokenizer.json").read_bytes() == (tiny_dir / "tokenizer.json").read_bytes()


def test_loads_like_a_hub_chat_checkpoint(tiny_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    assert isinstance(model, LlamaForCausalLM)
    assert model.config.vocab_size % 64 == 0 and model.config.vocab_size >= len(tokenizer)
    assert {tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token} == {
        "<|bos|>",
        "<|eos|>",
        "<|pad|>",
    }
    prompt = tokenizer.apply_chat_template(MESSAGES[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.startswith("<|bos|><|system|>\nAnswer briefly.") and prompt.endswith("<|assistant|>\n")
    # The generation markers let transformers (and TRL) find the assistant tokens by themselves.
    encoded = tokenizer.apply_chat_template(MESSAGES, return_assistant_tokens_mask=True, return_dict=True)
    marked = [t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(marked) == "Es ist acht Uhr.<|eos|>"


@pytest.mark.parametrize(
    "text", ["plain English.", "Grüße aus Köln", "Привет, мир", "你好，世界", "tab\tand\nnewline"]
)
def test_byte_level_tokenizer_round_trips_any_script(tiny_dir: Path, text: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_prepare_embedded_builds_the_model_and_records_it(tmp_path: Path) -> None:
    out = tmp_path / "base"
    info = prepare_base_model("embedded", out, seed=3)
    record = json.loads((out / BASE_MODEL_FILE).read_text())
    assert info == record
    assert info["kind"] == "embedded" and info["model_type"] == "llama" and info["seed"] == 3
    assert info["parameters"] > 0 and info["vocab_size"] % 64 == 0
    assert resolve_model_source(out) == str(out)
    assert (out / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name != "base"], "staging directories were left behind"


def test_prepare_local_directory_records_a_reference_without_copying(tiny_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "base"
    info = prepare_base_model(str(tiny_dir), out, seed=0)
    assert [p.name for p in out.iterdir()] == [BASE_MODEL_FILE]
    assert info["kind"] == "local" and info["path"] == str(tiny_dir.resolve())
    assert resolve_model_source(out) == str(tiny_dir.resolve())
    assert (
        info["parameters"]
        == load_causal_lm(out, quantization=None, dtype="float32", device="cpu").num_parameters()
    )


def _fake_hub_cache(cache: Path, repo_id: str, model_dir: Path) -> str:
    """A Hugging Face cache holding ``model_dir`` as the main revision of ``repo_id``."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(model_dir, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return revision


def test_prepare_hub_id_uses_the_local_cache_and_pins_the_revision(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    revision = _fake_hub_cache(cache, "acme/tiny-chat", tiny_dir)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    out = tmp_path / "base"
    info = prepare_base_model("acme/tiny-chat", out, seed=0)
    assert info["kind"] == "hub" and info["revision"] == revision
    assert resolve_model_source(out).endswith(revision)
    assert load_tokenizer(out).chat_template

    with pytest.raises(ModelSourceError, match="hf download acme/not-cached"):
        prepare_base_model("acme/not-cached", tmp_path / "other", seed=0)
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("spec", ["./no/such/dir", "/no/such/dir", "has spaces/in it"])
def test_prepare_rejects_what_is_neither_a_directory_nor_a_hub_id(tmp_path: Path, spec: str) -> None:
    with pytest.raises(ModelSourceError, match=r"train\.base_model|hf download"):
        prepare_base_model(spec, tmp_path / "base", seed=0)


def test_resolve_says_what_to_do_when_the_recorded_model_is_gone(tiny_dir: Path, tmp_path: Path) -> None:
    model_copy = shutil.copytree(tiny_dir, tmp_path / "copy")
    prepare_base_model(str(model_copy), tmp_path / "base", seed=0)
    shutil.rmtree(model_copy)
    with pytest.raises(ModelSourceError, match="no longer at"):
        resolve_model_source(tmp_path / "base")
    with pytest.raises(ModelSourceError, match="Materialize the base_model asset"):
        resolve_model_source(tmp_path / "nothing")


def test_prepare_rejects_a_directory_without_a_causal_lm(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSourceError, match=r"config\.json"):
        prepare_base_model(str(tmp_path / "empty"), tmp_path / "base", seed=0)
    assert not (tmp_path / "base").exists()


def test_load_tokenizer_requires_a_chat_template_and_falls_back_to_eos_padding(
    tiny_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    no_pad = shutil.copytree(tiny_dir, tmp_path / "no_pad")
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(no_pad)
    prepare_base_model(str(no_pad), tmp_path / "base_no_pad", seed=0)
    assert load_tokenizer(tmp_path / "base_no_pad").pad_token == "<|eos|>"

    no_template = shutil.copytree(tiny_dir, tmp_path / "no_template")
    (no_template / "chat_template.jinja").unlink()
    prepare_base_model(str(no_template), tmp_path / "base_no_template", seed=0)
    with pytest.raises(ModelSourceError, match="no chat template"):
        load_tokenizer(tmp_path / "base_no_template")


def test_load_causal_lm_nf4_computes_exactly_what_the_dequantized_weights_give(
    tiny_dir: Path, tmp_path: Path
) -> None:
    import bitsandbytes as bnb
    import torch

    prepare_base_model(str(tiny_dir), tmp_path / "base", seed=0)
    quantized = load_causal_lm(tmp_path / "base", quantization="nf4", dtype="float32", device="cpu")
    layers = [m for m in quantized.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized.is_loaded_in_4bit and len(layers) == 14
    state = layers[0].weight.quant_state
    assert state.quant_type == "nf4" and state.nested, "expected NF4 with double quantization"

    reference = load_causal_lm(
        tmp_path / "base", quantization="nf4", dtype="float32", device="cpu"
    ).dequantize()
    batch = {"input_ids": torch.tensor([[1, 40, 75, 280, 88, 79]])}
    with torch.inference_mode():
        assert torch.equal(quantized.eval()(**batch).logits, reference.eval()(**batch).logits)

    plain = load_causal_lm(tmp_path / "base", quantization=None, dtype="float32", device="cpu")
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in plain.modules())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantization": "int3", "dtype": "float32"}, "quantization must be"),
        ({"quantization": None, "dtype": "float64"}, "dtype must be one of"),
    ],
)
def test_load_causal_lm_rejects_unknown_settings(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_causal_lm(tmp_path, device="cpu", **kwargs)


def test_atomic_directory_replaces_on_success_and_keeps_the_old_one_on_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_directory(out) as staging:
        (staging / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), atomic_directory(out) as staging:
        (staging / "a.txt").write_text("half-written")
        raise RuntimeError("interrupted")
    assert (out / "a.txt").read_text() == "first"
    with atomic_directory(out) as staging:
        (staging / "b.txt").write_text("second")
    assert [p.name for p in out.iterdir()] == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
