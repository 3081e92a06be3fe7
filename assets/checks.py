"""Blocking schema checks for every dataset asset: the columns, types and required values downstream
code relies on. A failure stops everything downstream of the broken dataset."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import dagster as dg

from assets.publishing import artifact_store
from assets.shared.schema import ROLES
from assets.stages import OUTPUT_OF_KEY
from resources.storage import StorageResource

if TYPE_CHECKING:
    from datasets import Dataset, Features

REQUIRED_EXAMPLE = ("id", "messages", "created_at")


def schema_problems(dataset: Dataset, expected: Features, required: tuple[str, ...]) -> list[str]:
    """What is wrong with ``dataset``'s schema or required values, as sentences."""
    problems = []
    missing = [c for c in expected if c not in dataset.features]
    extra = [c for c in dataset.features if c not in expected]
    if missing:
        problems.append(f"missing columns: {missing}")
    if extra:
        problems.append(f"unexpected columns: {extra}")
    for name in expected:
        if name in dataset.features and dataset.features[name] != expected[name]:
            problems.append(f"column '{name}' is {dataset.features[name]}, expected {expected[name]}")
    for name in required:
        if name in dataset.column_names:
            nulls = sum(1 for value in dataset[name] if value is None or value == [])
            if nulls:
                problems.append(f"{nulls} rows have no '{name}'")
    if "messages" in required and "messages" in dataset.column_names:
        bad_roles = sum(
            1
            for messages in dataset["messages"]
            if messages and any(m["role"] not in ROLES for m in messages)
        )
        if bad_roles:
            problems.append(f"{bad_roles} rows have a role other than {'/'.join(ROLES)}")
    return problems


def _schema_check(
    key: str, features: Callable[[], Features], required: tuple[str, ...]
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=key, name="schema", blocking=True, description="Columns, types and required values."
    )
    def _check(storage: StorageResource) -> dg.AssetCheckResult:
        dataset = artifact_store(storage).read_dataset(key)
        problems = schema_problems(dataset, features(), required)
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={
                "rows": len(dataset),
                "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
            },
        )

    return _check


def schema_checks() -> list[dg.AssetChecksDefinition]:
    """One blocking schema check per dataset output of the stage table."""
    from assets.shared import schema

    by_schema = {
        "raw": (schema.raw_features, ("id", "source_line")),
        "example": (schema.example_features, REQUIRED_EXAMPLE),
        "rejected": (schema.rejected_features, ("id", "stage", "reason")),
    }
    return [
        _schema_check(output.key, *by_schema[output.schema])
        for output in OUTPUT_OF_KEY.values()
        if output.schema is not None
    ]
