"""What an ingest run saw, counted row by row as rows stream past: the metadata of ``raw_examples`` and
the whole-file verdicts (no rows, no valid row) that used to need every row in memory. Framework-free."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assets.ingest.readers import IngestError


@dataclass
class IngestSummary:
    """Counts over the rows of one file: ``rows``; ``errors`` by reason with the first row of each
    (``first_error``: reason -> (line, error)); ``created_at_sources``, with the line of the first
    ``row_order`` row; the ``oldest`` and ``newest`` ``created_at``; PII spans redacted by type
    (``pii_spans``) and the rows with at least one of a type (``pii_rows``)."""

    rows: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    first_error: dict[str, tuple[int, str]] = field(default_factory=dict)
    created_at_sources: Counter[str] = field(default_factory=Counter)
    first_row_order_line: int | None = None
    oldest: dt.datetime | None = None
    newest: dt.datetime | None = None
    pii_spans: Counter[str] = field(default_factory=Counter)
    pii_rows: Counter[str] = field(default_factory=Counter)

    def add(self, row: dict[str, Any], pii: Counter[str] | None = None) -> None:
        """Count one normalized row and the PII spans redacted in it."""
        self.rows += 1
        if row.get("error"):
            reason = row["error"].split(":", 1)[0]
            self.errors[reason] += 1
            self.first_error.setdefault(reason, (row["source_line"], row["error"]))
        source = row.get("created_at_source")
        if source:
            self.created_at_sources[source] += 1
            if source == "row_order" and self.first_row_order_line is None:
                self.first_row_order_line = row["source_line"]
        created = row.get("created_at")
        if created is not None:
            self.oldest = created if self.oldest is None else min(self.oldest, created)
            self.newest = created if self.newest is None else max(self.newest, created)
        if pii:
            self.pii_spans.update(pii)
            self.pii_rows.update(pii.keys())

    def check(self, path: Path) -> None:
        """Raise :class:`IngestError` when the file held no rows, or no row without an error."""
        if not self.rows:
            raise IngestError(
                f"data.raw_path: {path} holds no rows; point data.raw_path at a file with examples"
            )
        if sum(self.errors.values()) == self.rows:
            reason, count = self.errors.most_common(1)[0]
            line, error = self.first_error[reason]
            raise IngestError(
                f"data.raw_path: {path} has no valid row ({self.rows} read); most common error: {reason} "
                f"({count} rows), e.g. line {line}: {error}"
            )

    def mixed_created_at_warning(self) -> str | None:
        """A sentence for the person when some rows carry their own time and others got one from row
        order."""
        counts = self.created_at_sources
        if not (counts["file"] and counts["row_order"]):
            return None
        return (
            f"{counts['row_order']} rows have no created_at (the first on line {self.first_row_order_line}) "
            "and were given one from their place in the file (data.row_order_start plus the line number in "
            f"seconds), while {counts['file']} rows carry their own: the time split orders the two kinds "
            "against each other by these times. Add created_at to every row, or set "
            "data.missing_created_at: reject."
        )

    def pii_table(self, types: tuple[str, ...]) -> str:
        """A markdown table of the PII redacted, one line per type of ``types``: spans replaced by a
        placeholder and rows holding at least one."""
        lines = ["| type | spans | rows |", "|---|---|---|"]
        lines += [f"| {kind} | {self.pii_spans[kind]} | {self.pii_rows[kind]} |" for kind in types]
        return "\n".join(lines)
