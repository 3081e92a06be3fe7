"""The whole graph, for real, on the shipped sample data in a copy of the project.

The copy is what a fresh clone would hold (git's tracked and unignored files), with small training
settings. Runs go through the same entry points a user has: `python -m pipelines.materialize --all`,
`dagster asset materialize`, `dvc status`, `dvc repro`.
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

# Small enough for a 2-core CI machine; the filter bounds are opened up so that the random embedded
# translators' paraphrases reach the training split and their lineage can be checked.
OVERRIDES = {
    "augment": {
        "min_similarity": 0.0,
        "max_similarity": 1.0,
        "min_length_ratio": 0.01,
        "max_length_ratio": 100.0,
    },
    "train": {"epochs": 1, "max_steps": 12, "batch_size": 8, "max_seq_length": 256},
    "evaluate": {"max_examples": 6, "max_new_tokens": 8},
    # The gate's default (20 scored rows) is for real test sets; here every scored row counts.
    "registry": {"min_scored_rows": 5},
}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_in(cwd, args, timeout=900)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("project"), OVERRIDES)
    result = run([sys.executable, "-m", "pipelines.materialize", "--all"], root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return root


def dvc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "dvc", *args], root)


def test_every_asset_is_persisted(project: Path) -> None:
    for art in ARTIFACTS.values():
        assert (project / art.path).exists(), art.key


def test_rows_are_accounted_for_and_rejections_explained(project: Path) -> None:
    import pyarrow.parquet as pq

    raw = pq.read_table(project / ARTIFACTS["raw_examples"].path).to_pylist()
    clean = pq.read_table(project / ARTIFACTS["clean_examples"].path).to_pylist()
    rejected = pq.read_table(project / ARTIFACTS["rejected_examples"].path).to_pylist()
    assert len(raw) == len(clean) + len(rejected)
    assert all(r["reason"] and r["stage"] for r in rejected)
    reasons = {r["reason"] for r in rejected}
    assert {"malformed_json", "duplicate_exact"} <= reasons, reasons


def test_paraphrases_stay_in_train(project: Path) -> None:
    import pyarrow.parquet as pq

    splits = {
        k: pq.read_table(project / ARTIFACTS[k].path).to_pylist()
        for k in ("train_split", "validation_split", "test_split")
    }
    assert any(r["augmented_from"] for r in splits["train_split"])
    assert not any(r["augmented_from"] for r in splits["validation_split"] + splits["test_split"])
    newest_train = max(r["created_at"] for r in splits["train_split"])
    assert all(r["created_at"] > newest_train for r in splits["test_split"])


def test_dvc_lock_matches_outputs_and_status_is_clean(project: Path) -> None:
    status = dvc(project, "status")
    assert status.returncode == 0, status.stderr
    assert "up to date" in status.stdout, status.stdout
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    recorded = {out["path"]: out["md5"] for stage in lock.values() for out in stage["outs"]}
    for art in ARTIFACTS.values():
        assert recorded[art.path] == dvc_md5(project / art.path), art.key


def test_dagster_data_version_is_the_dvc_md5(project: Path) -> None:
    import dagster as dg

    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    recorded = {out["path"]: out["md5"] for stage in lock.values() for out in stage["outs"]}
    with dg.DagsterInstance.from_config(str(project / ".dagster")) as instance:
        for art in ARTIFACTS.values():
            event = instance.get_latest_materialization_event(dg.AssetKey(art.key))
            assert event is not None, art.key
            assert event.asset_materialization.tags["dagster/data_version"] == recorded[art.path], art.key


def test_champion_has_lineage(project: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("finetuned-adapter", "champion")
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    split_md5 = {out["path"]: out["md5"] for out in lock["split"]["outs"]}
    assert champion.tags["train_split_md5"] == split_md5["data/splits/train.parquet"]
    assert champion.tags["test_split_md5"] == split_md5["data/splits/test.parquet"]
    assert champion.tags["params_hash"]
    assert len(champion.tags["git_commit"]) >= 40
    assert champion.tags["dagster_run_id"]
    assert champion.tags["base_model"] == "embedded"
    assert champion.tags["promotion"] == "champion"


def test_merged_model_is_a_plain_transformers_model(project: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = project / "models" / "merged_model"
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config
    assert any(p.suffix == ".safetensors" for p in path.iterdir())
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    inputs = tokenizer("How do I boil an egg?", return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]
    assert json.loads((path / "champion.json").read_text())["version"] == "1"


def test_one_asset_rematerializes_alone_and_dvc_names_the_stale_stage(project: Path) -> None:
    result = run(
        ["dagster", "asset", "materialize", "-m", "pipelines.definitions", "--select", "evaluation_report"],
        project,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((project / "models" / "evaluation_report.json").read_text())
    assert set(report["models"]) == {"base", "candidate", "champion"}  # the champion now exists
    status = dvc(project, "status", "--json")
    stale = set(json.loads(status.stdout))
    assert stale == {"registered_adapter"}, status.stdout


def test_dvc_repro_runs_a_stage_through_dagster_and_push_works(project: Path) -> None:
    result = dvc(project, "repro", "--single-item", "clean", "--force")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "Running stage 'clean'" in result.stdout
    pushed = dvc(project, "push")
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    assert any((project / ".dvcstore").rglob("*"))


def test_second_full_run_is_idempotent(project: Path) -> None:
    result = run([sys.executable, "-m", "pipelines.materialize", "--all"], project)
    assert result.returncode == 0, result.stderr[-6000:]
    record = json.loads((project / "models" / "registered_adapter.json").read_text())
    assert record["version"] == "1"
    assert record["reused_existing_version"] is True
    assert "up to date" in dvc(project, "status").stdout


def test_a_candidate_that_fails_the_gate_is_not_promoted_or_exported(project: Path) -> None:
    from mlflow import MlflowClient

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["seed"] = 7  # another adapter on the same base
    params["registry"]["min_relative_improvement"] = 0.9  # a bar no candidate clears
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    merged_before = dvc_md5(project / "models" / "merged_model")

    result = run([sys.executable, "-m", "pipelines.materialize", "--all"], project)
    assert result.returncode == 1
    assert "check promotion_gate on registered_adapter failed" in result.stderr
    assert "registry.min_relative_improvement" in result.stderr

    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert str(client.get_model_version_by_alias("finetuned-adapter", "champion").version) == "1"
    candidate = client.get_model_version("finetuned-adapter", "2")
    assert candidate.tags["promotion"] == "rejected"
    assert dvc_md5(project / "models" / "merged_model") == merged_before
    stale = set(json.loads(dvc(project, "status", "--json").stdout))
    assert stale == {"merged_model"}  # its input changed; it was rightly not re-run
