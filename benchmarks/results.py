"""What every benchmark writes beside its figures: the machine they were measured on, and the JSON file
itself (benchmarks/results/*.json)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine_facts(**extra: Any) -> dict[str, Any]:
    """Platform, CPU count, Python version and the 1/5/15-minute load averages now (a shared machine's
    load explains wall times far above CPU times), plus ``extra`` (library versions, thread counts)."""
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        **extra,
    }


def write_results(figures: dict[str, Any], out: Path) -> None:
    """``figures`` as indented UTF-8 JSON at ``out`` (its folder made when missing)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
