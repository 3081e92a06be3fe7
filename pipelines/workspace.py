"""A throwaway copy of the project, as a fresh clone would hold it, for end-to-end tests and benchmarks.

The copy gets git's tracked and unignored files, its own git repository (DVC needs one), an empty
DAGSTER_HOME and, optionally, params.yaml overrides. Commands run in it with its own root on PYTHONPATH,
so the copy's code, params and outputs are used, never the original's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from resources.project import PROJECT_ROOT


def copy_project(destination: Path, overrides: dict[str, dict[str, Any]] | None = None) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = PROJECT_ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    if overrides:
        params = yaml.safe_load((destination / "params.yaml").read_text())
        for section, values in overrides.items():
            params[section].update(values)
        (destination / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (destination / ".dagster").mkdir(exist_ok=True)
    identity = ["-c", "user.name=workspace", "-c", "user.email=workspace@localhost"]
    for args in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-qm", "workspace copy"]):
        subprocess.run(["git", *args], cwd=destination, check=True, capture_output=True)
    return destination


def run_in(root: Path, args: list[str], *, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """Run ``args`` inside the copy with its own PYTHONPATH, DAGSTER_HOME and the venv's tools."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("PIPELINE_ROOT", "MLFLOW_TRACKING_URI", "DVC_STAGE")
    }
    env.update(
        PYTHONPATH=str(root),
        DAGSTER_HOME=str(root / ".dagster"),
        HF_HUB_OFFLINE=env.get("HF_HUB_OFFLINE", "1"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
