"""PII redaction of a normalized row: every text ingest writes, before it is written. Framework-free.

The texts are every string column of the row (``id``, ``category``, ``source``, ``group_id``, ``tools``,
the original ``raw`` text, the ``error`` detail, which may quote the row, ...) and a turn's ``content``
and ``tool_calls`` (a top-level ``system`` is the first turn by now). Placeholders hold no quote or
backslash, so JSON text stays valid JSON.

An id (``id``, ``group_id``, ``augmented_from``) ties rows together downstream, so it must stay unique
and stable: one holding PII becomes its redacted text plus ``~`` and the first 12 hex digits of the
SHA-256 of the original id (``qbad4@gmail.com`` → ``<EMAIL>~1f0c...``). Distinct ids stay distinct, the
same id always maps to the same value, and ids without PII are unchanged. The hash is unkeyed: whoever
already holds a candidate address can confirm it against the hash, but the address cannot be read back.
Duplicate ids are resolved on the original ids, before redaction.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from assets.shared.pii import redact

ID_COLUMNS = ("id", "group_id", "augmented_from")
TURN_TEXT_KEYS = ("content", "tool_calls")
# hex digits of the SHA-256 kept after a redacted id: 48 bits, no collision in any realistic dataset
ID_HASH_DIGITS = 12


def redact_row(row: dict[str, Any], types: tuple[str, ...]) -> tuple[dict[str, Any], Counter[str]]:
    """A copy of ``row`` with PII of ``types`` replaced by placeholders (:func:`assets.shared.pii.redact`)
    in every string column and turn text (an id also gets a hash of its original, see the module
    docstring), and the spans replaced, by type."""
    counts: Counter[str] = Counter()
    new = dict(row)
    for column, value in row.items():
        if not isinstance(value, str):
            continue
        new[column], found = redact(value, types)
        counts.update(found)
        if found and column in ID_COLUMNS:
            digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:ID_HASH_DIGITS]
            new[column] = f"{new[column]}~{digest}"
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
