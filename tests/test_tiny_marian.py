"""The embedded tiny Marian pair and translator resolution/loading, all offline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from resources.embedded.tiny_marian import (
    MARKER_FILE,
    REQUIRED_FILES,
    build_tiny_marian,
    is_complete,
)
from resources.model_source import ModelSourceError
from resources.translators import (
    Ctranslate2Translator,
    Translator,
    TranslatorUnavailableError,
    load_translator,
    resolve_translator,
)
from tests.conftest import PROJECT_ROOT

# The tokenizer warns that sacremoses (punctuation normalization) is not installed; irrelevant here.
pytestmark = pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    # Built the way the augment stage builds them: through the "embedded" translator spec.
    root = tmp_path_factory.mktemp("marian")
    forward, backward = (
        Path(resolve_translator("embedded", direction=direction, embedded_root=root, seed=0))
        for direction in (("en", "de"), ("de", "en"))
    )
    return forward, backward


@pytest.fixture(scope="module")
def forward(pair: tuple[Path, Path]) -> Translator:
    return load_translator(str(pair[0]))


def _file_bytes(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_pair_directories_are_named_by_direction(pair: tuple[Path, Path]) -> None:
    forward_dir, backward_dir = pair
    assert (forward_dir.name, backward_dir.name) == ("en-de", "de-en")
    for directory in pair:
        assert {*REQUIRED_FILES, MARKER_FILE} <= {p.name for p in directory.iterdir()}


def test_loads_through_the_auto_classes_like_an_opus_mt_checkpoint(pair: tuple[Path, Path]) -> None:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, MarianMTModel, MarianTokenizer

    tokenizer = AutoTokenizer.from_pretrained(pair[0])
    model = AutoModelForSeq2SeqLM.from_pretrained(pair[0])
    assert isinstance(tokenizer, MarianTokenizer)
    assert isinstance(model, MarianMTModel)
    assert (tokenizer.source_lang, tokenizer.target_lang) == ("en", "de")
    # opus-mt layout: </s> is 0, decoding starts from <pad>, the last id.
    assert tokenizer.eos_token_id == 0 == model.config.eos_token_id
    assert tokenizer.pad_token_id == model.config.pad_token_id == model.config.decoder_start_token_id
    assert tokenizer.pad_token_id == model.config.vocab_size - 1 == len(tokenizer) - 1


def test_tokenizer_round_trips_corpus_text(pair: tuple[Path, Path]) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(pair[0])
    text = "How do I reverse a list in Python?"
    ids = tokenizer(text)["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True, use_source_tokenizer=True) == text


def test_build_is_byte_for_byte_deterministic(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    again = build_tiny_marian(tmp_path / "en-de", src_lang="en", tgt_lang="de", seed=0)
    assert _file_bytes(again) == _file_bytes(pair[0])


def test_build_is_deterministic_across_processes(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    script = (
        "import sys; from pathlib import Path; from resources.embedded.tiny_marian import build_tiny_marian; "
        "build_tiny_marian(Path(sys.argv[1]), src_lang='en', tgt_lang='de', seed=0)"
    )
    out = tmp_path / "fresh"
    subprocess.run(
        [sys.executable, "-c", script, str(out)], cwd=PROJECT_ROOT, check=True, capture_output=True
    )
    assert _file_bytes(out) == _file_bytes(pair[0])


def test_seed_changes_the_weights(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    other = build_tiny_marian(tmp_path / "en-de", src_lang="en", tgt_lang="de", seed=1)
    assert (other / "model.safetensors").read_bytes() != (pair[0] / "model.safetensors").read_bytes()


@pytest.mark.parametrize("bad", ["", "en-us", "1en", "e n"])
def test_bad_language_code_is_rejected(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="src_lang"):
        build_tiny_marian(tmp_path / "x", src_lang=bad, tgt_lang="de", seed=0)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"src_lang": "en", "tgt_lang": "de", "seed": 0}, True),
        ({"src_lang": "en", "tgt_lang": "de", "seed": 1}, False),
        ({"src_lang": "de", "tgt_lang": "en", "seed": 0}, False),
    ],
)
def test_is_complete_checks_the_build_settings(
    pair: tuple[Path, Path], kwargs: dict[str, object], expected: bool
) -> None:
    assert is_complete(pair[0], **kwargs) is expected


def test_is_complete_is_false_when_a_file_is_missing(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    copy = Path(shutil.copytree(pair[0], tmp_path / "copy"))
    (copy / "model.safetensors").unlink()
    assert not is_complete(copy, src_lang="en", tgt_lang="de", seed=0)


def test_resolve_embedded_builds_once_then_reuses(tmp_path: Path) -> None:
    first = resolve_translator("embedded", direction=("en", "de"), embedded_root=tmp_path, seed=0)
    assert Path(first) == (tmp_path / "en-de").resolve()
    assert is_complete(Path(first), src_lang="en", tgt_lang="de", seed=0)
    stamp = (Path(first) / "model.safetensors").stat().st_mtime_ns
    again = resolve_translator("embedded", direction=("en", "de"), embedded_root=tmp_path, seed=0)
    assert again == first
    assert (Path(first) / "model.safetensors").stat().st_mtime_ns == stamp
    # No staging directories are left behind.
    assert [p.name for p in tmp_path.iterdir()] == ["en-de"]


def test_resolve_embedded_rebuilds_a_stale_or_broken_directory(tmp_path: Path) -> None:
    target = tmp_path / "en-de"
    target.mkdir()
    (target / "config.json").write_text("{}")
    resolve_translator("embedded", direction=("en", "de"), embedded_root=tmp_path, seed=3)
    assert is_complete(target, src_lang="en", tgt_lang="de", seed=3)
    resolve_translator("embedded", direction=("en", "de"), embedded_root=tmp_path, seed=4)
    assert json.loads((target / MARKER_FILE).read_text())["seed"] == 4


def test_resolve_local_directory_and_hub_id(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    kwargs = {"direction": ("en", "de"), "embedded_root": tmp_path / "unused", "seed": 0}
    assert resolve_translator(str(pair[0]), **kwargs) == str(pair[0].resolve())
    assert resolve_translator("Helsinki-NLP/opus-mt-en-de", **kwargs) == "Helsinki-NLP/opus-mt-en-de"
    assert not (tmp_path / "unused").exists()


def test_resolve_and_load_a_relative_directory_from_the_project_root(
    tmp_path: Path, pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    shutil.copytree(pair[0], root / "models" / "opus-en-de")
    monkeypatch.chdir(tmp_path)  # not the project root: relative paths must not depend on it
    kwargs = {"direction": ("en", "de"), "embedded_root": tmp_path / "unused", "seed": 0, "root": root}
    resolved = resolve_translator("models/opus-en-de", **kwargs)
    assert resolved == str((root / "models" / "opus-en-de").resolve())
    assert load_translator("models/opus-en-de", root=root).model.config.model_type == "marian"
    with pytest.raises(ModelSourceError, match=str(root / "models" / "other")):
        resolve_translator("./models/other", **kwargs)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", r"augment\.forward_model / augment\.backward_model in params\.yaml is ''"),
        ("/no/such/model/dir", "looks like a directory, but /no/such/model/dir does not exist"),
        ("./models/missing", r"'\./models/missing' .*looks like a directory"),
        ("models/translators/en-de", "relative to the project root"),
        ("not a model id", "not a hub id"),
    ],
)
def test_resolve_rejects_bad_specs(tmp_path: Path, spec: str, match: str) -> None:
    with pytest.raises(ModelSourceError, match=match):
        resolve_translator(spec, direction=("en", "de"), embedded_root=tmp_path, seed=0)


def test_resolve_names_the_setting_it_was_given(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match=r"augment\.backward_model = './gone'"):
        resolve_translator(
            "./gone", direction=("de", "en"), embedded_root=tmp_path, seed=0, setting="augment.backward_model"
        )


def test_errors_about_specs_are_oserrors_so_the_asset_reports_them() -> None:
    # assets/augment/asset.py turns OSError into a failure message instead of a traceback.
    assert issubclass(ModelSourceError, OSError) and issubclass(TranslatorUnavailableError, OSError)


def test_load_hub_id_missing_from_cache_explains_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(TranslatorUnavailableError) as info:
        load_translator("Helsinki-NLP/opus-mt-en-de", cache_dir=tmp_path / "hf-cache")
    message = str(info.value)
    assert "Helsinki-NLP/opus-mt-en-de" in message
    assert "Nothing is downloaded" in message
    assert "embedded" in message
    assert "directory" in message


def test_load_hub_id_from_the_local_cache(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    # The layout huggingface_hub uses: models--<owner>--<name>/snapshots/<revision>/ and refs/main.
    repo = tmp_path / "hf-cache" / "models--acme--opus-mt-en-de"
    revision = "0" * 40
    shutil.copytree(pair[0], repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    translator = load_translator("acme/opus-mt-en-de", cache_dir=tmp_path / "hf-cache")
    assert translator.name == "acme/opus-mt-en-de"
    assert len(translator.translate(["Hello."], max_new_tokens=4, num_beams=1, batch_size=1)) == 1


def test_load_directory_without_a_model_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(TranslatorUnavailableError, match="Could not load a translation model"):
        load_translator(str(tmp_path))


def test_translate_is_deterministic_and_keeps_order(forward: Translator) -> None:
    texts = ["What is the capital city of Canada?", "Hi", "", "Give me three ideas for a healthy breakfast."]
    options = {"max_new_tokens": 8, "num_beams": 1, "batch_size": 2}
    first = forward.translate(texts, **options)
    assert len(first) == len(texts)
    assert all(isinstance(t, str) for t in first)
    assert forward.translate(texts, **options) == first
    # Outputs follow their inputs when the input order changes.
    assert forward.translate(texts[::-1], **options) == first[::-1]
    assert forward.translate([], **options) == []


def test_translate_with_beam_search(forward: Translator) -> None:
    out = forward.translate(["Hello there."], max_new_tokens=6, num_beams=2, batch_size=4)
    assert len(out) == 1
    assert isinstance(out[0], str)


@pytest.mark.parametrize("field", ["max_new_tokens", "num_beams", "batch_size"])
def test_translate_rejects_non_positive_options(forward: Translator, field: str) -> None:
    options = {"max_new_tokens": 4, "num_beams": 1, "batch_size": 1, field: 0}
    with pytest.raises(ValueError, match=field):
        forward.translate(["Hello."], **options)


# --- identity, lazy weights, the CTranslate2 backend -------------------------------------------------


def test_identity_is_the_content_of_a_directory_wherever_it_is(
    tmp_path: Path, pair: tuple[Path, Path]
) -> None:
    copy = Path(shutil.copytree(pair[0], tmp_path / "elsewhere"))
    assert load_translator(str(copy)).identity == load_translator(str(pair[0])).identity
    assert load_translator(str(pair[0])).identity.startswith("dir:")
    assert load_translator(str(pair[1])).identity != load_translator(str(pair[0])).identity
    rebuilt = build_tiny_marian(tmp_path / "seed1", src_lang="en", tgt_lang="de", seed=1)
    assert load_translator(str(rebuilt)).identity != load_translator(str(pair[0])).identity


def test_identity_of_a_hub_model_is_its_id_and_revision(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    repo = tmp_path / "hf-cache" / "models--acme--opus-mt-en-de"
    revision = "1" * 40
    shutil.copytree(pair[0], repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    translator = load_translator("acme/opus-mt-en-de", cache_dir=tmp_path / "hf-cache")
    assert translator.identity == f"hub:acme/opus-mt-en-de@{revision}"


def test_weights_are_loaded_on_first_use(pair: tuple[Path, Path]) -> None:
    translator = load_translator(str(pair[0]))
    assert translator._model is None
    translator.translate(["Hello."], max_new_tokens=4, num_beams=1, batch_size=1)
    assert translator._model is not None


def test_a_model_that_is_no_encoder_decoder_fails_at_load(tmp_path: Path) -> None:
    from resources.embedded.tiny_lm import build_tiny_causal_lm

    build_tiny_causal_lm(tmp_path / "lm", seed=0)
    with pytest.raises(TranslatorUnavailableError, match="no encoder-decoder"):
        load_translator(str(tmp_path / "lm"), setting="augment.forward_model")


def test_unknown_backend_is_refused(pair: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError, match="backend"):
        load_translator(str(pair[0]), backend="onnx")


def test_ctranslate2_missing_says_how_to_install(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ctranslate2" else real(name, *a)
    )
    with pytest.raises(TranslatorUnavailableError, match="pip install"):
        load_translator(str(pair[0]), backend="ctranslate2", converted_root=pair[0].parent / "ct2")


def test_ctranslate2_backend_matches_transformers(
    tmp_path: Path, pair: tuple[Path, Path], forward: Translator
) -> None:
    pytest.importorskip("ctranslate2")
    fast = load_translator(str(pair[0]), backend="ctranslate2", converted_root=tmp_path / "ct2")
    assert isinstance(fast, Ctranslate2Translator)
    assert fast.identity == forward.identity
    texts = ["What is the capital city of Canada?", "Hi", "", "Give me three ideas for a healthy breakfast."]
    for options in ({"max_new_tokens": 8, "num_beams": 1}, {"max_new_tokens": 6, "num_beams": 2}):
        expected = forward.translate(texts, batch_size=2, **options)
        assert fast.translate(texts, batch_size=2, **options) == expected
    assert fast.translate([], max_new_tokens=4, num_beams=1, batch_size=1) == []
    # Converted once, on first use, then reused by every translator with the same identity.
    (converted,) = (tmp_path / "ct2").iterdir()
    stamp = (converted / "model.bin").stat().st_mtime_ns
    again = load_translator(str(pair[0]), backend="ctranslate2", converted_root=tmp_path / "ct2")
    again.translate(["Hello."], max_new_tokens=4, num_beams=1, batch_size=1)
    assert (converted / "model.bin").stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "ct2").iterdir()] == [converted.name]
