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
from resources.model_source import ModelSource, classify_model_spec, directory_fingerprint

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
    assert info["kind"] == "local" and info["source"] == str(tiny_dir) and "path" not in info
    assert info["fingerprint"] == directory_fingerprint(tiny_dir)
    assert resolve_model_source(out) == str(tiny_dir)
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
    assert info["kind"] == "hub" and info["revision"] == revision and "path" not in info
    assert str(cache) not in (out / BASE_MODEL_FILE).read_text()
    assert resolve_model_source(out) == str(cache / "models--acme--tiny-chat" / "snapshots" / revision)
    assert load_tokenizer(out).chat_template

    with pytest.raises(ModelSourceError, match="hf download acme/not-cached"):
        prepare_base_model("acme/not-cached", tmp_path / "other", seed=0)
    assert not (tmp_path / "other").exists()


def _project_with_model(root: Path, model_dir: Path) -> Path:
    """A project root holding a copy of ``model_dir`` at models/base-llm."""
    shutil.copytree(model_dir, root / "models" / "base-llm")
    return root


def test_base_model_json_is_the_same_on_every_checkout(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two checkouts in different places, run from a third working directory: a relative path is
    # relative to the project root, and the record must not depend on where either checkout lives.
    first = _project_with_model(tmp_path / "checkout-a", tiny_dir)
    second = _project_with_model(tmp_path / "elsewhere" / "checkout-b", tiny_dir)
    monkeypatch.chdir(tmp_path)
    for root in (first, second):
        prepare_base_model("models/base-llm", root / "models" / "base_model", seed=0, root=root)
    texts = [(root / "models" / "base_model" / BASE_MODEL_FILE).read_bytes() for root in (first, second)]
    assert texts[0] == texts[1]
    record = json.loads(texts[0])
    assert record["source"] == "models/base-llm" and record["kind"] == "local"
    assert str(tmp_path) not in texts[0].decode()
    assert resolve_model_source(second / "models" / "base_model", root=second) == str(
        second / "models" / "base-llm"
    )


def test_a_hub_record_is_the_same_whichever_cache_holds_the_model(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    texts = []
    for cache in (tmp_path / "hub-a", tmp_path / "deeper" / "hub-b"):
        _fake_hub_cache(cache, "acme/tiny-chat", tiny_dir)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
        out = cache.parent / "base"
        prepare_base_model("acme/tiny-chat", out, seed=0)
        texts.append((out / BASE_MODEL_FILE).read_bytes())
    assert texts[0] == texts[1]


def test_loading_a_hub_model_uses_the_recorded_revision_not_the_newest(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    revision = _fake_hub_cache(cache, "acme/tiny-chat", tiny_dir)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    prepare_base_model("acme/tiny-chat", tmp_path / "base", seed=0)
    # The cache gets a newer main revision; the recorded base stays the old one.
    repo = cache / "models--acme--tiny-chat"
    newer = "f" * 40
    shutil.copytree(repo / "snapshots" / revision, repo / "snapshots" / newer)
    (repo / "refs" / "main").write_text(newer)
    assert resolve_model_source(tmp_path / "base") == str(repo / "snapshots" / revision)
    shutil.rmtree(repo / "snapshots" / revision)
    with pytest.raises(ModelSourceError, match=f"hf download acme/tiny-chat --revision {revision}"):
        resolve_model_source(tmp_path / "base")


def test_loading_refuses_a_local_base_whose_weights_changed(tiny_dir: Path, tmp_path: Path) -> None:
    model_copy = shutil.copytree(tiny_dir, tmp_path / "copy")
    before = prepare_base_model(str(model_copy), tmp_path / "base", seed=0)
    # New weights of the same shapes: the file keeps its size and header, only values differ.
    weights = bytearray((model_copy / "model.safetensors").read_bytes())
    weights[-3] ^= 0x01
    (model_copy / "model.safetensors").write_bytes(weights)
    with pytest.raises(ModelSourceError, match=r"changed since .* Re-materialize the base_model asset"):
        load_causal_lm(tmp_path / "base", quantization=None, dtype="float32", device="cpu")
    after = prepare_base_model(str(model_copy), tmp_path / "base", seed=0)
    assert after["fingerprint"] != before["fingerprint"]
    assert resolve_model_source(tmp_path / "base") == str(model_copy)


def test_a_record_from_before_fingerprints_asks_to_rematerialize(tiny_dir: Path, tmp_path: Path) -> None:
    (tmp_path / BASE_MODEL_FILE).write_text(json.dumps({"kind": "local", "path": str(tiny_dir)}))
    with pytest.raises(ModelSourceError, match="Re-materialize the base_model asset"):
        resolve_model_source(tmp_path)


# --- the model-setting rule (resources/model_source.py) ---------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("embedded", ModelSource("embedded", "embedded")),
        ("  embedded\n", ModelSource("embedded", "embedded")),
        ("models/base-llm", "local"),
        ("./models/base-llm", "local"),
        ("models", "local"),
        ("Qwen/Qwen2.5-0.5B-Instruct", ModelSource("hub", "Qwen/Qwen2.5-0.5B-Instruct")),
        ("gpt2", ModelSource("hub", "gpt2")),
        ("models/missing", ModelSource("hub", "models/missing")),
    ],
)
def test_classify_model_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str, expected: ModelSource | str
) -> None:
    root = tmp_path / "project"
    (root / "models" / "base-llm").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # relative paths must not be looked up here
    source = classify_model_spec(spec, setting="train.base_model", root=root)
    if expected == "local":
        assert source.kind == "local" and source.spec == spec.strip()
        assert source.path == root / spec and source.path.is_dir()
    else:
        assert source == expected


def test_classify_takes_an_absolute_directory_as_it_is(tiny_dir: Path, tmp_path: Path) -> None:
    source = classify_model_spec(str(tiny_dir), setting="train.base_model", root=tmp_path)
    assert source == ModelSource("local", str(tiny_dir), tiny_dir)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", r"train\.base_model in params\.yaml is ''"),
        ("   ", r"train\.base_model in params\.yaml is '   '"),
        ("./no/such/dir", r"train\.base_model = './no/such/dir' .*looks like a directory"),
        ("/no/such/dir", r"looks like a directory, but /no/such/dir does not exist"),
        ("models/no/such", r"looks like a directory, but .*project/models/no/such does not exist"),
        ("~/no-such-model-dir", "looks like a directory"),
        ("C:\\models\\base", "looks like a directory"),
        ("has spaces/in it", r"not a hub id such as 'owner/model-name'"),
        ("-leading-dash", r"not a hub id"),
    ],
)
def test_classify_rejects_what_names_no_model_and_names_the_setting(
    tmp_path: Path, spec: str, message: str
) -> None:
    with pytest.raises(ModelSourceError, match=message):
        classify_model_spec(spec, setting="train.base_model", root=tmp_path / "project")


def test_fingerprint_ignores_location_and_hidden_files_but_not_content(
    tiny_dir: Path, tmp_path: Path
) -> None:
    reference = directory_fingerprint(tiny_dir)
    copy = shutil.copytree(tiny_dir, tmp_path / "a" / "copy")
    (copy / ".cache" / "huggingface").mkdir(parents=True)
    (copy / ".cache" / "huggingface" / "download.metadata").write_text("etag and a timestamp")
    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "x.pyc").write_bytes(b"machine-specific")
    assert directory_fingerprint(copy) == reference
    (copy / "tokenizer_config.json").write_text((copy / "tokenizer_config.json").read_text() + " ")
    assert directory_fingerprint(copy) != reference
    (copy / "tokenizer_config.json").write_text((tiny_dir / "tokenizer_config.json").read_text())
    (copy / "model.safetensors").rename(copy / "other.safetensors")
    assert directory_fingerprint(copy) != reference


def test_fingerprint_samples_a_large_weight_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import resources.model_source as model_source

    # Shrink the limits so that a 1 MiB file counts as large; 16 samples of 1 KiB cover 16 KiB of it.
    monkeypatch.setattr(model_source, "_WHOLE_FILE_LIMIT", 2**16)
    monkeypatch.setattr(model_source, "_SAMPLE_BYTES", 2**10)
    size = 2**20
    weights = bytearray(range(256)) * (size // 256)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(weights)
    reference = directory_fingerprint(tmp_path)
    sample_starts = [i * (size - 2**10) // 15 for i in range(16)]
    # Changes in a sampled block are seen (first, middle, last); one between samples is not: the proof
    # that a large weight file is sampled rather than read whole.
    for offset, seen in [
        (0, True),
        (sample_starts[7] + 5, True),
        (size - 1, True),
        (sample_starts[1] + 2**11, False),
    ]:
        changed = bytearray(weights)
        changed[offset] ^= 0xFF
        (tmp_path / "model.safetensors").write_bytes(changed)
        assert (directory_fingerprint(tmp_path) != reference) is seen, offset
    # The same change is seen in a small weight file and in a large file that holds no weights.
    for name, length in [("small.safetensors", 2**15), ("tokenizer.json", size)]:
        (tmp_path / "model.safetensors").write_bytes(weights)
        (tmp_path / name).write_bytes(weights[:length])
        before = directory_fingerprint(tmp_path)
        changed = bytearray(weights[:length])
        changed[length // 2 + 3] ^= 0xFF
        (tmp_path / name).write_bytes(changed)
        assert directory_fingerprint(tmp_path) != before, name


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
