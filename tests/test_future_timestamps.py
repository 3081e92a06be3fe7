"""Future timestamps (case 12): rows dated after the reference time plus a tolerance are rejected before
they can be the newest data of the time split; the reference time is deterministic."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from assets.clean.pipeline import clean_rows, default_steps, future_reference, future_timestamps
from tests.test_hygiene import SETTINGS, make_row

ON = dataclasses.replace(SETTINGS, max_future_skew_hours=24)
PINNED = dataclasses.replace(ON, reference_time="2025-07-01T00:00:00Z")


@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 3, 9, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 9, 12, 30, tzinfo=UTC),
        datetime(2026, 3, 9, 23, 59, 59, tzinfo=UTC),
        # 01:00 on the 10th in UTC+2 is still the 9th in UTC
        datetime(2026, 3, 10, 1, 0, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_default_reference_is_the_end_of_the_utc_day(now: datetime) -> None:
    # every run of one UTC day compares with the same time, so it rejects the same rows
    assert future_reference(ON, now) == datetime(2026, 3, 10, tzinfo=UTC)


def test_pinned_reference_ignores_the_clock() -> None:
    for now in (datetime(2020, 1, 1, tzinfo=UTC), datetime(2040, 1, 1, tzinfo=UTC), None):
        assert future_reference(PINNED, now) == datetime(2025, 7, 1, tzinfo=UTC)
    # a date alone, or a naive time, is UTC
    assert future_reference(dataclasses.replace(ON, reference_time="2025-07-01")) == datetime(
        2025, 7, 1, tzinfo=UTC
    )


def _dated(row_id: str, created_at: datetime) -> dict[str, Any]:
    return {"id": row_id, "created_at": created_at}


def test_limit_is_reference_plus_skew_inclusive() -> None:
    reference = datetime(2025, 7, 1, tzinfo=UTC)
    limit = reference + timedelta(hours=24)
    rows = [
        _dated("past", datetime(2025, 6, 30, tzinfo=UTC)),
        _dated("at-limit", limit),
        _dated("just-after", limit + timedelta(microseconds=1)),
        _dated("typo", datetime(2099, 6, 4, 9, tzinfo=UTC)),
    ]
    found = future_timestamps(rows, reference=reference, skew_hours=24)
    assert sorted(found.rejections) == [2, 3]
    assert {r.reason for r in found.rejections.values()} == {"future_timestamp"}
    assert found.rejections[3].detail == (
        "created_at 2099-06-04T09:00:00+00:00 is later than 2025-07-02T00:00:00+00:00 (reference time "
        "2025-07-01T00:00:00+00:00 + clean.max_future_skew_hours 24)"
    )
    assert found.notes == [
        "future timestamps: rows with created_at after 2025-07-02T00:00:00+00:00 rejected (reference time "
        "2025-07-01T00:00:00+00:00 + clean.max_future_skew_hours 24)"
    ]
    assert sorted(future_timestamps(rows, reference=reference, skew_hours=0).rejections) == [1, 2, 3]


# Case 12 rebuilt: sixteen rows on 2025-06-01..16, two of them with mistyped years.
def case_12_rows() -> list[dict[str, Any]]:
    rows = []
    for day in range(16):
        created = datetime(2025, 6, 1 + day, 9, tzinfo=UTC)
        if day == 3:
            created = created.replace(year=2099)
        if day == 9:
            created = created.replace(year=2205)
        row = make_row(f"c{day}", f"Question number {day} about topic {day}?", f"Answer {day} is here.")
        row.update(created_at=created, source_line=day + 1)
        rows.append(row)
    return rows


@pytest.mark.parametrize("settings", [ON, PINNED], ids=["reference-from-the-clock", "pinned-reference"])
def test_case_12_future_rows_are_rejected_and_never_decide_the_split(settings: Any) -> None:
    result = clean_rows(case_12_rows(), settings)
    rejected = {row["id"]: row for row in result.rejected}
    assert {i: (r["stage"], r["reason"]) for i, r in rejected.items()} == {
        "c3": ("validate", "future_timestamp"),
        "c9": ("validate", "future_timestamp"),
    }
    assert "created_at 2099-06-04T09:00:00+00:00 is later than" in rejected["c3"]["detail"]
    assert "created_at 2205-06-10T09:00:00+00:00 is later than" in rejected["c9"]["detail"]
    assert result.counts["future_timestamp"] == 2
    assert any(note.startswith("future timestamps: rows with created_at after") for note in result.notes)
    # the split sees only clean rows (and their paraphrases): its newest data, which becomes the test
    # split, is now the real newest day, not the two typos
    newest = sorted(row["created_at"] for row in result.kept)[-2:]
    assert newest == [datetime(2025, 6, 15, 9, tzinfo=UTC), datetime(2025, 6, 16, 9, tzinfo=UTC)]
    assert clean_rows(case_12_rows(), settings) == result  # deterministic


def test_a_future_row_is_never_the_kept_copy_of_a_duplicate() -> None:
    rows = case_12_rows()
    copy = dict(rows[3], id="c3-copy", created_at=datetime(2025, 6, 20, tzinfo=UTC), source_line=17)
    result = clean_rows([*rows, copy], PINNED)
    assert "c3-copy" in [row["id"] for row in result.kept]
    assert {row["id"] for row in result.rejected} == {"c3", "c9"}


def test_pinned_reference_decides_what_is_future() -> None:
    rows = case_12_rows()
    early = dataclasses.replace(ON, reference_time="2025-06-10T00:00:00Z", max_future_skew_hours=48)
    rejected = {row["id"] for row in clean_rows(rows, early).rejected}
    # rows after 2025-06-12T00:00Z: c11 .. c15, and the two typos
    assert rejected == {"c3", "c9", "c11", "c12", "c13", "c14", "c15"}


def test_filter_runs_after_validation_before_dedup_and_only_when_on() -> None:
    assert "future_timestamp" not in [step.name for step in default_steps(SETTINGS)]
    names = [step.name for step in default_steps(ON, now=datetime(2026, 1, 1, tzinfo=UTC))]
    assert names.index("unique_ids") < names.index("future_timestamp") < names.index("dedup_exact")


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_future_skew_hours", -1), ("max_future_skew_hours", True), ("reference_time", "next tuesday")],
)
def test_settings_name_the_wrong_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=re.escape(f"clean.{field}")):
        dataclasses.replace(ON, **{field: value})
