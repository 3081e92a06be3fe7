"""Where the project lives: params.yaml, dvc.yaml, data/ and models/ are under this root.

PIPELINE_ROOT lets a test or a deployment run the same code against another checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("PIPELINE_ROOT", Path(__file__).resolve().parents[1])).resolve()


def resolve_path(value: str, root: Path = PROJECT_ROOT) -> Path:
    """A configured path: absolute as given, relative to the project root otherwise."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path
