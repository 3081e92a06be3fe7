"""Shared test helpers: the project root and the real OpenAssistant sample, when present."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest


def pytest_configure(config: pytest.Config) -> None:
    # absl (imported by rouge_score in the evaluation tests) logs through a handler bound to the
    # sys.stderr of the moment, which under pytest is its capture file; when a later library reconfigures
    # logging (mlflow uses logging.config.dictConfig) every handler is closed, and absl closes a stream
    # that is no longer sys.stderr: pytest's capture file, breaking every later test ("I/O operation on
    # closed file"). Binding absl's handler to the real stderr, which it never closes, avoids that.
    import sys

    from absl import logging as absl_logging

    absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__


PROJECT_ROOT = Path(__file__).resolve().parents[1]
OASST2 = PROJECT_ROOT.parent / "shared" / "data" / "oasst2" / "oasst2_filtered.jsonl"


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded base model (a tiny Llama, seed 0) as ``prepare_base_model`` writes it, built once
    for the session: tests only read it (a test that changes a base copies it first)."""
    from resources.model_loading import prepare_base_model

    out = tmp_path_factory.mktemp("base") / "base"
    prepare_base_model("embedded", out, seed=0)
    return out


@pytest.fixture
def oasst2_path() -> Path:
    if not OASST2.is_file():
        pytest.skip(f"{OASST2} is absent: the OpenAssistant sample ships only beside the team's checkout")
    return OASST2


def materialize_raw(root: Path, raw_path: Path, *, dvc_enabled: bool = False) -> dg.ExecuteInProcessResult:
    """Materialize raw_examples alone into ``root``, reading ``raw_path`` (a launchpad-style override)."""
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
            "dvc": DvcResource(root=str(root), enabled=dvc_enabled),
        },
        run_config={"ops": {"raw_examples": {"config": {"raw_path": str(raw_path)}}}},
        raise_on_error=False,
    )


# A raw row as the ingest stage produces it, for the clean tests.
CLEAN_START = datetime(2025, 1, 1, tzinfo=UTC)


def make_row(
    row_id: str, user: str, answer: str, *, line: int = 1, error: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A raw row as the ingest stage produces it."""
    row = {
        "id": row_id,
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
        "created_at": CLEAN_START + timedelta(days=line),
        "category": None,
        "lang": "en",
        "source": None,
        "augmented_from": None,
        "group_id": None,
        "source_file": "data/raw.jsonl",
        "source_line": line,
        "raw": "{}",
        "error": error,
    }
    row.update(extra)
    return row
