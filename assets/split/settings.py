"""The ``split`` section of params.yaml as a validated dataclass; the comments there say what each does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from assets.shared.neardup import NearDuplicateSettings
from assets.shared.timestamps import SPLIT_CUTOFF_NULL, parse_cutoff


@dataclass(frozen=True)
class SplitSettings:
    """How to cut train / validation / test. Every value is checked here, naming the setting."""

    validation_start: str | date | None
    test_start: str | date | None
    validation_fraction: float
    test_fraction: float
    embargo_days: float
    min_groups_per_split: int
    max_gap_days: float
    # What a near duplicate is: the clean stage's settings (params.yaml clean.*), given to the split by its
    # stage table, so a near-duplicate cluster and a leak are the same thing the dedup removes.
    near_dup_threshold: float
    minhash_permutations: int
    shingle_size: int

    def __post_init__(self) -> None:
        # Raises ValueError naming clean.near_dup_threshold and the like when one is out of range.
        _ = self.near_duplicates
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 <= value < 1:
                raise ValueError(
                    f"split.{name} must be a number in [0, 1), got {value!r}; fix it in params.yaml"
                )
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"split.validation_fraction + split.test_fraction must be < 1 so train keeps some data, got "
                f"{self.validation_fraction} + {self.test_fraction}"
            )
        for name in ("embargo_days", "max_gap_days"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise ValueError(f"split.{name} must be a number of days >= 0, got {value!r}")
        minimum = self.min_groups_per_split
        if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
            raise ValueError(f"split.min_groups_per_split must be a whole number >= 1, got {minimum!r}")
        validation_start = self.validation_cutoff
        test_start = self.test_cutoff
        if validation_start is not None and test_start is not None and validation_start > test_start:
            raise ValueError(
                f"split.validation_start {self.validation_start} is after split.test_start "
                f"{self.test_start}; validation must come before test"
            )

    @property
    def near_duplicates(self) -> NearDuplicateSettings:
        """The near-duplicate rule the split's groups and its leakage check use."""
        return NearDuplicateSettings(self.near_dup_threshold, self.minhash_permutations, self.shingle_size)

    @property
    def validation_cutoff(self) -> datetime | None:
        return parse_cutoff(self.validation_start, "split.validation_start", null_means=SPLIT_CUTOFF_NULL)

    @property
    def test_cutoff(self) -> datetime | None:
        return parse_cutoff(self.test_start, "split.test_start", null_means=SPLIT_CUTOFF_NULL)

    def enabled(self, name: str) -> bool:
        """Whether the settings ask for this split: train always; the others unless their fraction is 0
        and they have no date, which turns them off on purpose (they are then empty and exempt from
        split.min_groups_per_split)."""
        if name == "train":
            return True
        start, fraction = (
            (self.validation_start, self.validation_fraction)
            if name == "validation"
            else (self.test_start, self.test_fraction)
        )
        return start is not None or fraction > 0

    def rule(self, name: str) -> str:
        """The setting that places the start of a split, in words: a date or a quantile of groups."""
        start, fraction = (
            (self.validation_start, self.validation_fraction)
            if name == "validation"
            else (self.test_start, self.test_fraction)
        )
        if start is not None:
            return f"date: split.{name}_start {start}"
        if fraction == 0:
            return f"off: split.{name}_fraction is 0 and split.{name}_start null"
        newest = "the newest" if name == "test" else "the next newest (before test)"
        return f"quantile: {newest} split.{name}_fraction {fraction} of the groups"


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)
