"""PII redaction of a normalized row: every text ingest writes, before it is written. Framework-free.

The texts are a turn's ``content`` and ``tool_calls`` (a top-level ``system`` is the first turn by now),
the row's ``tools``, the original ``raw`` text and the ``error`` detail, which may quote the row. Ids are
left alone: they tie each raw row to its one output downstream (a derived id is a hash of the original
text, which reveals nothing). Placeholders hold no quote or backslash, so JSON text stays valid JSON.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from assets.shared.pii import redact

ROW_TEXT_COLUMNS = ("tools", "raw", "error")
TURN_TEXT_KEYS = ("content", "tool_calls")


def redact_row(row: dict[str, Any], types: tuple[str, ...]) -> tuple[dict[str, Any], Counter[str]]:
    """A copy of ``row`` with PII of ``types`` replaced by placeholders (:func:`assets.shared.pii.redact`)
    in its text columns, and the spans replaced, by type."""
    counts: Counter[str] = Counter()
    new = dict(row)
    for column in ROW_TEXT_COLUMNS:
        if isinstance(row.get(column), str):
            new[column], found = redact(row[column], types)
            counts.update(found)
    if row.get("messages") is not None:
        turns = []
        for turn in row["messages"]:
            turn = dict(turn)
            for key in TURN_TEXT_KEYS:
                if isinstance(turn.get(key), str):
                    turn[key], found = redact(turn[key], types)
                    counts.update(found)
            turns.append(turn)
        new["messages"] = turns
    return new, counts
