"""The split's policies: embargo, minimum groups (and the setting the failure offers), near duplicates
across splits, where timestamps came from, degenerate splits (case 12), and what the metadata says."""

from __future__ import annotations

import ast
import dataclasses
import itertools
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from assets.params import section
from assets.shared.errors import InputError
from assets.shared.neardup import NearDuplicateSettings, near_duplicate_pairs
from assets.split.leakage import find_leaks
from assets.split.neardup import link_groups
from assets.split.timesplit import SplitResult, SplitSettings, split_by_time

# The split reads clean's near-duplicate settings (one notion of a near duplicate).
NEAR_SETTINGS = {
    key: section("clean")[key] for key in ("near_dup_threshold", "minhash_permutations", "shingle_size")
}
NEAR = NearDuplicateSettings.from_params(NEAR_SETTINGS)
START = datetime(2025, 1, 1, tzinfo=UTC)
SETTINGS = SplitSettings(
    validation_start=None,
    test_start=None,
    validation_fraction=0.1,
    test_fraction=0.1,
    embargo_days=0,
    min_groups_per_split=1,
    max_gap_days=365,
    **NEAR_SETTINGS,
)


def day(number: float) -> datetime:
    return START + timedelta(days=number)


def make_row(row_id: str, created_at: datetime, text: str | None = None, **extra: Any) -> dict[str, Any]:
    row = {
        "id": row_id,
        "messages": [
            {"role": "user", "content": text or f"Tell me about topic {row_id}?"},
            {"role": "assistant", "content": "Here is the answer." if text else f"All about {row_id}."},
        ],
        "created_at": created_at,
        "augmented_from": None,
        "group_id": None,
    }
    row.update(extra)
    return row


def daily_rows(count: int) -> list[dict[str, Any]]:
    """Row ``dN`` on day N, for N in 1..count; each its own group."""
    return [make_row(f"d{number}", day(number)) for number in range(1, count + 1)]


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


def days_of(rows: list[dict[str, Any]]) -> list[int]:
    return [int(row["id"][1:]) for row in rows]


def settings(**changes: Any) -> SplitSettings:
    return dataclasses.replace(SETTINGS, **changes)


# ---------------------------------------------------------------------------------------------- embargo


@pytest.mark.parametrize(
    ("changes", "train", "validation", "test", "gap_before_validation", "gap_before_test"),
    [
        ({"validation_fraction": 0.2, "test_fraction": 0.2}, 18, range(19, 25), range(25, 31), [], []),
        (
            {"validation_fraction": 0.2, "test_fraction": 0.2, "embargo_days": 2},
            14,
            range(17, 23),
            range(25, 31),
            [15, 16],
            [23, 24],
        ),
        (
            {"validation_start": day(20).isoformat(), "test_start": day(26).isoformat(), "embargo_days": 3},
            16,
            range(20, 23),
            range(26, 31),
            [17, 18, 19],
            [23, 24, 25],
        ),
        # Half a day: day 24 is 1 day before the test cutoff, outside the gap.
        ({"test_start": day(25).isoformat(), "embargo_days": 0.5}, 21, range(22, 25), range(25, 31), [], []),
        # Validation turned off: the only gap is before test.
        (
            {"validation_fraction": 0.0, "test_fraction": 0.2, "embargo_days": 2},
            22,
            [],
            range(25, 31),
            [],
            [23, 24],
        ),
    ],
    ids=["none", "by_quantile", "by_date", "fraction_of_a_day", "validation_off"],
)
def test_embargo_drops_and_counts_the_groups_in_the_gap(
    changes: dict[str, Any],
    train: int,
    validation: range | list[int],
    test: range | list[int],
    gap_before_validation: list[int],
    gap_before_test: list[int],
) -> None:
    chosen = settings(**changes)
    result = split_by_time(daily_rows(30), chosen)
    assert days_of(result.train) == list(range(1, train + 1))
    assert days_of(result.validation) == list(validation)
    assert days_of(result.test) == list(test)
    assert result.embargoed == {
        "validation": [f"d{number}" for number in gap_before_validation],
        "test": [f"d{number}" for number in gap_before_test],
    }
    assert result.summary["validation"].get("embargoed_rows", 0) == len(gap_before_validation)
    assert result.summary["test"]["embargoed_rows"] == len(gap_before_test)
    # The stated gap holds between consecutive non-empty splits.
    embargo = timedelta(days=chosen.embargo_days)
    parts = [part for part in (result.train, result.validation, result.test) if part]
    for earlier, later in itertools.pairwise(parts):
        assert min(row["created_at"] for row in later) - max(row["created_at"] for row in earlier) > embargo
    assert find_leaks(result.train, result.validation, result.test, NEAR) == []


# ---------------------------------------------------------------------------------------------- minimum


def suggested(message: str) -> dict[str, Any]:
    """The setting changes a failure message offers, parsed from its text as a user would copy them."""
    offer = message.split("A setting that works on this data: ", 1)[1].split(" (then ", 1)[0]
    return {
        key: ast.literal_eval(value) for key, value in re.findall(r"split\.(\w+): ('[^']*'|[0-9.]+)", offer)
    }


@pytest.mark.parametrize(
    ("rows", "changes", "says", "offer"),
    [
        (
            daily_rows(30),
            {"min_groups_per_split": 5},
            ["validation_split would hold only 3 groups", "test_split would hold only 3 groups"],
            {"validation_fraction": 0.17, "test_fraction": 0.17},
        ),
        (
            daily_rows(30),
            {
                "validation_start": day(25).isoformat(),
                "test_start": day(28).isoformat(),
                "min_groups_per_split": 5,
            },
            ["validation_split would hold only 3 groups", "test_split would hold only 3 groups"],
            {"validation_start": day(21).isoformat(), "test_start": day(26).isoformat()},
        ),
        (
            daily_rows(12),
            {"validation_fraction": 0.4, "test_fraction": 0.4, "min_groups_per_split": 3},
            ["train_split would hold only 2 groups"],
            {"validation_fraction": 0.25, "test_fraction": 0.25},
        ),
        (
            daily_rows(16),
            {"min_groups_per_split": 10},
            ["validation_split would hold only 2 groups", "of 16 groups"],
            {"validation_fraction": 0.31, "test_fraction": 0.31, "min_groups_per_split": 5},
        ),
        (
            daily_rows(10),
            {"validation_fraction": 0.2, "test_fraction": 0.2, "embargo_days": 5, "min_groups_per_split": 2},
            ["train would be empty", "in embargo gaps"],
            {"embargo_days": 0},
        ),
        (
            daily_rows(6),
            {"validation_start": "2000-01-01", "min_groups_per_split": 10},
            ["train would be empty", "test_split would hold only 1 group,"],
            {
                "validation_start": day(3).isoformat(),
                "test_fraction": 0.33,
                "min_groups_per_split": 2,
            },
        ),
        (
            daily_rows(10),
            {"validation_start": day(10).isoformat(), "test_fraction": 0.5},
            ["split.test_fraction 0.5 puts the test cutoff at", "before split.validation_start"],
            {"validation_start": day(9).isoformat(), "test_fraction": 0.1},
        ),
    ],
    ids=[
        "quantiles_too_small",
        "dates_too_late",
        "train_too_small",
        "minimum_too_high",
        "embargo",
        "dates",
        "test_quantile_before_validation_date",
    ],
)
def test_a_split_that_cannot_be_made_fails_with_a_setting_that_works(
    rows: list[dict[str, Any]], changes: dict[str, Any], says: list[str], offer: dict[str, Any]
) -> None:
    chosen = settings(**changes)
    with pytest.raises(InputError) as raised:
        split_by_time(rows, chosen)
    message = str(raised.value)
    for words in says:
        assert words in message, message
    assert suggested(message) == offer
    # Applied as offered, the setting works: every split holds at least the (possibly lowered) minimum.
    fixed = dataclasses.replace(chosen, **offer)
    result = split_by_time(rows, fixed)
    for name in ("train", "validation", "test"):
        assert result.groups[name] >= fixed.min_groups_per_split, (name, result.groups)


def test_too_few_groups_for_any_setting_say_so_without_an_offer() -> None:
    with pytest.raises(InputError) as raised:
        split_by_time(daily_rows(2), SETTINGS)
    message = str(raised.value)
    assert "train would be empty" in message
    assert "No setting splits 2 groups into every asked-for split" in message
    assert "works on this data" not in message


def test_a_split_turned_off_is_exempt_from_the_minimum() -> None:
    result = split_by_time(
        daily_rows(10), settings(validation_fraction=0.0, test_fraction=0.3, min_groups_per_split=3)
    )
    assert (len(result.train), len(result.validation), len(result.test)) == (7, 0, 3)
    assert result.summary["validation"]["cutoff"].startswith("off: split.validation_fraction is 0")


# ---------------------------------------------------------------------------------------- near duplicates

QUESTION = "How do I reverse a list in Python without changing the original list?"


@pytest.mark.parametrize(
    ("test_text", "leak"),
    [
        ("How do I reverse a lsit in Python without changing the original list?", "near duplicates"),
        ("how do i reverse a list in python, without changing the original list?", "near duplicates"),
        ("HOW DO I REVERSE A LIST IN PYTHON WITHOUT CHANGING THE ORIGINAL LIST?", "same conversation text"),
        ("How do I sort a dictionary by value in Python and keep the keys?", None),
    ],
    ids=["typo", "punctuation", "case_only", "different_question"],
)
def test_the_leak_check_finds_near_duplicates_across_splits_and_names_them(
    test_text: str, leak: str | None
) -> None:
    train = [make_row("t1", day(1), QUESTION), make_row("t2", day(2))]
    validation = [make_row("v1", day(3))]
    test = [make_row("s1", day(4), test_text)]
    problems = find_leaks(train, validation, test, NEAR)
    if leak is None:
        assert problems == []
    elif leak == "near duplicates":
        assert len(problems) == 1 and problems[0].startswith(
            "near duplicates: test row 's1' and train row 't1'"
        )
    else:
        assert problems == ["the same conversation text is in both train (row 't1') and test (row 's1')"]


@pytest.mark.parametrize(
    ("left", "right", "duplicate"),
    [
        ("What is 30% of 200? 30% of 200 is 60.", "What is 30% of 200? 30 % of 200 is 60.", True),
        # Templated rows that differ only in their numbers are different examples (case 10).
        ("What is 30% of 200? 30% of 200 is 60.", "What is 40% of 300? 40% of 300 is 120.", False),
        ("What is 30% of 200? 30% of 200 is 60.", "What is 30% of 200? 30% of 200 is 61.", False),
        ("hi", "hi", True),
        ("hi", "ho", False),
        (
            "日本の首都はどこですか？東京です。東京は日本で最も人口の多い都市です。",
            "日本の首都はどこですか？東京です。東京は日本で最も人口の多い都市です！",
            True,
        ),
    ],
    ids=["spacing", "numbers", "one_number", "short_copy", "short_different", "no_spaces"],
)
def test_near_duplicate_rule(left: str, right: str, duplicate: bool) -> None:
    assert bool(len(near_duplicate_pairs([left, right], NEAR, groups=["a", "b"]))) is duplicate
    # Rows with the same label (one group, one split) are never linked.
    assert len(near_duplicate_pairs([left, right], NEAR, groups=["a", "a"])) == 0


def test_near_duplicate_rows_are_one_group_and_never_straddle() -> None:
    rows = daily_rows(20)
    rows[1] = make_row("d2", day(2), QUESTION)
    rows[19] = make_row("d20", day(20), QUESTION.replace("list?", "list ?"))
    linked = link_groups(rows, NEAR)
    assert linked.joined == 1 and linked.groups[1] == linked.groups[19]
    result = split_by_time(rows, SETTINGS)
    assert ids(result.test) == ["d2", "d19", "d20"]
    assert result.near_duplicate_joins == 1
    assert find_leaks(result.train, result.validation, result.test, NEAR) == []


# ---------------------------------------------------------------------------------------------- timestamps


def synthetic(line: int) -> datetime:
    """A row-order created_at as ingest makes it: data.row_order_start plus the line number in seconds."""
    return datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=line)


@pytest.mark.parametrize(
    ("sources", "expected", "mixed"),
    [
        (["row_order"] * 20, {"train": (0, 16), "validation": (0, 2), "test": (0, 2)}, []),
        ([None] * 20, {"train": (16, 0), "validation": (2, 0), "test": (2, 0)}, []),
        (
            ["row_order"] * 10 + ["file"] * 10,
            {"train": (6, 10), "validation": (2, 0), "test": (2, 0)},
            ["train"],
        ),
        (
            ["file"] * 18 + ["row_order"] + ["file"],
            {"train": (16, 0), "validation": (2, 0), "test": (1, 1)},
            ["test"],
        ),
    ],
    ids=["all_row_order", "column_absent", "missing_in_older_rows", "mixed_in_test"],
)
def test_timestamp_sources_are_counted_per_split_and_mixing_is_a_warning(
    sources: list[str | None], expected: dict[str, tuple[int, int]], mixed: list[str]
) -> None:
    rows = []
    for line, source in enumerate(sources, start=1):
        created_at = synthetic(line) if source == "row_order" and line <= 10 else day(line)
        row = make_row(f"r{line:02d}", created_at)
        if source is not None:
            row["created_at_source"] = source
        rows.append(row)
    result = split_by_time(rows, SETTINGS)
    for name, counts in expected.items():
        summary = result.summary[name]
        assert (summary["created_at_file_rows"], summary["created_at_row_order_rows"]) == counts, name
    warned = [warning.split("_split mixes", 1)[0] for warning in result.warnings if "mixes" in warning]
    assert warned == mixed


def test_a_paraphrase_without_created_at_source_takes_its_sources() -> None:
    rows = daily_rows(20)
    for row in rows:
        row["created_at_source"] = "row_order"
    rows.append(make_row("d1#bt-de", day(1), "A paraphrase of d1.", augmented_from="d1"))
    result = split_by_time(rows, SETTINGS)
    assert result.summary["train"]["created_at_row_order_rows"] == 17
    assert result.warnings == []


# ---------------------------------------------------------------------------------------------- case 12

CASE_12_DATES = {3: datetime(2099, 6, 4, 9, tzinfo=UTC), 9: datetime(2205, 6, 10, 9, tzinfo=UTC)}


def case_12_rows() -> list[dict[str, Any]]:
    """16 rows on 2025-06-01..16, two of them with mistyped future years (case 12)."""
    return [
        make_row(f"c{number}", CASE_12_DATES.get(number, datetime(2025, 6, 1 + number, 9, tzinfo=UTC)))
        for number in range(16)
    ]


def shipped_settings() -> SplitSettings:
    values = section("split", Path(__file__).resolve().parents[1])
    return SplitSettings(**values, **NEAR_SETTINGS)


def test_case_12_fails_with_the_defaults_and_names_the_far_future_rows() -> None:
    defaults = shipped_settings()
    with pytest.raises(InputError) as raised:
        split_by_time(case_12_rows(), defaults)
    message = str(raised.value)
    assert message.startswith(
        "validation_split would hold only 2 groups, fewer than split.min_groups_per_split (10); "
        "test_split would hold only 2 groups, fewer than split.min_groups_per_split (10) "
        "(now train 12, validation 2, test 2 groups, of 16 groups). "
    )
    assert (
        "Also: test_split: 2 of its 2 groups come after 27016 days without data "
        "(from 2025-06-16T09:00:00+00:00 to 2099-06-04T09:00:00+00:00), more than split.max_gap_days (365)"
    ) in message
    assert "c3 (2099-06-04T09:00:00+00:00), c9 (2205-06-10T09:00:00+00:00)" in message
    assert suggested(message) == {
        "validation_fraction": 0.31,
        "test_fraction": 0.31,
        "min_groups_per_split": 5,
    }


def test_case_12_with_a_lower_minimum_splits_and_warns() -> None:
    result = split_by_time(case_12_rows(), dataclasses.replace(shipped_settings(), min_groups_per_split=2))
    assert ids(result.test) == ["c3", "c9"]
    assert ids(result.validation) == ["c14", "c15"]
    [warning] = result.warnings
    assert warning.startswith("test_split: 2 of its 2 groups come after 27016 days without data")
    assert "c3 (2099-06-04T09:00:00+00:00), c9 (2205-06-10T09:00:00+00:00)" in warning


def test_a_gap_inside_train_is_no_warning_and_max_gap_days_0_turns_the_check_off() -> None:
    rows = [make_row(f"old{number}", day(number - 2000)) for number in range(5)] + daily_rows(20)
    assert split_by_time(rows, SETTINGS).warnings == []
    far = [*daily_rows(20), make_row("far", day(5000))]
    assert len(split_by_time(far, SETTINGS).warnings) == 1
    assert split_by_time(far, settings(max_gap_days=0)).warnings == []


# ---------------------------------------------------------------------------------------------- metadata


def test_summary_gives_rows_groups_span_and_rule_per_split() -> None:
    rows = daily_rows(20)
    rows[0]["group_id"] = rows[1]["group_id"] = "thread"
    result: SplitResult = split_by_time(rows, settings(embargo_days=1))
    assert result.groups == {"train": 13, "validation": 2, "test": 2}
    train, validation, test = (result.summary[name] for name in ("train", "validation", "test"))
    assert train["groups"] == 13 and train["time_span_days"] == 13.0
    assert train["timestamps"] == "file (all 14 rows)"
    assert validation["days_after_previous_split"] == 2.0
    assert validation["embargoed_rows"] == 1 and validation["embargoed_row_ids"] == "d15"
    assert test["embargoed_rows"] == 1 and test["embargoed_row_ids"] == "d18"
    assert test["cutoff"] == (
        f"quantile: the newest split.test_fraction 0.1 of the groups: from {day(19).isoformat()}"
    )
    assert train["cutoff"].startswith(f"older than {day(15).isoformat()}: split.embargo_days 1")


def test_split_asset_metadata(tmp_path: Path) -> None:
    from tests.test_failures import example_rows, materialize, write_examples

    rows = example_rows(40)
    for row in rows[:20]:
        row["created_at_source"] = "row_order"
    write_examples(tmp_path, "augmented_examples", rows)
    result = materialize(
        tmp_path, ["train_split", "validation_split", "test_split"], {"min_groups_per_split": 4}
    )
    assert result.success
    metadata = {
        event.asset_key.to_user_string(): event.step_materialization_data.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    train, test = metadata["train_split"], metadata["test_split"]
    assert train["groups"].value == 32 and test["groups"].value == 4
    assert train["groups_per_split"].value == {"train": 32, "validation": 4, "test": 4}
    assert (train["created_at_file_rows"].value, train["created_at_row_order_rows"].value) == (12, 20)
    assert train["warning_count"].value == 1
    assert "train_split mixes created_at sources (12 file, 20 row_order)" in train["warnings"].value
    assert test["cutoff"].value.startswith("quantile: the newest split.test_fraction 0.1")
