"""Every split the settings ask for must hold at least ``split.min_groups_per_split`` groups.

When one would not, :func:`check_sizes` fails with a setting that works on this data: computed from the
group times, in the form the user chose (a date for a date cutoff, a fraction for a quantile), and checked
by placing every group with it before it is offered. The search tries, in order: growing only the short
splits to the minimum; every asked-for split at exactly the minimum; the same without the embargo; and
last the largest lower minimum that fits. Framework-free.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from assets.shared.errors import InputError
from assets.split.cutoffs import NEVER, SPLITS, before, cutoffs_for, fraction_for
from assets.split.settings import SplitSettings


def short_splits(counts: Counter[str], settings: SplitSettings) -> list[str]:
    """The asked-for splits holding fewer groups than the minimum, in split order."""
    return [
        name for name in SPLITS if settings.enabled(name) and counts[name] < settings.min_groups_per_split
    ]


def check_sizes(times: Sequence[datetime], settings: SplitSettings, notes: Sequence[str] = ()) -> None:
    """Raise :class:`InputError` when a split would be empty or below the minimum; ``notes`` (warnings
    about the data, e.g. far-future rows) are added to the message, as they often are the cause."""
    cutoffs = cutoffs_for(times, settings)
    counts = cutoffs.count(times)
    short = short_splits(counts, settings)
    if not short:
        return
    minimum = settings.min_groups_per_split
    problems = []
    for name in short:
        if name == "train" and counts[name] == 0:
            embargo = f" less split.embargo_days ({settings.embargo_days})" if settings.embargo_days else ""
            problems.append(
                f"train would be empty: all {len(times)} groups are at or after "
                f"{before(cutoffs.validation_start, cutoffs.embargo).isoformat()}, the validation cutoff"
                f"{embargo}"
            )
        else:
            held = "would be empty" if counts[name] == 0 else f"would hold only {_groups(counts[name])}"
            problems.append(f"{name}_split {held}, fewer than split.min_groups_per_split ({minimum})")
    message = "; ".join(problems) + f" (now {_describe(counts)}, of {len(times)} groups). "
    message += offer(times, settings)
    if notes:
        message += " Also: " + " ".join(notes)
    raise InputError(message)


def offer(times: Sequence[datetime], settings: SplitSettings) -> str:
    """A sentence giving a setting that works on this data, or saying that none does."""
    found = working_setting(times, settings)
    if found is None:
        return (
            f"No setting splits {len(times)} groups into every asked-for split: add data, or turn a split "
            "off (its fraction 0 and its start null)."
        )
    changes, counts = found
    return (
        "A setting that works on this data: "
        + ", ".join(f"split.{key}: {value!r}" for key, value in changes.items())
        + f" (then {_describe(counts)})."
    )


def working_setting(
    times: Sequence[datetime], settings: SplitSettings
) -> tuple[dict[str, Any], Counter[str]] | None:
    """Setting changes under which every asked-for split holds the minimum, and the group counts they
    give; None when there are too few groups for any."""
    minimum = settings.min_groups_per_split
    try:
        counts = cutoffs_for(times, settings).count(times)
    except InputError:
        counts = Counter()
    embargoes = [settings.embargo_days] + ([0] if settings.embargo_days else [])
    plans = [(minimum, max(counts["validation"], minimum), max(counts["test"], minimum), embargoes[0])]
    plans += [(minimum, minimum, minimum, embargo) for embargo in embargoes]
    for plan in plans:
        found = _try(times, settings, *plan)
        if found is not None:
            return found
    # Largest lower minimum that fits: with every split at the minimum, train shrinks as it grows.
    for embargo in embargoes:
        low, high, best = 1, minimum - 1, None
        while low <= high:
            middle = (low + high) // 2
            found = _try(times, settings, middle, middle, middle, embargo)
            if found is None:
                high = middle - 1
            else:
                best, low = found, middle + 1
        if best is not None:
            return best
    return None


def _try(
    times: Sequence[datetime],
    settings: SplitSettings,
    minimum: int,
    validation_groups: int,
    test_groups: int,
    embargo_days: float,
) -> tuple[dict[str, Any], Counter[str]] | None:
    changes = _targets(times, settings, validation_groups, test_groups, embargo_days)
    if changes is None:
        return None
    changes.update(min_groups_per_split=minimum, embargo_days=embargo_days)
    changes = {key: value for key, value in changes.items() if getattr(settings, key) != value}
    try:
        candidate = dataclasses.replace(settings, **changes)
        counts = cutoffs_for(times, candidate).count(times)
    except (ValueError, InputError):
        return None
    return None if short_splits(counts, candidate) else (changes, counts)


def _targets(
    times: Sequence[datetime],
    settings: SplitSettings,
    validation_groups: int,
    test_groups: int,
    embargo_days: float,
) -> dict[str, Any] | None:
    """Cutoff settings that put the newest ``test_groups`` groups in test and the next newest
    ``validation_groups`` in validation, each as a date or a fraction like the current setting."""
    total = len(times)
    changes: dict[str, Any] = {}
    test_start = NEVER
    if settings.enabled("test"):
        if test_groups > total:
            return None
        test_start = times[total - test_groups]
        if settings.test_start is not None:
            changes["test_start"] = test_start.isoformat()
        else:
            changes["test_fraction"] = fraction_for(test_groups, total)
    if settings.enabled("validation"):
        eligible = bisect_left(times, before(test_start, timedelta(days=embargo_days)))
        if validation_groups > eligible:
            return None
        if settings.validation_start is not None:
            changes["validation_start"] = times[eligible - validation_groups].isoformat()
        else:
            changes["validation_fraction"] = fraction_for(validation_groups, total)
    return changes


def _groups(count: int) -> str:
    return f"{count} group" if count == 1 else f"{count} groups"


def _describe(counts: Counter[str]) -> str:
    text = ", ".join(f"{name} {counts[name]}" for name in SPLITS) + " groups"
    dropped = sum(count for name, count in counts.items() if name not in SPLITS)
    return text + (f", {dropped} in embargo gaps" if dropped else "")
