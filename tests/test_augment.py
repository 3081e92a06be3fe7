"""Back-translation augmentation: settings, the paraphrase filter, pivots, sampling, turns and the cache."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from assets.augment import backtranslate
from assets.augment.backtranslate import (
    COUNT_KEYS,
    TranslatorPair,
    back_translate_rows,
    sampled,
)
from assets.augment.paraphrase_filter import (
    ParaphraseFilterSettings,
    chrf_similarity,
    judge_paraphrase,
)
from assets.augment.settings import AugmentSettings
from assets.augment.translation_cache import TranslationCache, text_hash, translator_key
from assets.shared.schema import example_features, to_dataset
from assets.shared.text import normalize_text

BOUNDS = ParaphraseFilterSettings(
    min_similarity=0.3, max_similarity=0.95, min_length_ratio=0.5, max_length_ratio=2.0
)
SETTINGS_FIELDS: dict[str, Any] = {
    "forward_model": "embedded",
    "backward_model": "embedded",
    "source_lang": "en",
    "pivot_langs": ["de"],
    "turns": ["user"],
    "sample_rate": 1.0,
    "backend": "transformers",
    "max_new_tokens": 16,
    "num_beams": 1,
    "batch_size": 4,
    "min_similarity": 0.3,
    "max_similarity": 0.95,
    "min_length_ratio": 0.5,
    "max_length_ratio": 2.0,
    "seed": 0,
}
SETTINGS = AugmentSettings(**SETTINGS_FIELDS)
CREATED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def settings(**override: Any) -> AugmentSettings:
    return AugmentSettings(**{**SETTINGS_FIELDS, **override})


# --- paraphrase filter -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "paraphrase", "expected"),
    [
        ("How can I reverse a list in Python?", "How do I reverse a list in Python?", None),
        ("How can I reverse a list in Python?", "", "empty"),
        ("How can I reverse a list in Python?", "   \n ", "empty"),
        ("", "anything", "empty"),
        ("How can I reverse a list?", "  how CAN i   reverse a list? ", "identical"),
        ("How can I reverse a list in Python?", "Reverse?", "length_ratio"),
        ("Hi there", "Hello there, my dear friend, how have you been?", "length_ratio"),
        ("How can I reverse a list in Python?", "Zebras quietly munch golden wheat.", "too_dissimilar"),
        (
            "Please explain how I can reverse a long list of numbers in Python.",
            "Please explain how I can reverse a long list of numbers in Python!",
            "too_similar",
        ),
    ],
)
def test_judge_paraphrase(source: str, paraphrase: str, expected: str | None) -> None:
    assert judge_paraphrase(source, paraphrase, BOUNDS) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("same text", "same text", 1.0),
        ("Same  TEXT", "same text", 1.0),
        ("abc", "xyz", 0.0),
        ("", "", 1.0),
    ],
)
def test_chrf_similarity_extremes(a: str, b: str, expected: float) -> None:
    assert chrf_similarity(a, b) == pytest.approx(expected)


def test_chrf_similarity_ranks_paraphrases_between_the_extremes() -> None:
    source = "How can I reverse a list in Python?"
    close = chrf_similarity(source, "How do I reverse a list in Python?")
    unrelated = chrf_similarity(source, "Zebras quietly munch golden wheat.")
    assert 0.0 < unrelated < 0.3 < close < 0.95


def test_chrf_band_decides_too_similar_and_too_dissimilar() -> None:
    source, paraphrase = "How can I reverse a list in Python?", "How do I reverse a list in Python?"
    score = chrf_similarity(source, paraphrase)  # about 0.81
    band = dataclasses.replace(BOUNDS, min_similarity=0.0, max_similarity=1.0)
    assert judge_paraphrase(source, paraphrase, band) is None
    assert judge_paraphrase(source, paraphrase, dataclasses.replace(band, max_similarity=score - 0.01)) == (
        "too_similar"
    )
    assert judge_paraphrase(source, paraphrase, dataclasses.replace(band, min_similarity=score + 0.01)) == (
        "too_dissimilar"
    )


def test_normalize_folds_width_case_and_spaces() -> None:
    # Full-width letters, as pasted from East Asian input methods.
    assert normalize_text("  \uff28\uff45\uff4c\uff4c\uff4f\tWORLD \n") == "hello world"


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"min_similarity": -0.1}, "min_similarity"),
        ({"max_similarity": 1.5}, "max_similarity"),
        ({"min_similarity": 0.9, "max_similarity": 0.5}, "min_similarity"),
        ({"min_length_ratio": 0.0}, "min_length_ratio"),
        ({"max_length_ratio": -1.0}, "max_length_ratio"),
        ({"min_length_ratio": 3.0, "max_length_ratio": 2.0}, "min_length_ratio"),
    ],
)
def test_filter_settings_validation_names_the_field(override: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=f"ParaphraseFilterSettings.{field}"):
        dataclasses.replace(BOUNDS, **override)


# --- settings ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"source_lang": ""}, "source_lang"),
        ({"pivot_langs": []}, "pivot_langs"),
        ({"pivot_langs": ["en"]}, "pivot_langs"),
        ({"pivot_langs": ["de", "de"]}, "pivot_langs"),
        ({"pivot_langs": "de"}, "pivot_langs"),
        ({"turns": []}, "turns"),
        ({"turns": ["user", "tool"]}, "turns"),
        ({"turns": ["user", "user"]}, "turns"),
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"sample_rate": -0.1}, "sample_rate"),
        ({"sample_rate": True}, "sample_rate"),
        ({"backend": "onnx"}, "backend"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"num_beams": 1.5}, "num_beams"),
        ({"batch_size": True}, "batch_size"),
        ({"seed": -1}, "seed"),
        ({"max_similarity": 2.0}, "max_similarity"),
        ({"min_length_ratio": 5.0}, "min_length_ratio"),
        ({"forward_model": ""}, "forward_model"),
        ({"forward_model": "Helsinki-NLP/opus-mt-{src}-{pivot}"}, "forward_model"),
        ({"backward_model": "Helsinki-NLP/opus-mt-{pivot"}, "backward_model"),
        # One hub model cannot serve two pivot languages.
        ({"pivot_langs": ["de", "fr"], "backward_model": "Helsinki-NLP/opus-mt-de-en"}, "backward_model"),
    ],
)
def test_augment_settings_validation_names_the_field(override: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"AugmentSettings.{field}"):
        settings(**override)


def test_model_specs_per_pivot() -> None:
    several = settings(
        pivot_langs=["de", "fr"],
        forward_model="Helsinki-NLP/opus-mt-{source}-{pivot}",
        backward_model="models/opus-{pivot}-{source}",
    )
    assert several.pivot_langs == ("de", "fr")
    assert several.model_spec("forward", "fr") == "Helsinki-NLP/opus-mt-en-fr"
    assert several.model_spec("backward", "de") == "models/opus-de-en"
    # "embedded" builds a pair per pivot; one pivot may name its models outright.
    assert settings(pivot_langs=["de", "fr"]).model_spec("forward", "fr") == "embedded"
    single = settings(forward_model="Helsinki-NLP/opus-mt-en-de")
    assert single.model_spec("forward", "de") == "Helsinki-NLP/opus-mt-en-de"


def test_settings_come_from_the_stage_config_with_lists() -> None:
    from assets.augment.asset import AugmentConfig
    from assets.params import section, settings_from

    config = AugmentConfig()
    values = settings_from(AugmentSettings, config.model_dump())
    assert values.pivot_langs == tuple(section("augment")["pivot_langs"])
    assert values.turns == ("user",)
    assert values.backend == "transformers"


# --- back-translation with a fake translator ---------------------------------------------------------


class WordSwapTranslator:
    """Stands in for a translation model: swaps words by a fixed table and records its calls."""

    backend = "fake"

    def __init__(self, table: dict[str, str], identity: str = "swap") -> None:
        self.table = table
        self.identity = f"{identity}:{sorted(table.items())}"
        self.calls: list[list[str]] = []

    def translate(
        self, texts: list[str], *, max_new_tokens: int, num_beams: int, batch_size: int
    ) -> list[str]:
        self.calls.append(list(texts))
        return [" ".join(self.table.get(word, word) for word in text.split(" ")) for text in texts]

    @property
    def texts(self) -> list[str]:
        return [text for call in self.calls for text in call]


# The backward direction turns "can" into "could" and "show" into "tell": a mild paraphrase.
SWAPS = {"can": "could", "show": "tell", "garbage": "xq zv wk pj"}
# Another pivot's backward model: "can" into "may", "files" into "documents".
OTHER_SWAPS = {"can": "may", "files": "documents"}


def pair(swaps: dict[str, str] = SWAPS) -> TranslatorPair:
    return TranslatorPair(forward=WordSwapTranslator({}), backward=WordSwapTranslator(swaps))


def _row(row_id: str, user: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": row_id,
        "messages": [
            {"role": "system", "content": "You are helpful and can show examples."},
            {"role": "user", "content": user},
            {"role": "assistant", "content": "Sure, here it is."},
        ],
        "created_at": CREATED,
        "category": "coding",
        "lang": "en",
        "source": "sample",
        "augmented_from": None,
        "group_id": f"g-{row_id}",
    }
    row.update(extra)
    return row


def _run(rows: list[dict[str, Any]], run_settings: AugmentSettings = SETTINGS, **kwargs: Any) -> Any:
    translators = kwargs.pop("translators", None) or {p: pair() for p in run_settings.pivot_langs}
    return back_translate_rows(rows, translators=translators, settings=run_settings, **kwargs)


def test_kept_paraphrase_has_lineage_and_verbatim_other_turns() -> None:
    source = _row("r1", "How can I show the list of files in a folder?")
    result = _run([source])
    assert result.counts["kept"] == 1
    (row,) = result.rows
    assert row["id"] == "r1#bt-de"
    assert row["augmented_from"] == "r1"
    assert row["source"] == "back_translation:en->de"
    for column in ("created_at", "category", "lang", "group_id"):
        assert row[column] == source[column]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert row["messages"][0] == source["messages"][0]
    assert row["messages"][2] == source["messages"][2]
    assert row["messages"][1]["content"] == "How could I tell the list of files in a folder?"
    # The source row is not modified.
    assert source["messages"][1]["content"] == "How can I show the list of files in a folder?"


def test_rows_outside_the_source_language_or_already_augmented_are_skipped() -> None:
    rows = [
        _row("en", "How can I show the files in this folder?"),
        _row("null-lang", "How can I show the folders on this disk?", lang=None),
        _row("de", "Wie kann ich die Dateien zeigen?", lang="de"),
        _row("aug", "How can I show the tables?", augmented_from="x"),
        {**_row("no-user", "unused"), "messages": [{"role": "assistant", "content": "Hi."}]},
    ]
    result = _run(rows)
    assert [r["augmented_from"] for r in result.rows] == ["en", "null-lang"]
    assert result.rows[1]["lang"] is None
    assert result.counts["kept"] == 2
    assert result.counts["skipped_language"] == 1
    assert result.counts["skipped_augmented"] == 1
    assert result.counts["no_selected_turn"] == 1


def test_drop_reasons_are_counted() -> None:
    rows = [
        _row("same", "Please summarize this paragraph."),  # no word in the swap table
        _row("bad", "garbage"),
        _row("ok", "Can you show me how this can work?"),
    ]
    result = _run(rows)
    assert [r["id"] for r in result.rows] == ["ok#bt-de"]
    assert result.counts["identical"] == 1
    assert result.counts["too_dissimilar"] == 1
    assert set(result.counts) == set(COUNT_KEYS)
    assert sum(result.counts.values()) == len(rows)


def test_a_row_is_kept_only_when_every_chosen_turn_passes() -> None:
    messages = [
        {"role": "user", "content": "How can I show my files in a folder?"},
        {"role": "assistant", "content": "Use ls."},
        {"role": "user", "content": "Thanks, that is all."},
    ]
    result = _run([{**_row("multi", "unused"), "messages": messages}])
    assert result.rows == []
    assert result.counts["identical"] == 1


def test_each_distinct_text_is_translated_once_per_direction() -> None:
    translators = {"de": pair()}
    rows = [
        _row("a", "How can I show it to my team?"),
        _row("b", "How can I show it to my team?"),
        _row("c", "Can you show me how it can work?"),
    ]
    result = _run(rows, translators=translators)
    assert translators["de"].forward.calls == [
        ["Can you show me how it can work?", "How can I show it to my team?"]
    ]
    assert len(translators["de"].backward.calls) == 1
    assert [r["id"] for r in result.rows] == ["a#bt-de", "b#bt-de", "c#bt-de"]
    assert result.translations.translated == 4
    assert result.translations.cache_hits == 0


def test_no_eligible_rows_calls_no_translator() -> None:
    translators = {"de": pair()}
    result = _run([_row("de", "Hallo", lang="de")], translators=translators)
    assert result.rows == []
    assert translators["de"].forward.calls == []


def test_translator_returning_the_wrong_number_of_texts_is_an_error() -> None:
    class Truncating(WordSwapTranslator):
        def translate(self, texts: list[str], **options: int) -> list[str]:
            return super().translate(texts, **options)[:-1]

    broken = TranslatorPair(forward=Truncating({}), backward=WordSwapTranslator({}))
    with pytest.raises(RuntimeError, match="one output per input"):
        _run([_row("a", "How can I show it?")], translators={"de": broken})


def test_new_rows_fit_the_example_schema() -> None:
    result = _run(
        [
            _row("r1", "How can I show the files in this folder?"),
            _row("r2", "Can you show more of the output please?", category=None),
        ]
    )
    dataset = to_dataset(result.rows, example_features())
    assert dataset.num_rows == 2
    assert dataset[0]["augmented_from"] == "r1"


# --- several pivots, sampling, turns -----------------------------------------------------------------


def test_several_pivots_give_one_paraphrase_each() -> None:
    two = settings(pivot_langs=["de", "fr"])
    translators = {"de": pair(SWAPS), "fr": pair(OTHER_SWAPS)}
    rows = [
        _row("a", "How can I show the files in this folder?"),
        _row("b", "Please summarize this paragraph."),  # unchanged by both: identical twice
        _row("x", "Wie geht das?", lang="de"),
    ]
    result = _run(rows, two, translators=translators)
    assert [r["id"] for r in result.rows] == ["a#bt-de", "a#bt-fr"]
    assert [r["source"] for r in result.rows] == ["back_translation:en->de", "back_translation:en->fr"]
    assert [r["messages"][1]["content"] for r in result.rows] == [
        "How could I tell the files in this folder?",
        "How may I show the documents in this folder?",
    ]
    assert all(r["augmented_from"] == "a" and r["created_at"] == CREATED for r in result.rows)
    assert result.kept_by_pivot == {"de": 1, "fr": 1}
    assert result.counts["kept"] == 2
    assert result.counts["identical"] == 2
    # Skips count rows; kept and drop reasons count (row, pivot) attempts.
    assert sum(result.counts.values()) == 1 + 2 * 2
    for translator_pair in translators.values():
        assert len(translator_pair.forward.calls) == 1


def test_translators_must_match_the_pivots() -> None:
    with pytest.raises(ValueError, match="pivot languages"):
        _run(
            [_row("a", "How can I show it?")], settings(pivot_langs=["de", "fr"]), translators={"de": pair()}
        )


def test_sample_rate_is_deterministic_by_row_id_and_seed() -> None:
    ids = [f"row-{i}" for i in range(2000)]
    half = {i for i in ids if sampled(i, seed=0, rate=0.5)}
    assert 900 < len(half) < 1100
    assert half == {i for i in ids if sampled(i, seed=0, rate=0.5)}
    # A smaller rate picks a subset; another seed another sample.
    assert {i for i in ids if sampled(i, seed=0, rate=0.2)} < half
    assert {i for i in ids if sampled(i, seed=1, rate=0.5)} != half
    assert all(sampled(i, seed=0, rate=1.0) for i in ids)
    assert not any(sampled(i, seed=0, rate=0.0) for i in ids)


def test_sample_rate_selects_rows_and_counts_the_rest() -> None:
    rows = [_row(f"r{i}", f"How can I show the files of project {i}?") for i in range(40)]
    result = _run(rows, settings(sample_rate=0.5))
    chosen = {r["id"] for r in rows if sampled(r["id"], seed=0, rate=0.5)}
    assert {r["augmented_from"] for r in result.rows} == chosen
    assert result.counts["not_sampled"] == 40 - len(chosen) > 0
    # A row's draw does not depend on the other rows.
    fewer = _run(rows[:10], settings(sample_rate=0.5))
    assert {r["augmented_from"] for r in fewer.rows} == chosen & {r["id"] for r in rows[:10]}
    assert _run(rows, settings(sample_rate=0.0)).counts["not_sampled"] == 40


def test_turns_choose_the_roles_to_paraphrase() -> None:
    source = _row("r1", "How can I show the list of files in a folder?")
    both = _run([source], settings(turns=["user", "system"]))
    (row,) = both.rows
    assert row["messages"][0]["content"] == "You are helpful and could tell examples."
    assert row["messages"][1]["content"] == "How could I tell the list of files in a folder?"
    assert row["messages"][2] == source["messages"][2]
    only_system = _run([source], settings(turns=["system"]))
    assert only_system.rows[0]["messages"][1] == source["messages"][1]
    no_system = {**source, "messages": source["messages"][1:]}
    assert _run([no_system], settings(turns=["system"])).counts["no_selected_turn"] == 1


# --- batching and the translation cache --------------------------------------------------------------


def _by_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: r["id"])


ROWS = [
    _row(f"r{i}", f"How can I show the {word} of project {i} in a folder?")
    for i, word in enumerate(["files", "logs", "tables", "users", "reports", "images", "notes"])
]


@pytest.mark.parametrize("batch_size", [1, 2, 5, 64])
def test_batching_and_row_order_do_not_change_outputs(batch_size: int) -> None:
    reference = _run(ROWS, settings(pivot_langs=["de", "fr"]), translators={"de": pair(), "fr": pair()})
    shuffled = ROWS[:]
    random.Random(batch_size).shuffle(shuffled)
    other = _run(
        shuffled,
        settings(pivot_langs=["de", "fr"], batch_size=batch_size),
        translators={"de": pair(), "fr": pair()},
    )
    assert _by_id(other.rows) == _by_id(reference.rows)
    assert other.counts == reference.counts


def test_cached_rerun_translates_nothing_and_gives_identical_rows(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "translations.sqlite3"
    first_pair = pair()
    with TranslationCache(path) as cache:
        first = _run(ROWS, translators={"de": first_pair}, cache=cache)
    assert first.translations.cache_hits == 0
    assert first.translations.translated == len(first_pair.forward.texts) + len(first_pair.backward.texts)
    again = pair()
    with TranslationCache(path) as cache:  # a new process would open the file the same way
        second = _run(ROWS, translators={"de": again}, cache=cache)
    assert again.forward.calls == [] and again.backward.calls == []
    assert second.rows == first.rows
    assert second.counts == first.counts
    assert second.translations.cache_hits == first.translations.translated
    assert second.translations.translated == 0


def test_rerun_with_new_rows_translates_only_new_texts(tmp_path: Path) -> None:
    path = tmp_path / "translations.sqlite3"
    new_row = _row("new", "Can you show me the logs of the new service?")
    with TranslationCache(path) as cache:
        _run(ROWS, translators={"de": pair()}, cache=cache)
        grown = pair()
        warm = _run([*ROWS, new_row], translators={"de": grown}, cache=cache)
    assert grown.forward.texts == [new_row["messages"][1]["content"]]
    assert grown.backward.texts == [new_row["messages"][1]["content"]]
    # The same rows as a cold run on the grown data: the cache never changes the output.
    with TranslationCache(tmp_path / "cold.sqlite3") as cache:
        cold = _run([*ROWS, new_row], translators={"de": pair()}, cache=cache)
    assert warm.rows == cold.rows
    assert warm.counts == cold.counts


def test_cache_is_keyed_by_translator_identity_and_decoding(tmp_path: Path) -> None:
    with TranslationCache(tmp_path / "translations.sqlite3") as cache:
        _run(ROWS, translators={"de": pair()}, cache=cache)
        other_model = TranslatorPair(
            forward=WordSwapTranslator({}, identity="other"), backward=WordSwapTranslator(SWAPS)
        )
        _run(ROWS, translators={"de": other_model}, cache=cache)
        assert len(other_model.forward.texts) == len(ROWS)
        assert other_model.backward.calls == []  # same backward model, same pivot texts
        longer = pair()
        _run(ROWS, settings(max_new_tokens=32), translators={"de": longer}, cache=cache)
        assert len(longer.forward.texts) == len(ROWS)


def test_an_interrupted_run_keeps_the_chunks_it_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backtranslate, "CHUNK_BATCHES", 1)

    class Failing(WordSwapTranslator):
        def translate(self, texts: list[str], **options: int) -> list[str]:
            if self.calls:
                raise KeyboardInterrupt
            return super().translate(texts, **options)

    one_per_batch = settings(batch_size=3)
    with TranslationCache(tmp_path / "translations.sqlite3") as cache:
        broken = TranslatorPair(forward=Failing({}), backward=WordSwapTranslator(SWAPS))
        with pytest.raises(KeyboardInterrupt):
            _run(ROWS, one_per_batch, translators={"de": broken}, cache=cache)
        resumed = pair()
        _run(ROWS, one_per_batch, translators={"de": resumed}, cache=cache)
    assert len(resumed.forward.texts) == len(ROWS) - 3


def test_translation_cache_round_trip(tmp_path: Path) -> None:
    key = translator_key("dir:abc", backend="transformers", max_new_tokens=8, num_beams=1)
    path = tmp_path / "deep" / "translations.sqlite3"
    hashes = {f"text {i}": text_hash(f"text {i}") for i in range(1200)}
    with TranslationCache(path) as cache:
        assert cache.get(key, hashes.values()) == {}
        cache.put(key, {digest: f"out {text}" for text, digest in hashes.items()})
    with TranslationCache(path) as cache:
        found = cache.get(key, [*hashes.values(), text_hash("unseen")])
        assert found == {digest: f"out {text}" for text, digest in hashes.items()}
        assert cache.get(key.replace("abc", "xyz"), hashes.values()) == {}
        assert cache.size() == 1200
    assert text_hash("a") != text_hash("A") != text_hash("a ")


# --- end to end with the embedded tiny Marian pairs --------------------------------------------------


@pytest.fixture(scope="module")
def embedded_pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TranslatorPair]:
    from resources.translators import load_translator, resolve_translator

    root = tmp_path_factory.mktemp("marian")

    def load(direction: tuple[str, str]) -> Any:
        return load_translator(
            resolve_translator("embedded", direction=direction, embedded_root=root, seed=0)
        )

    return {pivot: TranslatorPair(load(("en", pivot)), load((pivot, "en"))) for pivot in ("de", "fr")}


EMBEDDED_ROWS = [
    _row("a", "How do I reverse a list in Python?"),
    _row("b", "What is the capital city of Canada?", lang=None),
    _row("c", "Explain why the sky looks blue during the day."),
    _row("d", "Erkläre den Himmel.", lang="de"),
    _row("e", "Give me three ideas for a healthy breakfast."),
]


@pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")
def test_back_translation_through_the_embedded_marian_pairs(
    tmp_path: Path, embedded_pairs: dict[str, TranslatorPair]
) -> None:
    open_filter = settings(
        pivot_langs=["de", "fr"],
        min_similarity=0.0,
        max_similarity=1.0,
        min_length_ratio=0.01,
        max_length_ratio=100.0,
    )
    with TranslationCache(tmp_path / "translations.sqlite3") as cache:
        first = back_translate_rows(
            EMBEDDED_ROWS, translators=embedded_pairs, settings=open_filter, cache=cache
        )
        second = back_translate_rows(
            EMBEDDED_ROWS, translators=embedded_pairs, settings=open_filter, cache=cache
        )
    assert first.rows == second.rows
    assert second.translations.translated == 0
    assert second.translations.cache_hits == first.translations.translated > 0
    assert first.counts["skipped_language"] == 1
    assert first.kept_by_pivot == {"de": 4, "fr": 4}
    sources = {row["id"]: row for row in EMBEDDED_ROWS}
    for row in first.rows:
        original = sources[row["augmented_from"]]
        for before, after in zip(original["messages"], row["messages"], strict=True):
            assert isinstance(after["content"], str)
            if before["role"] != "user":
                assert after == before
    # With the default band, random translators' paraphrases are rejected and every drop has a reason.
    strict = back_translate_rows(
        EMBEDDED_ROWS, translators=embedded_pairs, settings=settings(pivot_langs=["de", "fr"])
    )
    assert sum(strict.counts.values()) == 1 + 4 * 2
    for row in strict.rows:
        assert (
            judge_paraphrase(
                sources[row["augmented_from"]]["messages"][1]["content"],
                row["messages"][1]["content"],
                SETTINGS,
            )
            is None
        )


@pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")
def test_embedded_outputs_do_not_depend_on_the_batch(embedded_pairs: dict[str, TranslatorPair]) -> None:
    texts = [m["content"] for row in EMBEDDED_ROWS for m in row["messages"]]
    forward = embedded_pairs["de"].forward
    batched = forward.translate(texts, max_new_tokens=12, num_beams=1, batch_size=8)
    single = [forward.translate([t], max_new_tokens=12, num_beams=1, batch_size=1)[0] for t in texts]
    assert batched == single


# --- the asset ---------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")
def test_asset_reruns_from_the_cache_and_writes_the_same_bytes(tmp_path: Path) -> None:
    from tests.test_failures import example_rows, materialize, store_at, write_examples

    write_examples(tmp_path, "clean_examples", example_rows(6))
    config = {"pivot_langs": ["de", "fr"], "min_similarity": 0.0, "max_similarity": 1.0}
    config |= {"min_length_ratio": 0.01, "max_length_ratio": 100.0}

    def run() -> tuple[dict[str, Any], bytes]:
        result = materialize(tmp_path, ["augmented_examples"], config)
        assert result.success
        (event,) = result.asset_materializations_for_node("augmented_examples")
        written = store_at(tmp_path).path("augmented_examples").read_bytes()
        return {key: value.value for key, value in event.metadata.items()}, written

    first, first_bytes = run()
    assert first["augmented_rows"] == 12
    assert first["translation_cache_hits"] == 0 < first["translation_cache_misses"]
    assert first["translators"] == "de: embedded / embedded, fr: embedded / embedded"
    assert (tmp_path / ".cache" / "backtranslation" / "translations.sqlite3").is_file()
    second, second_bytes = run()
    assert second["translation_cache_misses"] == 0
    assert second["translation_cache_hits"] == first["translation_cache_misses"]
    assert second_bytes == first_bytes
