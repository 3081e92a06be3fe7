"""A tiny Marian translation model with a locally trained tokenizer, built offline and deterministically.

The directory it writes has the same files as a Helsinki-NLP ``opus-mt-<src>-<tgt>`` checkpoint
(``config.json``, ``generation_config.json``, ``model.safetensors``, ``source.spm``, ``target.spm``,
``vocab.json``, ``tokenizer_config.json``), so ``AutoTokenizer`` / ``AutoModelForSeq2SeqLM.from_pretrained``
load it through the very code path a real checkpoint takes. The weights are random (fixed seed): the
translations are meaningless, which is what an offline default can honestly offer.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

# Written last by the builder; its presence with matching settings means the directory is complete.
MARKER_FILE = "tiny_marian.json"
# Bump when the layout or architecture changes, so that stale cached builds are rebuilt.
FORMAT_VERSION = 1
REQUIRED_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "source.spm",
    "target.spm",
    "vocab.json",
    "tokenizer_config.json",
)

# Codes end up in directory names such as "en-de", so a hyphen inside a code would be ambiguous.
_LANG_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

# Architecture: small enough to build and run in well under a second on a CPU.
_D_MODEL = 32
_LAYERS = 1
_HEADS = 2
_FFN_DIM = 64
_MAX_POSITIONS = 256
# Soft limit: sentencepiece stops earlier when the tiny corpus cannot fill it.
_SPM_VOCAB_SIZE = 200

# A few parallel sentences per language, enough for sentencepiece to learn pieces for common words and
# to cover each language's letters. Languages not listed here train on all of them together.
_CORPUS: dict[str, tuple[str, ...]] = {
    "en": (
        "Please summarize the following paragraph in two sentences.",
        "How do I reverse a list in Python?",
        "Write a short poem about the sea at night.",
        "What is the capital city of Canada?",
        "Explain why the sky looks blue during the day.",
        "Give me three ideas for a healthy breakfast.",
        "Translate this email into a more formal tone.",
        "Can you list the main causes of inflation?",
        "The meeting has been moved to Thursday afternoon.",
        "Our team will release the new version next week.",
        "She asked whether the train leaves before noon.",
        "Describe the difference between weather and climate.",
        "Which programming language should a beginner learn first?",
        "The report shows that sales grew by twelve percent.",
    ),
    "de": (
        "Bitte fasse den folgenden Absatz in zwei Sätzen zusammen.",
        "Wie kehre ich eine Liste in Python um?",
        "Schreibe ein kurzes Gedicht über das Meer bei Nacht.",
        "Was ist die Hauptstadt von Kanada?",
        "Erkläre, warum der Himmel tagsüber blau aussieht.",
        "Gib mir drei Ideen für ein gesundes Frühstück.",
        "Übersetze diese E-Mail in einen förmlicheren Ton.",
        "Kannst du die wichtigsten Ursachen der Inflation aufzählen?",
        "Das Treffen wurde auf Donnerstagnachmittag verschoben.",
        "Unser Team veröffentlicht die neue Version nächste Woche.",
        "Sie fragte, ob der Zug vor Mittag abfährt.",
        "Beschreibe den Unterschied zwischen Wetter und Klima.",
        "Welche Programmiersprache sollte ein Anfänger zuerst lernen?",
        "Der Bericht zeigt, dass der Umsatz um zwölf Prozent gestiegen ist.",
    ),
    "fr": (
        "Résume le paragraphe suivant en deux phrases, s'il te plaît.",
        "Comment inverser une liste en Python ?",
        "Écris un court poème sur la mer la nuit.",
        "Quelle est la capitale du Canada ?",
        "Explique pourquoi le ciel paraît bleu pendant la journée.",
        "Donne-moi trois idées pour un petit-déjeuner sain.",
        "Traduis cet e-mail sur un ton plus formel.",
        "Peux-tu énumérer les principales causes de l'inflation ?",
        "La réunion a été déplacée à jeudi après-midi.",
        "Notre équipe publiera la nouvelle version la semaine prochaine.",
        "Elle a demandé si le train part avant midi.",
        "Décris la différence entre la météo et le climat.",
        "Quel langage de programmation un débutant devrait-il apprendre d'abord ?",
        "Le rapport montre que les ventes ont augmenté de douze pour cent.",
    ),
    "es": (
        "Por favor, resume el siguiente párrafo en dos frases.",
        "¿Cómo invierto una lista en Python?",
        "Escribe un poema corto sobre el mar de noche.",
        "¿Cuál es la capital de Canadá?",
        "Explica por qué el cielo se ve azul durante el día.",
        "Dame tres ideas para un desayuno saludable.",
        "Traduce este correo a un tono más formal.",
        "¿Puedes enumerar las principales causas de la inflación?",
        "La reunión se ha trasladado al jueves por la tarde.",
        "Nuestro equipo publicará la nueva versión la próxima semana.",
        "Ella preguntó si el tren sale antes del mediodía.",
        "Describe la diferencia entre el tiempo y el clima.",
        "¿Qué lenguaje de programación debería aprender primero un principiante?",
        "El informe muestra que las ventas crecieron un doce por ciento.",
    ),
}


def corpus_for(lang: str) -> tuple[str, ...]:
    """The built-in sentences for ``lang``; every language's sentences when it has none of its own."""
    if lang in _CORPUS:
        return _CORPUS[lang]
    return tuple(sentence for sentences in _CORPUS.values() for sentence in sentences)


def _train_spm(sentences: tuple[str, ...], seed: int) -> bytes:
    """Train a unigram sentencepiece model; one thread, fixed seed and fixed order make it byte-stable."""
    import sentencepiece as spm

    spm.set_random_generator_seed(seed)
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=buffer,
        model_type="unigram",
        vocab_size=_SPM_VOCAB_SIZE,
        hard_vocab_limit=False,
        character_coverage=1.0,
        # Marian has no BOS; its </s> and <unk> ids come from vocab.json, not from the spm model.
        bos_id=-1,
        num_threads=1,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    return buffer.getvalue()


def _pieces(model_path: Path) -> list[str]:
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(model_path))
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def _shared_vocab(source_pieces: list[str], target_pieces: list[str]) -> dict[str, int]:
    """One vocabulary for both sides, laid out as opus-mt does: </s>=0, <unk>=1, ..., <pad> last."""
    vocab: dict[str, int] = {"</s>": 0, "<unk>": 1}
    for piece in [*source_pieces, *target_pieces]:
        if piece not in vocab:
            vocab[piece] = len(vocab)
    vocab["<pad>"] = len(vocab)
    return vocab


def build_tiny_marian(out_dir: Path, *, src_lang: str, tgt_lang: str, seed: int) -> Path:
    """Build a random-weight MarianMT model and its MarianTokenizer for ``src_lang`` -> ``tgt_lang``.

    Writes into ``out_dir`` (created when missing) and returns it. The same arguments give the same bytes.
    """
    import torch
    from transformers import GenerationConfig, MarianConfig, MarianMTModel, MarianTokenizer

    for field, value in (("src_lang", src_lang), ("tgt_lang", tgt_lang)):
        if not _LANG_CODE.fullmatch(value or ""):
            raise ValueError(
                f"build_tiny_marian: {field}={value!r} is not a language code; use letters, digits or '_' "
                "starting with a letter, such as 'en' or 'de'."
            )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    source_spm = out_dir / "source.spm"
    target_spm = out_dir / "target.spm"
    source_spm.write_bytes(_train_spm(corpus_for(src_lang), seed))
    target_spm.write_bytes(_train_spm(corpus_for(tgt_lang), seed))
    vocab = _shared_vocab(_pieces(source_spm), _pieces(target_spm))
    vocab_file = out_dir / "vocab.json"
    vocab_file.write_text(json.dumps(vocab, indent=2, ensure_ascii=False), encoding="utf-8")

    tokenizer = MarianTokenizer(
        source_spm=str(source_spm),
        target_spm=str(target_spm),
        vocab=str(vocab_file),
        source_lang=src_lang,
        target_lang=tgt_lang,
        model_max_length=_MAX_POSITIONS,
    )
    tokenizer.save_pretrained(out_dir)

    pad_id = vocab["<pad>"]
    eos_id = vocab["</s>"]
    config = MarianConfig(
        vocab_size=len(vocab),
        d_model=_D_MODEL,
        encoder_layers=_LAYERS,
        decoder_layers=_LAYERS,
        encoder_attention_heads=_HEADS,
        decoder_attention_heads=_HEADS,
        encoder_ffn_dim=_FFN_DIM,
        decoder_ffn_dim=_FFN_DIM,
        max_position_embeddings=_MAX_POSITIONS,
        activation_function="swish",
        scale_embedding=True,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        forced_eos_token_id=eos_id,
        decoder_start_token_id=pad_id,
    )
    torch.manual_seed(seed)
    model = MarianMTModel(config)
    # As in opus-mt checkpoints: decoding starts from <pad>, which must never be generated.
    model.generation_config = GenerationConfig(
        decoder_start_token_id=pad_id,
        eos_token_id=eos_id,
        forced_eos_token_id=eos_id,
        pad_token_id=pad_id,
        bad_words_ids=[[pad_id]],
        num_beams=1,
    )
    model.save_pretrained(out_dir)

    marker = {"src_lang": src_lang, "tgt_lang": tgt_lang, "seed": seed, "format": FORMAT_VERSION}
    (out_dir / MARKER_FILE).write_text(json.dumps(marker, sort_keys=True) + "\n", encoding="utf-8")
    return out_dir


def is_complete(model_dir: Path, *, src_lang: str, tgt_lang: str, seed: int) -> bool:
    """Whether ``model_dir`` holds a finished build made with exactly these settings."""
    model_dir = Path(model_dir)
    marker_path = model_dir / MARKER_FILE
    if not marker_path.is_file() or not all((model_dir / name).is_file() for name in REQUIRED_FILES):
        return False
    try:
        marker = json.loads(marker_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    return marker == {"src_lang": src_lang, "tgt_lang": tgt_lang, "seed": seed, "format": FORMAT_VERSION}
