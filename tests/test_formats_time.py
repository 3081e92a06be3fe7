"""Rows without a timestamp: data.missing_created_at row_order (the default) and reject; public demo sets
without timestamps (LLaMA-Factory's alpaca, identity and glaive tool-call layouts) run through."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from assets.ingest.normalize import created_at_sources, mixed_created_at_warning, normalize_file
from assets.ingest.settings import IngestOptions
from assets.shared.schema import example_features, raw_features, to_dataset

UTC = dt.UTC
EPOCH = dt.datetime(2000, 1, 1, tzinfo=UTC)


def write_json(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def alpaca_demo(n: int) -> list[dict[str, Any]]:
    """Rows shaped like LLaMA-Factory's alpaca_en_demo.json: no id, no timestamp."""
    return [
        {"instruction": f"Give me fact number {i}.", "input": "", "output": f"Fact {i} is true."}
        for i in range(n)
    ]


IDENTITY = [
    {
        "instruction": "hi",
        "input": "",
        "output": "Hello! I am {{name}}, an AI assistant developed by {{author}}.",
    },
    {"instruction": "Who are you?", "input": "", "output": "I am {{name}}, an AI assistant."},
]
GLAIVE = [
    {
        "conversations": [
            {"from": "human", "value": "What is the area of a 3 by 4 rectangle?"},
            {
                "from": "function_call",
                "value": '{"name": "area", "arguments": {"shape": "rectangle", "w": 3, "h": 4}}',
            },
            {"from": "observation", "value": '{"area": 12}'},
            {"from": "gpt", "value": "The area is 12."},
        ],
        "tools": '[{"name": "area", "description": "Area of a shape", "parameters": {"type": "object"}}]',
    },
    {
        "conversations": [
            {"from": "human", "value": "Tell me a joke."},
            {"from": "gpt", "value": "I have no joke tool, but here is one: why did the chicken cross?"},
        ],
        "tools": "[]",
    },
]


def test_row_order_gives_rows_without_a_time_one_from_their_line(tmp_path: Path) -> None:
    rows = normalize_file(write_json(tmp_path / "alpaca.json", alpaca_demo(5)), max_chars=8000)
    assert [row["error"] for row in rows] == [None] * 5
    assert [row["created_at"] for row in rows] == [EPOCH + dt.timedelta(seconds=n) for n in range(1, 6)]
    assert [row["created_at_source"] for row in rows] == ["row_order"] * 5
    assert created_at_sources(rows) == {"row_order": 5}
    assert mixed_created_at_warning(rows) is None


def test_row_order_start_is_configurable_and_lines_count_in_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    lines = [json.dumps(row) for row in alpaca_demo(2)]
    path.write_text(lines[0] + "\n\n" + lines[1] + "\n", encoding="utf-8")
    options = IngestOptions(row_order_start="2024-05-01")
    rows = normalize_file(path, max_chars=8000, options=options)
    start = dt.datetime(2024, 5, 1, tzinfo=UTC)
    assert [row["created_at"] for row in rows] == [
        start + dt.timedelta(seconds=1),
        start + dt.timedelta(seconds=3),
    ]


def test_reject_keeps_the_old_rule(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "alpaca.json", [*alpaca_demo(1), {**alpaca_demo(2)[1], "created_at": 1743501600}]
    )
    rows = normalize_file(path, max_chars=8000, options=IngestOptions(missing_created_at="reject"))
    assert rows[0]["error"].startswith("missing_field: 'created_at' is missing")
    assert "data.missing_created_at: row_order" in rows[0]["error"]
    assert rows[0]["created_at"] is None and rows[0]["created_at_source"] is None
    assert rows[1]["error"] is None and rows[1]["created_at_source"] == "file"


def test_reject_on_a_file_without_any_timestamp_fails_the_file(tmp_path: Path) -> None:
    from assets.ingest.readers import IngestError

    path = write_json(tmp_path / "alpaca.json", alpaca_demo(3))
    with pytest.raises(IngestError, match="most common error: missing_field"):
        normalize_file(path, max_chars=8000, options=IngestOptions(missing_created_at="reject"))


def test_a_time_that_does_not_parse_is_an_error_under_both_policies(tmp_path: Path) -> None:
    path = write_json(tmp_path / "rows.json", [{**alpaca_demo(1)[0], "created_at": "yesterday"}])
    for policy in ("row_order", "reject"):
        with pytest.raises(Exception, match="bad_timestamp"):
            normalize_file(path, max_chars=8000, options=IngestOptions(missing_created_at=policy))


def test_a_file_mixing_own_and_synthetic_times_is_reported(tmp_path: Path) -> None:
    rows_in = alpaca_demo(4)
    rows_in[0]["created_at"] = "2025-01-01T00:00:00Z"
    rows_in[3]["created_at"] = "2025-01-02T00:00:00Z"
    rows = normalize_file(write_json(tmp_path / "mixed.json", rows_in), max_chars=8000)
    assert [row["created_at_source"] for row in rows] == ["file", "row_order", "row_order", "file"]
    warning = mixed_created_at_warning(rows)
    assert warning is not None
    assert (
        warning.startswith("2 rows have no created_at (the first on line 2)")
        and "2 rows carry their own" in warning
    )


def test_llama_factory_demo_layouts_pass_validation_with_times_in_file_order(tmp_path: Path) -> None:
    from assets.clean.filters import row_filters, validate_row

    demo = [*alpaca_demo(40), *IDENTITY, *GLAIVE]
    rows = normalize_file(write_json(tmp_path / "demo.json", demo), max_chars=8000)
    assert [row["error"] for row in rows] == [None] * len(demo)
    tool_row = rows[42]
    assert [m["role"] for m in tool_row["messages"]] == ["user", "assistant", "tool", "assistant"]
    arguments = json.loads(tool_row["messages"][1]["tool_calls"])[0]["function"]["arguments"]
    assert arguments == {"shape": "rectangle", "w": 3, "h": 4}
    assert json.loads(tool_row["tools"])[0]["function"]["name"] == "area" and rows[43]["tools"] is None
    raw = to_dataset(rows, raw_features()).to_list()
    filters = row_filters(min_response_chars=2)
    assert [validate_row(row, filters) for row in raw] == [None] * len(demo)
    examples = to_dataset(raw, example_features()).to_list()
    # what the time split needs: an aware time on every row, increasing in file order, and which policy
    # gave it (the newest rows of the file are the ones evaluated)
    times = [row["created_at"] for row in examples]
    assert all(t.tzinfo is not None for t in times) and times == sorted(set(times))
    assert {row["created_at_source"] for row in examples} == {"row_order"}


def _materialize(root: Path, raw: Path, **config: Any) -> dg.ExecuteInProcessResult:
    from assets.ingest.asset import raw_examples
    from pipelines.io_manager import ArtifactIOManager
    from resources.dvc import DvcResource
    from resources.storage import StorageResource

    storage = StorageResource(root=str(root))
    return dg.materialize(
        [raw_examples],
        resources={
            "storage": storage,
            "io_manager": ArtifactIOManager(storage=storage),
            "dvc": DvcResource(root=str(root), enabled=False),
        },
        run_config={"ops": {"raw_examples": {"config": {"raw_path": str(raw), **config}}}},
        raise_on_error=False,
    )


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [event] = result.get_asset_materialization_events()
    return {key: getattr(value, "value", value) for key, value in event.materialization.metadata.items()}


def test_the_asset_records_the_policy_and_which_rows_it_decided(tmp_path: Path) -> None:
    rows_in = alpaca_demo(3)
    rows_in[0]["created_at"] = "2025-01-01T00:00:00Z"
    result = _materialize(tmp_path, write_json(tmp_path / "mixed.json", rows_in))
    assert result.success
    metadata = _metadata(result)
    assert metadata["created_at_policy"] == "row_order"
    assert (
        "| row_order | 2 |" in metadata["created_at_sources"]
        and "| file | 1 |" in metadata["created_at_sources"]
    )
    assert metadata["created_at_mixed"].startswith("2 rows have no created_at")

    rejected = _materialize(
        tmp_path, write_json(tmp_path / "none.json", alpaca_demo(2)), missing_created_at="reject"
    )
    assert not rejected.success


def test_the_asset_reads_a_saved_dataset_directory(tmp_path: Path) -> None:
    from datasets import Dataset

    from assets.stages import ARTIFACTS
    from resources.storage import StorageResource

    Dataset.from_list(alpaca_demo(3)).save_to_disk(str(tmp_path / "saved"))
    result = _materialize(tmp_path, tmp_path / "saved")
    assert result.success
    metadata = _metadata(result)
    assert metadata["source_md5"].endswith(".dir")
    loaded = StorageResource(root=str(tmp_path)).store(ARTIFACTS).read_dataset("raw_examples")
    assert loaded["created_at_source"] == ["row_order"] * 3 and loaded["error"] == [None] * 3


def test_a_bad_data_setting_fails_the_asset_naming_it(tmp_path: Path) -> None:
    result = _materialize(tmp_path, write_json(tmp_path / "a.json", alpaca_demo(1)), columns=["output"])
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert (
        "data.columns entry 'output' must be 'canonical=yours'"
        in failures[0].event_specific_data.error.message
    )


def test_a_bad_row_order_start_is_explained_without_offering_null() -> None:
    """data.row_order_start takes no null: its message must not borrow the split's "null to cut by
    fraction" hint."""
    from assets.shared.errors import InputError

    with pytest.raises(InputError) as caught:
        _ = IngestOptions(row_order_start="yesterday").start
    message = str(caught.value)
    assert "data.row_order_start is 'yesterday'" in message and "null" not in message
