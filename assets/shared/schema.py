"""The canonical example schema shared by every dataset asset.

Framework-free: datasets and pyarrow only, imported lazily so loading the Dagster definitions stays fast.

An example is one conversation: ``messages`` is a list of :data:`MESSAGE_KEYS` with roles :data:`ROLES`,
``created_at`` a UTC timestamp. A message's ``tool_calls`` is JSON text of a list in the OpenAI shape
(``[{"type": "function", "function": {"name": ..., "arguments": {...}}}]``) on an assistant turn that calls
tools, else null; a ``tool`` turn holds what a tool returned. ``weight`` is the turn's training weight
(0.0 = not trained), or null for the usual rule (assistant turns are trained). The optional ``tools``
column is JSON text of the tool definitions the conversation may call (a list in the OpenAI shape), and
``created_at_source`` says where ``created_at`` came from: ``file`` (the row's own) or ``row_order``
(synthesized from the row's place in the file, ``data.missing_created_at``).

``raw_examples`` adds where the row came from (``source_file``, ``source_line``, the original text in
``raw``) and ``error``: why it could not be normalized, or null. ``rejected_examples`` adds the ``stage``
that rejected the row, a machine-readable ``reason``, a human ``detail`` and, for duplicates, the id of the
row that was kept (``duplicate_of``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Dataset, Features

ROLES = ("system", "user", "assistant", "tool")
# The keys of every message, in order.
MESSAGE_KEYS = ("role", "content", "weight", "tool_calls")
# Values of ``created_at_source``.
CREATED_AT_SOURCES = ("file", "row_order")

# Columns of a clean example, in order. Optional ones may be null.
EXAMPLE_COLUMNS = (
    "id",
    "messages",
    "created_at",
    "category",
    "lang",
    "source",
    "augmented_from",
    "group_id",
    "tools",
    "created_at_source",
)
PROVENANCE_COLUMNS = ("source_file", "source_line", "raw", "error")
REJECTION_COLUMNS = ("stage", "reason", "detail", "duplicate_of")


def _example_fields() -> dict[str, Any]:
    from datasets import Value

    return {
        "id": Value("string"),
        "messages": [
            {
                "role": Value("string"),
                "content": Value("string"),
                "weight": Value("float64"),
                "tool_calls": Value("string"),
            }
        ],
        "created_at": Value("timestamp[us, tz=UTC]"),
        "category": Value("string"),
        "lang": Value("string"),
        "source": Value("string"),
        "augmented_from": Value("string"),
        "group_id": Value("string"),
        "tools": Value("string"),
        "created_at_source": Value("string"),
    }


def example_features() -> Features:
    """Features of clean, augmented and split datasets."""
    from datasets import Features

    return Features(_example_fields())


def raw_features() -> Features:
    """Features of ``raw_examples``: the example columns plus provenance."""
    from datasets import Features, Value

    fields = _example_fields()
    fields.update(
        source_file=Value("string"),
        source_line=Value("int64"),
        raw=Value("string"),
        error=Value("string"),
    )
    return Features(fields)


def rejected_features() -> Features:
    """Features of ``rejected_examples``: raw columns plus why and where the row was rejected."""
    from datasets import Features, Value

    fields = dict(raw_features())
    fields.update(
        stage=Value("string"),
        reason=Value("string"),
        detail=Value("string"),
        duplicate_of=Value("string"),
    )
    return Features(fields)


def empty_row(columns: tuple[str, ...]) -> dict[str, Any]:
    """A row with every column null, to fill optional fields consistently."""
    return dict.fromkeys(columns)


def to_dataset(rows: list[dict[str, Any]], features: Features) -> Dataset:
    """Build a Dataset with exactly ``features`` (missing optional columns become null)."""
    from datasets import Dataset

    columns = list(features)
    table = {name: [row.get(name) for row in rows] for name in columns}
    return Dataset.from_dict(table, features=features)
