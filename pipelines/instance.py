"""The project's Dagster instance home (DAGSTER_HOME, `.dagster/` by default) and its settings."""

from __future__ import annotations

import os
from pathlib import Path

from resources.project import PROJECT_ROOT

# Written once into a new DAGSTER_HOME; edit the file afterwards to change storage (e.g. PostgreSQL).
# One run at a time: every run writes the same data/ and models/ paths, so queued runs (the schedule,
# the sensor, the UI) must not overlap.
DEFAULT_SETTINGS = """\
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 1
"""


def ensure_dagster_home() -> Path:
    """Set DAGSTER_HOME to the project's `.dagster/` unless already set, and give a new one settings."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster")))
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text(DEFAULT_SETTINGS, encoding="utf-8")
    return home


if __name__ == "__main__":
    print(ensure_dagster_home())
