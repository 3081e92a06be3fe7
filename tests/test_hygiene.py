"""Text hygiene in the clean stage: invisible and control characters, NFC, whitespace, and text identity
that ignores invisible characters (case 07: copies that differ by a zero-width character)."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from assets.clean.asset import hygiene_table, reason_examples
from assets.clean.hygiene import clean_text, has_garbage, hygiene_rewrite, invisible_only_turns
from assets.clean.pipeline import CleanSettings, clean_rows, default_steps
from assets.params import section, settings_from
from assets.shared.text import normalize_text
from tests.conftest import make_row

# params.yaml's settings with cleanlab and this steps off; each test turns on what it tests.
SETTINGS = dataclasses.replace(
    settings_from(CleanSettings, section("clean")),
    cleanlab_enabled=False,
    text_hygiene=False,
    max_future_skew_hours=None,
)
HYGIENE = dataclasses.replace(SETTINGS, text_hygiene=True)
START = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected", "counts"),
    [
        ("Mer\u200bcury", "Mercury", {"zero_width_space": 1}),
        ("dis\u00adsolved", "dissolved", {"soft_hyphen": 1}),
        ("twenty\u2060-four.\ufeff", "twenty-four.", {"word_joiner": 1, "byte_order_mark": 1}),
        ("\ufeffHello", "Hello", {"byte_order_mark": 1}),
        ("a\u200cb and c\u200dd", "ab and cd", {"zero_width_non_joiner": 1, "zero_width_joiner": 1}),
        ("\u202eright", "right", {"bidi_control": 1}),
        ("\u2066isolated\u2069 \u202aembedded\u202c", "isolated embedded", {"bidi_control": 4}),
        ("hi\U000e0068\U000e0069 there", "hi there", {"tag_character": 2}),
        ("\u200b\u200b\u200b", "", {"zero_width_space": 3}),
        # where the joiners shape visible text they stay: Persian spelling, emoji sequences, tag flags
        (
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
            {},
        ),
        ("\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f468\u200d\U0001f469\u200d\U0001f467", {}),
        ("\U0001f3f3\ufe0f\u200d\U0001f308", "\U0001f3f3\ufe0f\u200d\U0001f308", {}),
        (
            "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
            "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
            {},
        ),
        # a run of non-joiners is a typo: one stays between Persian letters
        ("\u06cc\u200c\u200c\u200c\u062e", "\u06cc\u200c\u062e", {"zero_width_non_joiner": 2}),
        # lone controls are removed; NUL, U+FFFD or two controls in a row are left for validation
        ("Hel\x7flo", "Hello", {"control_character": 1}),
        ("page\x0cbreak and \x1b[1mbold", "pagebreak and [1mbold", {"control_character": 2}),
        ("Hi\x00there", "Hi\x00there", {}),
        ("caf\ufffd", "caf\ufffd", {}),
        ("a\x01\x02b", "a\x01\x02b", {}),
        # NFC for stored text; NFKC-only differences (no-break space, full width) are kept as written
        ("cafe\u0301", "caf\u00e9", {"nfc": 1}),
        ("caf\u00e9\u00a0\uff2aane", "caf\u00e9\u00a0\uff2aane", {}),
        # whitespace: line endings, trailing spaces, blank-line runs, the ends; indentation stays
        (
            "def f():  \r\n    return 1\t\n\n\n\nprint(f())",
            "def f():\n    return 1\n\nprint(f())",
            {"line_endings": 1, "trailing_whitespace": 2, "blank_lines": 1},
        ),
        ("one\u2028two", "one\ntwo", {"line_endings": 1}),
        ("text \u200b", "text", {"zero_width_space": 1, "trailing_whitespace": 1}),
        ("Plain ASCII text.", "Plain ASCII text.", {}),
    ],
)
def test_clean_text(text: str, expected: str, counts: dict[str, int]) -> None:
    cleaned, changes = clean_text(text)
    assert cleaned == expected
    assert dict(changes) == counts


@pytest.mark.parametrize(
    ("text", "garbage"),
    [("ok\ttab\r\nline", False), ("a\x7fb", False), ("\x00", True), ("\ufffd", True), ("\x07\x07", True)],
)
def test_garbage_is_nul_replacement_or_a_run_of_controls(text: str, garbage: bool) -> None:
    assert has_garbage(text) is garbage


@pytest.mark.parametrize(
    "copy",
    [
        "Mer\u200bcury is liquid.",
        "Mer\u00adcury is liquid.",
        "Mer\u2060cury is liquid.\ufeff",
        "\u202aMercury is liquid.\u202c",
        "Mer\u200c\u200dcury is liquid.",
        "MERCURY  is liquid.",
        "Mercury\u00a0is liquid.",
    ],
)
def test_identity_ignores_invisible_characters(copy: str) -> None:
    assert normalize_text(copy) == normalize_text("Mercury is liquid.") == "mercury is liquid."


def test_identity_of_text_without_visible_characters_is_empty() -> None:
    assert normalize_text("\u200b\u200b\u200b") == ""


def _row(row_id: str, line: int, messages: Any) -> dict[str, Any]:
    return {"id": row_id, "messages": messages, "source_line": line, "source_file": "raw.jsonl"}


def test_invisible_only_turn_is_rejected_with_what_it_held() -> None:
    turns = [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "\u200b\u200b\u200b"}]
    rejection = invisible_only_turns(_row("inv", 1, turns))
    assert rejection is not None and rejection.reason == "empty_content"
    assert rejection.detail == (
        "turn 2 (assistant) has no visible character: it holds only 3 × U+200B ZERO WIDTH SPACE"
    )
    # a blank turn is validation's to reject; malformed rows are validation's too
    blank = [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "  "}]
    assert invisible_only_turns(_row("blank", 2, blank)) is None
    assert invisible_only_turns(_row("none", 3, None)) is None
    assert invisible_only_turns(_row("bad", 4, [{"role": "user", "content": 3}])) is None
    # an assistant turn that calls tools may be empty: the call is its content
    call = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "\u200b", "tool_calls": '[{"type": "function"}]'},
    ]
    assert invisible_only_turns(_row("call", 5, call)) is None


def test_rewrite_skips_malformed_rows_and_sums_counts() -> None:
    rows = [
        _row("a", 1, [{"role": "user", "content": "Q\u200b?"}, {"role": "assistant", "content": "A\u00ad."}]),
        _row("b", 2, None),
        _row("c", 3, [{"role": "user", "content": "fine"}, {"role": "assistant", "content": "fine"}]),
        _row("d", 4, [{"role": "user", "content": "x\u200by"}, {"role": "assistant", "content": "ok"}]),
    ]
    outcome = hygiene_rewrite(rows)
    assert dict(outcome.contents) == {0: ["Q?", "A."], 3: ["xy", "ok"]}
    assert outcome.counts == {"soft_hyphen": 1, "zero_width_space": 2}


# Case 07 rebuilt: copies of an answer that differ by a no-break space or a full-width letter (which NFKC
# already covered), by a zero-width space, a soft hyphen, a word joiner plus a trailing BOM; an answer of
# three zero-width spaces; an answer behind a right-to-left override; unrelated rows.
CASE_07 = [
    ("nb-1", "What is the largest planet?", "Jupiter is the largest planet in our solar system."),
    ("nb-2", "What is the largest planet?", "Jupiter is the largest\u00a0planet in our solar system."),
    ("fw-1", "Who wrote Pride and Prejudice?", "Jane Austen wrote Pride and Prejudice."),
    ("fw-2", "Who wrote Pride and Prejudice?", "\uff2aane Austen wrote Pride and Prejudice."),
    ("zw-1", "Which metal is liquid at room temperature?", "Mercury is the metal that is liquid."),
    ("zw-2", "Which metal is liquid at room temperature?", "Mer\u200bcury is the metal that is liquid."),
    ("sh-1", "Why is the sea salty?", "Rivers carry dissolved minerals into the sea."),
    ("sh-2", "Why is the sea salty?", "Rivers carry dis\u00adsolved minerals into the sea."),
    ("wj-1", "How many hours are in a day?", "There are twenty-four hours in a day."),
    ("wj-2", "How many hours are in a day?", "There are twenty\u2060-four hours in a day.\ufeff"),
    ("inv-1", "Say something kind to a friend.", "\u200b\u200b\u200b"),
    ("rtl-1", "What is the opposite of left?", "\u202eright"),
    ("f0", "Name the capital of Canada.", "Ottawa is the capital of Canada."),
    ("f1", "How many sides does a hexagon have?", "A hexagon has six sides."),
    ("f2", "What gas do plants take in?", "They take in carbon dioxide."),
    ("f3", "Who painted the Mona Lisa?", "Leonardo da Vinci painted it."),
]
CASE_07_DUPLICATES = {"nb-2": "nb-1", "fw-2": "fw-1", "zw-2": "zw-1", "sh-2": "sh-1", "wj-2": "wj-1"}


def case_07_rows() -> list[dict[str, Any]]:
    return [
        make_row(row_id, question, answer, line=line, source_file="data/case/input.jsonl")
        for line, (row_id, question, answer) in enumerate(CASE_07, start=1)
    ]


@pytest.mark.parametrize("cleanlab", [False, True], ids=["cleanlab-off", "cleanlab-on"])
def test_case_07_invisible_copies_are_exact_duplicates_and_invisible_answers_rejected(cleanlab: bool) -> None:
    rows = case_07_rows()
    result = clean_rows(rows, dataclasses.replace(HYGIENE, cleanlab_enabled=cleanlab))
    rejected = {row["id"]: row for row in result.rejected}
    duplicates = {i: r["duplicate_of"] for i, r in rejected.items() if r["reason"] == "duplicate_exact"}
    assert duplicates == CASE_07_DUPLICATES
    assert (rejected["inv-1"]["stage"], rejected["inv-1"]["reason"]) == ("hygiene", "empty_content")
    assert "3 × U+200B ZERO WIDTH SPACE" in rejected["inv-1"]["detail"]
    assert set(rejected) == {*CASE_07_DUPLICATES, "inv-1"}
    kept = {row["id"]: row["messages"][-1]["content"] for row in result.kept}
    assert list(kept) == ["nb-1", "fw-1", "zw-1", "sh-1", "wj-1", "rtl-1", "f0", "f1", "f2", "f3"]
    assert kept["rtl-1"] == "right"
    by_step = {step["step"]: step for step in result.step_counts}
    assert (by_step["visible_text"]["rows_in"], by_step["visible_text"]["rejected"]) == (16, 1)
    assert by_step["text_hygiene"]["rewritten"] == 4  # zw-2, sh-2, wj-2, rtl-1
    assert by_step["text_hygiene"]["changes"] == {
        "changed_rows": 4,
        "bidi_control": 1,
        "byte_order_mark": 1,
        "soft_hyphen": 1,
        "word_joiner": 1,
        "zero_width_space": 1,
    }
    # rejected copies keep their text as the steps left it; raw keeps the input
    assert rejected["zw-2"]["messages"][-1]["content"] == "Mercury is the metal that is liquid."


def test_case_07_duplicates_do_not_depend_on_the_hygiene_step() -> None:
    # identity alone (normalize_text) makes the copies exact duplicates, whatever the order of steps
    result = clean_rows(case_07_rows(), SETTINGS)
    duplicates = {r["id"]: r["duplicate_of"] for r in result.rejected if r["reason"] == "duplicate_exact"}
    assert duplicates == CASE_07_DUPLICATES


@pytest.mark.parametrize(
    ("answer", "kept_as", "reason"),
    [
        ("Hel\x7flo there, friend.", "Hello there, friend.", None),
        ("Line one   \n\n\n\nLine two", "Line one\n\nLine two", None),
        ("Hi\x00there, friend.", None, "control_characters"),
        ("Bytes \x01\x02\x03 here.", None, "control_characters"),
        ("Mis-decoded caf\ufffd.", None, "replacement_character"),
        ("\u200d\u2060\ufeff", None, "empty_content"),
    ],
)
def test_clean_rows_repairs_lone_controls_and_rejects_garbage(
    answer: str, kept_as: str | None, reason: str | None
) -> None:
    rows = case_07_rows()[12:13]
    rows[0]["messages"][-1]["content"] = answer
    result = clean_rows(rows, HYGIENE)
    if reason is None:
        assert [row["messages"][-1]["content"] for row in result.kept] == [kept_as]
    else:
        assert [row["reason"] for row in result.rejected] == [reason]


def test_hygiene_steps_come_before_validation_and_only_when_on() -> None:
    assert "text_hygiene" not in [step.name for step in default_steps(SETTINGS)]
    names = [step.name for step in default_steps(HYGIENE)]
    assert names[:4] == ["ingest", "visible_text", "text_hygiene", "validate"]


def test_params_yaml_turns_the_new_steps_on() -> None:
    settings = settings_from(CleanSettings, section("clean"))
    assert settings.text_hygiene
    assert settings.max_future_skew_hours == 24 and settings.reference_time is None
    names = [step.name for step in default_steps(settings)]
    assert names.index("text_hygiene") < names.index("validate") < names.index("future_timestamp")
    assert names.index("future_timestamp") < names.index("dedup_exact")
    # PII is redacted at ingest, before raw_examples is written (tests/test_pii.py)
    assert not any("pii" in name for name in names)


def test_metadata_tables() -> None:
    result = clean_rows(case_07_rows(), HYGIENE)
    table = hygiene_table(result.step_counts)
    assert "| zero_width_space | 1 |" in table and "changed_rows" not in table
    assert hygiene_table([]) == "none"
    examples = reason_examples(result.rejected, per_reason=2)
    lines = examples.splitlines()
    assert lines[0] == "| reason | rows | id | detail |"
    assert sum(line.startswith("| duplicate_exact | 5 |") for line in lines) == 2  # two of five shown
    assert any(re.match(r"\| empty_content \| 1 \| inv-1 \| row 'inv-1'", line) for line in lines)
    assert reason_examples([]) == "none"
