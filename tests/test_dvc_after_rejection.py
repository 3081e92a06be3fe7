"""DVC still works after the gate rejects a candidate (issue: `git checkout <rev> && dvc checkout` used to
refuse over the unrecorded registration record).

A copy of the project promotes a first candidate; the user commits that run's dvc.lock. A second run
trains with `train.learning_rate: 1e-7` (an adapter that changes nothing), which the gate refuses. Then:
`dvc status` names only merged_model (rightly not re-exported), `dvc checkout` runs and leaves the
promoted export in place, and going back to the committed dvc.lock restores every output of the
promoted run, md5 for md5, from the DVC cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from assets.stages import ARTIFACTS
from pipelines.workspace import copy_project, run_in
from resources.artifacts import dvc_md5
from tests.test_end_to_end import OVERRIDES

GIT_IDENTITY = ["-c", "user.name=test", "-c", "user.email=test@localhost"]


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_in(root, list(args), timeout=1200)


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *GIT_IDENTITY, *args], cwd=root, check=True, capture_output=True)


def _md5s(root: Path) -> dict[str, str]:
    return {art.path: dvc_md5(root / art.path) for art in ARTIFACTS.values()}


@pytest.mark.slow
def test_dvc_status_and_checkout_work_after_a_gate_rejection(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    root = copy_project(tmp_path / "project", OVERRIDES)
    first = _run(root, sys.executable, "-m", "pipelines.materialize", "--all")
    assert first.returncode == 0, first.stderr[-6000:]
    _git(root, "add", "dvc.lock")
    _git(root, "commit", "-qm", "the promoted run")
    promoted = _md5s(root)

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["learning_rate"] = 1e-7  # trains an adapter that leaves the model unchanged
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    second = _run(root, sys.executable, "-m", "pipelines.materialize", "--all")
    assert second.returncode == 1
    assert "check promotion_gate on registered_adapter failed" in second.stderr
    assert "leaves the model unchanged" in second.stderr
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert client.get_model_version("finetuned-adapter", "2").tags["promotion"] == "rejected"
    assert str(client.get_model_version_by_alias("finetuned-adapter", "champion").version) == "1"

    # The rejected run is fully recorded: only the export, rightly not re-run, is stale.
    status = _run(root, sys.executable, "-m", "dvc", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert set(json.loads(status.stdout)) == {"merged_model"}
    checkout = _run(root, sys.executable, "-m", "dvc", "checkout")
    assert checkout.returncode == 0, checkout.stdout + checkout.stderr
    assert dvc_md5(root / "models" / "merged_model") == promoted["models/merged_model"]
    assert json.loads((root / "models" / "merged_model" / "champion.json").read_text())["version"] == "1"
    assert _md5s(root)["models/adapter"] != promoted["models/adapter"]  # the rejected candidate's

    # Back to the promoted run's commit: DVC restores every output of that run from its cache.
    _git(root, "checkout", "--", "dvc.lock", "params.yaml")
    checkout = _run(root, sys.executable, "-m", "dvc", "checkout")
    assert checkout.returncode == 0, checkout.stdout + checkout.stderr
    assert _md5s(root) == promoted
    status = _run(root, sys.executable, "-m", "dvc", "status")
    assert "up to date" in status.stdout, status.stdout
