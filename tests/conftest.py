"""Shared test helpers: the project root and the real OpenAssistant sample, when present."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
OASST2 = PROJECT_ROOT.parent / "shared" / "data" / "oasst2" / "oasst2_filtered.jsonl"


@pytest.fixture
def oasst2_path() -> Path:
    if not OASST2.is_file():
        pytest.skip(f"{OASST2} is absent: the OpenAssistant sample ships only beside the team's checkout")
    return OASST2
