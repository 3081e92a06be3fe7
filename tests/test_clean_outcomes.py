"""Tests for what a cleaning run ends in: every row rejected fails the stage (keeping the last good pair
and writing the rejections aside), most rows rejected warns, rows with nothing to train are rejected,
implausible epoch timestamps are refused and a bad clean.reference_time says what the setting means."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from assets.clean.filters import row_filters, validate_row
from assets.clean.outcome import (
    AllRowsRejectedError,
    rejected_share_warning,
    rejection_summary,
    require_kept,
)
from assets.clean.pipeline import clean_rows
from assets.shared.errors import InputError
from assets.shared.timestamps import SPLIT_CUTOFF_NULL, TimestampError, parse_cutoff, parse_timestamp
from tests.conftest import make_row
from tests.test_clean import SETTINGS
from tests.test_failures import (
    assert_says,
    example_rows,
    failure_description,
    materialize,
    store_at,
    write_base,
    write_examples,
)
from tests.test_failures import tiny_base as tiny_base  # a fixture


def weightless(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with every assistant turn at weight 0."""
    messages = [{**m, "weight": 0} if m["role"] == "assistant" else m for m in row["messages"]]
    return {**row, "messages": messages}


def rejection(reason: str, row_id: str, detail: str) -> dict[str, Any]:
    """A rejected row's columns the summary reads; the pipeline prefixes details with where the row is."""
    return {"id": row_id, "reason": reason, "detail": f"row {row_id!r} (raw.jsonl line 1): {detail}"}


# ---- no_trained_turn ------------------------------------------------------------------------------------
def test_a_row_whose_only_answer_has_weight_zero_is_rejected() -> None:
    row = weightless(make_row("s8", "All weights zero?", "Nothing trains on this."))
    verdict = validate_row(row, row_filters(min_response_chars=1))
    assert verdict is not None and verdict.reason == "no_trained_turn"
    assert "1 assistant turns have weight 0" in verdict.detail


@pytest.mark.parametrize(("weights", "kept"), [((0, 1), True), ((0, None), True), ((0, 0), False)])
def test_one_trained_answer_is_enough(weights: tuple, kept: bool) -> None:
    row = make_row("m", "First question here?", "First answer here.")
    row["messages"] += [
        {"role": "user", "content": "Second question here?"},
        {"role": "assistant", "content": "Second answer here."},
    ]
    answers = [m for m in row["messages"] if m["role"] == "assistant"]
    for message, weight in zip(answers, weights, strict=True):
        message["weight"] = weight
    verdict = validate_row(row, row_filters(min_response_chars=1))
    assert (verdict is None) is kept
    if not kept:
        assert verdict.reason == "no_trained_turn" and "all 2 assistant turns" in verdict.detail


def test_clean_rows_rejects_a_weightless_row_in_the_validate_stage() -> None:
    rows = [
        make_row("a", "What is two plus two?", "Two plus two is four.", line=1),
        weightless(make_row("b", "What is three plus three?", "Three plus three is six.", line=2)),
    ]
    result = clean_rows(rows, SETTINGS)
    assert [row["id"] for row in result.kept] == ["a"]
    [rejected] = result.rejected
    assert (rejected["id"], rejected["stage"], rejected["reason"]) == ("b", "validate", "no_trained_turn")


# ---- outcome: all rejected, most rejected ----------------------------------------------------------------
def test_all_rows_rejected_is_an_input_error_with_counts_and_advice() -> None:
    rejected = [
        rejection("template_drops_tool_call", f"s{i}", "use a base whose template supports tools")
        for i in range(20)
    ]
    rejected.append(rejection("short_response", "x", "raise it"))
    with pytest.raises(AllRowsRejectedError) as info:
        require_kept(0, rejected)
    message = str(info.value)
    assert isinstance(info.value, InputError)
    assert "all 21 rows were rejected" in message
    assert "template_drops_tool_call 20, short_response 1" in message
    assert (
        "template_drops_tool_call, e.g. row 's0' (raw.jsonl line 1): use a base whose template supports tools"
        in message
    )
    assert "short_response, e.g. row 'x' (raw.jsonl line 1): raise it" in message


def test_some_rows_kept_or_no_rows_at_all_is_not_an_error() -> None:
    require_kept(1, [rejection("too_long", "a", "shorten it")])
    require_kept(0, [])


def test_the_summary_explains_the_three_commonest_reasons_only() -> None:
    rejected = [
        rejection(reason, f"{reason}{i}", f"fix {reason}")
        for reason, n in zip("abcd", (4, 3, 2, 1), strict=True)
        for i in range(n)
    ]
    summary = rejection_summary(rejected)
    assert summary.startswith("a 4, b 3, c 2, d 1 — ")
    assert "c, e.g. row 'c0' (raw.jsonl line 1): fix c" in summary and "fix d" not in summary


def test_more_than_half_rejected_warns() -> None:
    assert rejected_share_warning(2, [rejection("too_long", "a", "x")] * 2) is None  # exactly half
    warning = rejected_share_warning(1, [rejection("too_long", "a", "shorten it")] * 2)
    assert warning is not None and warning.startswith("2 of 3 rows (67%) were rejected, more than 50%")
    assert "too_long 2" in warning
    assert rejected_share_warning(0, []) is None


# ---- the asset -------------------------------------------------------------------------------------------
def test_clean_fails_when_every_row_is_rejected_and_keeps_the_last_good_pair(
    tmp_path: Path, tiny_base: Path
) -> None:
    write_base(tmp_path, tiny_base)
    write_examples(tmp_path, "raw_examples", example_rows(6))
    assert materialize(tmp_path, ["clean_examples", "rejected_examples"]).success
    store = store_at(tmp_path)
    before = {key: store.md5(key) for key in ("clean_examples", "rejected_examples")}

    write_examples(tmp_path, "raw_examples", [weightless(row) for row in example_rows(5)])
    result = materialize(tmp_path, ["clean_examples", "rejected_examples"])
    description = failure_description(result, "clean")
    aside = store.path("rejected_examples").with_suffix(".failed.jsonl")
    assert_says(description, "all 5 rows were rejected", "no_trained_turn 5", "weight", str(aside))
    assert {key: store.md5(key) for key in before} == before
    rows = [json.loads(line) for line in aside.read_text(encoding="utf-8").splitlines()]
    assert [(row["id"], row["reason"]) for row in rows] == [(f"r{i}", "no_trained_turn") for i in range(5)]
    assert rows[0]["created_at"].startswith("2025-01-01T00:00:00")
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    metadata = failure.event_specific_data.user_failure_data.metadata
    assert "| no_trained_turn | 5 |" in metadata["drops_by_reason"].value

    # A later good run replaces the pair and removes the stale rejections of the failed one.
    rows = example_rows(6)
    rows[:4] = [weightless(row) for row in rows[:4]]
    write_examples(tmp_path, "raw_examples", rows)
    result = materialize(tmp_path, ["clean_examples", "rejected_examples"])
    assert result.success and not aside.exists()
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["clean_examples"]]
    metadata = event.materialization.metadata
    assert metadata["rejected_share"].value == pytest.approx(4 / 6)
    assert metadata["rejection_warning"].value.startswith("4 of 6 rows (67%) were rejected")


# ---- timestamps --------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, -100, "0", 1.5, 631151999, 631151999000])
def test_epoch_numbers_before_1990_are_implausible(value: object) -> None:
    with pytest.raises(TimestampError) as info:
        parse_timestamp(value)
    assert info.value.reason == "implausible_timestamp"
    assert "'created_at'" in str(info.value) and "before 1990-01-01" in str(info.value)


def test_1990_onwards_and_old_iso_text_are_accepted() -> None:
    assert parse_timestamp(631152000) == datetime(1990, 1, 1, tzinfo=UTC)
    assert parse_timestamp(631152000000) == datetime(1990, 1, 1, tzinfo=UTC)
    assert parse_timestamp("1970-01-01T00:00:00Z") == datetime(1970, 1, 1, tzinfo=UTC)


def test_ingest_rejects_an_epoch_zero_row() -> None:
    from tests.test_ingest import ALPACA, normalize

    row = normalize({**ALPACA, "created_at": 0})
    assert row["error"].startswith("implausible_timestamp: 'created_at' value 0")


# ---- clean.reference_time --------------------------------------------------------------------------------
def test_a_bad_reference_time_says_what_clean_reference_time_means() -> None:
    with pytest.raises(InputError) as info:
        dataclasses.replace(SETTINGS, reference_time="yesterday")
    message = str(info.value)
    assert message.startswith("clean.reference_time is 'yesterday', which is not an ISO-8601 date or time")
    assert "null to check created_at against the end of the current UTC day" in message
    assert "cut by fraction" not in message


def test_split_cutoffs_keep_their_hint() -> None:
    with pytest.raises(InputError, match="or null to cut by fraction"):
        parse_cutoff("yesterday", "split.validation_start", null_means=SPLIT_CUTOFF_NULL)
