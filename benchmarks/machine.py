"""The facts about the machine every benchmark records beside its figures (benchmarks/results/*.json)."""

from __future__ import annotations

import os
import platform
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
