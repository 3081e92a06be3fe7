"""Blocking schema checks for every dataset asset: the columns, types and required values downstream
code relies on. A failure stops everything downstream of the broken dataset."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import dagster as dg

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
            if messages and any(m["role"] not in ("system", "user", "assistant") for m in messages)
        )
        if bad_roles:
            problems.append(f"{bad_roles} rows have a role other than system/user/assistant")
    return problems


def _schema_check(
    key: str, features: Callable[[], Features], required: tuple[str, ...]
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=key, name="schema", blocking=True, description="Columns, types and required values."
    )
    def _check(storage: StorageResource) -> dg.AssetCheckResult:
        dataset = storage.store().read_dataset(key)
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
    from assets import schema

    example = (schema.example_features, REQUIRED_EXAMPLE)
    table = {
        "raw_examples": (schema.raw_features, ("id", "source_line")),
        "clean_examples": example,
        "rejected_examples": (schema.rejected_features, ("id", "stage", "reason")),
        "augmented_examples": example,
        "train_split": example,
        "validation_split": example,
        "test_split": example,
    }
    return [_schema_check(key, features, required) for key, (features, required) in table.items()]
