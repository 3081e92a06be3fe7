"""Timestamps: every ``created_at`` and every cutoff is a timezone-aware UTC datetime.

One parser for rows (ISO-8601 text or epoch seconds/milliseconds) and one for cutoff settings (ISO-8601
only), so ingest, the split and the leakage check agree on what a time means. Naive times are UTC.
Framework-free.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import Any

from assets.shared.errors import InputError

# Epoch values at or above this are milliseconds: 1e11 s is the year 5138, 1e11 ms is March 1973.
EPOCH_MS_THRESHOLD = 1e11
# A number before this is not a real time of writing: 0, -1 and small counters are what exports put where
# a time was missing, and as 1970 they would be the oldest data and decide the time split. ISO-8601 text
# with an early date is written on purpose and stays accepted.
EARLIEST_EPOCH = datetime(1990, 1, 1, tzinfo=UTC)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class TimestampError(InputError):
    """A value that is not a time; ``reason`` is ``bad_timestamp`` or ``wrong_type``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def to_utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_timestamp(value: object, *, field: str = "created_at") -> datetime:
    """A timezone-aware UTC datetime from ISO-8601 text or epoch seconds/milliseconds (number or text).

    Naive times are taken as UTC. Raises :class:`TimestampError` (``bad_timestamp``, ``wrong_type``, and
    ``implausible_timestamp`` for an epoch number before :data:`EARLIEST_EPOCH`, 1990-01-01).
    """
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, date):
        stamp = datetime(value.year, value.month, value.day)
    elif isinstance(value, bool):
        raise TimestampError("wrong_type", f"'{field}' must be an ISO-8601 string or epoch seconds, got bool")
    elif isinstance(value, int | float):
        stamp = _from_epoch(value, field)
    elif isinstance(value, str):
        text = value.strip()
        if _NUMBER.match(text):
            stamp = _from_epoch(float(text), field)
        else:
            try:
                stamp = datetime.fromisoformat(text)
            except ValueError:
                raise TimestampError(
                    "bad_timestamp", f"'{field}' value {value!r} is not ISO-8601 or epoch seconds"
                ) from None
    else:
        raise TimestampError(
            "wrong_type", f"'{field}' must be an ISO-8601 string or epoch seconds, got {type(value).__name__}"
        )
    return to_utc(stamp)


def _from_epoch(seconds: float, field: str) -> datetime:
    if not math.isfinite(seconds):
        raise TimestampError("bad_timestamp", f"'{field}' value {seconds!r} is not a finite epoch time")
    if abs(seconds) >= EPOCH_MS_THRESHOLD:
        seconds /= 1000
    try:
        stamp = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise TimestampError(
            "bad_timestamp", f"'{field}' value {seconds!r} is out of range for a date"
        ) from None
    if stamp < EARLIEST_EPOCH:
        raise TimestampError(
            "implausible_timestamp",
            f"'{field}' value {seconds!r} is epoch time {stamp.isoformat()}, before "
            f"{EARLIEST_EPOCH.date().isoformat()}: a placeholder for a missing time, not when the row was "
            "written; give the real time (or ISO-8601 text if the date is truly that old)",
        )
    return stamp


SPLIT_CUTOFF_NULL = "to cut by fraction"


def parse_cutoff(value: str | date | None, name: str, *, null_means: str | None) -> datetime | None:
    """Parse an ISO-8601 cutoff from params.yaml (naive = UTC); ``name`` is the setting for errors and
    ``null_means`` what null does for it, for the hint (None: the setting takes no null, and the hint
    offers none).

    YAML turns an unquoted ``2025-07-01`` into a date, so dates and datetimes are accepted as well.
    Raises :class:`InputError` naming the setting.
    """
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if isinstance(value, datetime):
        return to_utc(value)
    if not isinstance(value, str):
        alternative = f" or null ({null_means})" if null_means else ""
        raise InputError(f"{name} must be an ISO-8601 string{alternative}, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"{name} is {value!r}, which is not an ISO-8601 date or time; use e.g. '2025-07-01' "
            f"or '2025-07-01T00:00:00Z'" + (f", or null {null_means}" if null_means else "")
        ) from None
    return to_utc(parsed)


def row_time(row: dict[str, Any]) -> datetime:
    """The row's ``created_at`` as an aware UTC datetime (naive values are taken as UTC)."""
    value = row.get("created_at")
    if isinstance(value, str):
        value = parse_cutoff(value, f"created_at of row {row.get('id')!r}", null_means=None)
    if not isinstance(value, datetime):
        raise InputError(
            f"row {row.get('id')!r} has no created_at timestamp (got {value!r}); the split needs one"
        )
    return to_utc(value)
