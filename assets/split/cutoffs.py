"""Where the cutoffs fall, and which split (or embargo gap) a group time lands in.

Cutoffs come from dates when set, otherwise from quantiles of the group times: test starts at the newest
``test_fraction`` of the groups, validation at the next newest ``validation_fraction`` of those that are
old enough to be validation (older than the test cutoff minus the embargo). Groups at a cutoff go to the
later split, so equal times stay together. Framework-free.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from assets.shared.errors import InputError
from assets.split.settings import SplitSettings

# Used as a cutoff when a split is turned off: no group is this new.
NEVER = datetime.max.replace(tzinfo=UTC)
SPLITS = ("train", "validation", "test")
# Where a group in an embargo gap lands: dropped, counted against the split the gap comes before.
GAP_BEFORE = {"validation": "embargo before validation", "test": "embargo before test"}


@dataclass(frozen=True)
class Cutoffs:
    """Validation and test start (NEVER when off; validation starts at test when it is off) and the gap."""

    validation_start: datetime
    test_start: datetime
    embargo: timedelta

    def place(self, time: datetime) -> str:
        """``train``, ``validation``, ``test``, or one of :data:`GAP_BEFORE` for a group in a gap."""
        if time >= self.test_start:
            return "test"
        if time >= before(self.test_start, self.embargo):
            return GAP_BEFORE["test"]
        if time >= self.validation_start:
            return "validation"
        if time >= before(self.validation_start, self.embargo):
            return GAP_BEFORE["validation"]
        return "train"

    def count(self, times: Iterable[datetime]) -> Counter[str]:
        """How many of these group times land in each split and gap."""
        return Counter(self.place(time) for time in times)


def before(cutoff: datetime, embargo: timedelta) -> datetime:
    """The start of the embargo gap before a cutoff (none before a split that is off)."""
    if cutoff == NEVER or not embargo:
        return cutoff
    try:
        return cutoff - embargo
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def group_count(fraction: float, total: int) -> int:
    """Groups for a fraction: rounded half up, and at least one whenever the fraction is not zero."""
    return 0 if fraction == 0 else max(1, int(fraction * total + 0.5))


def fraction_for(groups: int, total: int) -> float:
    """The shortest decimal fraction that :func:`group_count` turns into exactly ``groups`` of ``total``."""
    for digits in range(2, 12):
        fraction = round(groups / total, digits)
        if 0 < fraction < 1 and group_count(fraction, total) == groups:
            return fraction
    return groups / total


def cutoffs_for(times: Sequence[datetime], settings: SplitSettings) -> Cutoffs:
    """The cutoffs for sorted group ``times``: explicit dates win, a null date takes its quantile."""
    embargo = timedelta(days=settings.embargo_days)
    test_start = settings.test_cutoff
    if test_start is None:
        wanted = group_count(settings.test_fraction, len(times))
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
        eligible = bisect_left(times, before(test_start, embargo))
        wanted = group_count(settings.validation_fraction, len(times))
        validation_start = times[max(0, eligible - wanted)] if wanted and eligible else test_start
    return Cutoffs(validation_start=validation_start, test_start=test_start, embargo=embargo)
