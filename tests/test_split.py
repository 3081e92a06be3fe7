"""Tests for the time-based split and the leakage check."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from assets.params import section
from assets.shared.groups import group_rows
from assets.shared.neardup import NearDuplicateSettings
from assets.split.leakage import find_leaks
from assets.split.timesplit import NEVER, SplitResult, SplitSettings, split_by_time

# The split reads clean's near-duplicate settings (one notion of a near duplicate).
NEAR_SETTINGS = {
    key: section("clean")[key] for key in ("near_dup_threshold", "minhash_permutations", "shingle_size")
}
NEAR = NearDuplicateSettings.from_params(NEAR_SETTINGS)
START = datetime(2025, 1, 1, tzinfo=UTC)
BY_FRACTION = SplitSettings(
    validation_start=None,
    test_start=None,
    validation_fraction=0.1,
    test_fraction=0.1,
    embargo_days=0,
    min_groups_per_split=1,
    max_gap_days=365,
    **NEAR_SETTINGS,
)


def day(number: int) -> datetime:
    return START + timedelta(days=number)


def make_row(row_id: str, on_day: int, **extra: Any) -> dict[str, Any]:
    row = {
        "id": row_id,
        "messages": [
            {"role": "user", "content": f"Question {row_id}?"},
            {"role": "assistant", "content": f"Answer {row_id}."},
        ],
        "created_at": day(on_day),
        "category": None,
        "lang": "en",
        "source": None,
        "augmented_from": None,
        "group_id": None,
    }
    row.update(extra)
    return row


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


def daily_rows(count: int) -> list[dict[str, Any]]:
    return [make_row(f"r{number:02d}", number) for number in range(1, count + 1)]


# ---------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"validation_fraction": 1.0}, "split.validation_fraction"),
        ({"test_fraction": -0.1}, "split.test_fraction"),
        ({"test_fraction": True}, "split.test_fraction"),
        ({"validation_fraction": 0.5, "test_fraction": 0.5}, "must be < 1"),
        ({"validation_start": "next tuesday"}, "split.validation_start"),
        ({"test_start": "2025-13-01"}, "split.test_start"),
        ({"validation_start": 20250101}, "split.validation_start"),
        ({"validation_start": "2025-03-01", "test_start": "2025-02-01"}, "validation must come before test"),
    ],
)
def test_settings_errors_name_the_setting(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(BY_FRACTION, **changes)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-03-01", datetime(2025, 3, 1, tzinfo=UTC)),
        ("2025-03-01T12:00:00Z", datetime(2025, 3, 1, 12, tzinfo=UTC)),
        ("2025-03-01T14:00:00+02:00", datetime(2025, 3, 1, 12, tzinfo=UTC)),
        (date(2025, 3, 1), datetime(2025, 3, 1, tzinfo=UTC)),
    ],
)
def test_cutoffs_parse_to_utc(value: str | date, expected: datetime) -> None:
    settings = dataclasses.replace(BY_FRACTION, validation_start=value)
    assert settings.validation_cutoff == expected


# ---------------------------------------------------------------------------------------------- split


def assert_time_ordered(result: SplitResult) -> None:
    """Every train row is older than validation_start; no group is in two splits."""
    assert all(row["created_at"] < result.validation_start for row in result.train)
    assert find_leaks(result.train, result.validation, result.test, NEAR) == []


def test_split_by_fraction() -> None:
    result = split_by_time(daily_rows(20), BY_FRACTION)
    assert ids(result.train) == [f"r{number:02d}" for number in range(1, 17)]
    assert ids(result.validation) == ["r17", "r18"]
    assert ids(result.test) == ["r19", "r20"]
    assert (result.validation_start, result.test_start) == (day(17), day(19))
    assert result.dropped_augmented == 0
    assert_time_ordered(result)


def test_small_nonzero_fractions_still_get_a_group() -> None:
    result = split_by_time(daily_rows(3), BY_FRACTION)
    assert (ids(result.train), ids(result.validation), ids(result.test)) == (["r01"], ["r02"], ["r03"])


def test_zero_fractions_leave_splits_empty() -> None:
    settings = dataclasses.replace(BY_FRACTION, validation_fraction=0.0, test_fraction=0.0)
    result = split_by_time(daily_rows(5), settings)
    assert len(result.train) == 5 and result.validation == [] and result.test == []
    assert result.test_start == NEVER


def test_split_by_date_puts_boundary_rows_in_the_later_split() -> None:
    settings = dataclasses.replace(
        BY_FRACTION, validation_start=day(5).isoformat(), test_start=day(8).isoformat()
    )
    result = split_by_time(daily_rows(10), settings)
    assert ids(result.train) == ["r01", "r02", "r03", "r04"]
    assert ids(result.validation) == ["r05", "r06", "r07"]
    assert ids(result.test) == ["r08", "r09", "r10"]
    assert_time_ordered(result)


def test_explicit_test_start_with_validation_fraction() -> None:
    settings = dataclasses.replace(BY_FRACTION, test_start=day(9).isoformat(), validation_fraction=0.2)
    result = split_by_time(daily_rows(10), settings)
    assert ids(result.test) == ["r09", "r10"]
    assert ids(result.validation) == ["r07", "r08"]


def test_explicit_validation_start_after_fraction_test_cutoff_is_an_error() -> None:
    settings = dataclasses.replace(BY_FRACTION, validation_start=day(10).isoformat(), test_fraction=0.5)
    with pytest.raises(ValueError, match=r"split\.validation_start"):
        split_by_time(daily_rows(10), settings)


def test_groups_never_straddle_and_take_their_latest_time() -> None:
    rows = daily_rows(10)
    rows[0]["group_id"] = "thread"  # day 1 ...
    rows[9]["group_id"] = "thread"  # ... and day 10: the whole thread is test
    result = split_by_time(rows, BY_FRACTION)
    assert ids(result.test) == ["r01", "r10"]
    assert "r01" not in ids(result.train)
    splits_of_thread = {
        name
        for name, rows_in in (
            ("train", result.train),
            ("validation", result.validation),
            ("test", result.test),
        )
        for row in rows_in
        if row["group_id"] == "thread"
    }
    assert splits_of_thread == {"test"}


def test_equal_group_times_stay_in_the_same_split() -> None:
    rows = [*daily_rows(8), make_row("tie", 8)]
    result = split_by_time(rows, BY_FRACTION)
    assert ids(result.test) == ["r08", "tie"]


def test_augmented_rows_only_in_train() -> None:
    rows = daily_rows(10)
    rows += [
        make_row("r01-aug", 1, augmented_from="r01"),
        make_row("r10-aug1", 10, augmented_from="r10"),
        make_row("r10-aug2", 10, augmented_from="r10"),
    ]
    result = split_by_time(rows, BY_FRACTION)
    assert "r01-aug" in ids(result.train)
    assert ids(result.test) == ["r10"]
    assert result.dropped_augmented == 2
    assert_time_ordered(result)


def test_group_rows_links_group_ids_and_augmentations() -> None:
    rows = [
        make_row("a", 1),
        make_row("b", 2, group_id="g"),
        make_row("a-aug", 1, augmented_from="a"),
        make_row("c", 3, group_id="g"),
        make_row("d", 4),
    ]
    assert group_rows(rows) == [0, 1, 0, 1, 4]


def test_order_is_created_at_then_id() -> None:
    rows = [make_row("b", 1), make_row("a", 1), make_row("c", 0), *daily_rows(10)[2:]]
    result = split_by_time(rows, BY_FRACTION)
    assert ids(result.train)[:3] == ["c", "a", "b"]
    assert split_by_time(list(reversed(rows)), BY_FRACTION) == result


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "no rows"),
        ([make_row("only", 1)], "train would be empty"),
        ([make_row("x", 1, created_at=None)], "row 'x' has no created_at"),
    ],
)
def test_split_errors(rows: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_by_time(rows, BY_FRACTION)


# ---------------------------------------------------------------------------------------------- leakage


def clean_split() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    return [make_row("t1", 1), make_row("t2", 2)], [make_row("v1", 3)], [make_row("s1", 4)]


def test_no_leaks_in_a_clean_split() -> None:
    assert find_leaks(*clean_split(), NEAR) == []


def test_old_row_in_a_new_group_is_not_a_leak() -> None:
    train, validation, test = clean_split()
    validation.append(make_row("v0", 0, group_id="thread"))
    validation.append(make_row("v2", 3, group_id="thread"))
    assert find_leaks(train, validation, test, NEAR) == []


def _leak(kind: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    train, validation, test = clean_split()
    if kind == "id":
        test.append(make_row("t1", 5))
    elif kind == "group_id":
        train[0]["group_id"] = "g"
        test.append(make_row("s2", 5, group_id="g"))
    elif kind == "text":
        copy = make_row("s2", 5)
        copy["messages"] = [dict(message) for message in train[0]["messages"]]
        copy["messages"][0]["content"] = copy["messages"][0]["content"].upper()
        test.append(copy)
    elif kind == "time":
        validation.append(make_row("v-old", 1))
    elif kind == "test-before-validation":
        test.append(make_row("s-old", 3))
    elif kind == "augmented":
        test.append(make_row("s1-aug", 4, augmented_from="s1"))
    return train, validation, test


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("id", "id 't1' is in both train"),
        ("group_id", "group_id 'g' is in both train (row 't1') and test (row 's2')"),
        ("text", "the same conversation text is in both train (row 't1') and test (row 's2')"),
        ("time", "validation row 'v-old'"),
        ("test-before-validation", "test row 's-old'"),
        ("augmented", "augmented row 's1-aug' (from 's1') is in test"),
    ],
)
def test_each_kind_of_leak_is_found(kind: str, expected: str) -> None:
    problems = find_leaks(*_leak(kind), NEAR)
    assert any(expected in problem for problem in problems), problems


def test_split_output_has_no_leaks() -> None:
    rows = daily_rows(30)
    for index in range(0, 30, 7):
        rows[index]["group_id"] = f"g{index % 3}"
    # Paraphrases inherit their source's created_at, as the augment stage does.
    rows += [
        make_row(f"{row['id']}-aug", 0, augmented_from=row["id"], created_at=row["created_at"])
        for row in rows[::4]
    ]
    result = split_by_time(rows, BY_FRACTION)
    assert find_leaks(result.train, result.validation, result.test, NEAR) == []
    assert result.validation and result.test
