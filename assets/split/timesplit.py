"""Time-based train / validation / test split that never lets a group straddle two splits.

A group is the connected set of rows sharing a ``group_id`` or linked by ``augmented_from`` (a source and
its paraphrases). A group's time is its latest ``created_at``: groups older than ``validation_start`` are
train, those from ``test_start`` on are test, the rest validation. So every train row is older than
every validation group and the model is always evaluated on the future. Augmented rows are training
material only; those of a group that lands in validation or test are dropped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from assets.shared.errors import InputError
from assets.shared.groups import group_rows
from assets.shared.timestamps import parse_cutoff, row_time

# Used as a cutoff when a split is empty by setting: no group is this new.
NEVER = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SplitSettings:
    """The ``split`` section of params.yaml; see the comments there."""

    validation_start: str | date | None
    test_start: str | date | None
    validation_fraction: float
    test_fraction: float

    def __post_init__(self) -> None:
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(
                    f"split.{name} must be a number in [0, 1), got {value!r}; fix it in params.yaml"
                )
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"split.validation_fraction + split.test_fraction must be < 1 so train keeps some data, got "
                f"{self.validation_fraction} + {self.test_fraction}"
            )
        validation_start = self.validation_cutoff
        test_start = self.test_cutoff
        if validation_start is not None and test_start is not None and validation_start > test_start:
            raise ValueError(
                f"split.validation_start {self.validation_start} is after split.test_start "
                f"{self.test_start}; validation must come before test"
            )

    @property
    def validation_cutoff(self) -> datetime | None:
        return parse_cutoff(self.validation_start, "split.validation_start")

    @property
    def test_cutoff(self) -> datetime | None:
        return parse_cutoff(self.test_start, "split.test_start")


@dataclass(frozen=True)
class SplitResult:
    """The three splits (sorted by created_at, then id), the cutoffs used and the augmented rows dropped."""

    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    test: list[dict[str, Any]]
    validation_start: datetime
    test_start: datetime
    dropped_augmented: int


def _count(fraction: float, total: int) -> int:
    """Groups for a fraction: rounded half up, and at least one whenever the fraction is not zero."""
    return 0 if fraction == 0 else max(1, int(fraction * total + 0.5))


def _cutoffs(group_times: list[datetime], settings: SplitSettings) -> tuple[datetime, datetime]:
    """Explicit cutoffs win; a missing one takes the newest fraction of groups (ties stay together)."""
    times = sorted(group_times)
    test_start = settings.test_cutoff
    if test_start is None:
        wanted = _count(settings.test_fraction, len(times))
        test_start = times[len(times) - wanted] if wanted else NEVER
        explicit_validation = settings.validation_cutoff
        if explicit_validation is not None and test_start < explicit_validation:
            raise InputError(
                f"split.test_fraction {settings.test_fraction} puts the test cutoff at "
                f"{test_start.isoformat()}, before split.validation_start {settings.validation_start}; "
                "set split.test_start explicitly or lower split.test_fraction"
            )
    validation_start = settings.validation_cutoff
    if validation_start is None:
        older = [time for time in times if time < test_start]
        wanted = _count(settings.validation_fraction, len(times))
        validation_start = older[max(0, len(older) - wanted)] if wanted and older else test_start
    return validation_start, test_start


def split_by_time(rows: list[dict[str, Any]], settings: SplitSettings) -> SplitResult:
    """Split rows by group time into train, validation and test; see the module docstring."""
    if not rows:
        raise InputError("there are no rows to split; the upstream dataset is empty")
    groups = group_rows(rows)
    times = [row_time(row) for row in rows]
    group_time: dict[int, datetime] = {}
    for group, time in zip(groups, times, strict=True):
        group_time[group] = max(time, group_time.get(group, time))
    validation_start, test_start = _cutoffs(list(group_time.values()), settings)

    splits: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    dropped_augmented = 0
    for index, row in enumerate(rows):
        time = group_time[groups[index]]
        name = "test" if time >= test_start else "validation" if time >= validation_start else "train"
        if name != "train" and row.get("augmented_from") is not None:
            dropped_augmented += 1
            continue
        splits[name].append(index)
    if not splits["train"]:
        raise InputError(
            f"train would be empty: all {len(group_time)} groups are at or after the validation cutoff "
            f"{validation_start.isoformat()}; move split.validation_start / split.test_start later or lower "
            "split.validation_fraction / split.test_fraction"
        )

    def ordered(indices: list[int]) -> list[dict[str, Any]]:
        return [rows[index] for index in sorted(indices, key=lambda index: (times[index], rows[index]["id"]))]

    return SplitResult(
        train=ordered(splits["train"]),
        validation=ordered(splits["validation"]),
        test=ordered(splits["test"]),
        validation_start=validation_start,
        test_start=test_start,
        dropped_augmented=dropped_augmented,
    )
