"""Retention: the policy's checks, which registry versions stay, and the command on a real DVC cache, a real
MLflow registry (SQLite) and a real Dagster instance, dry run then apply."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from pipelines import retention as cli
from resources.retention import (
    Category,
    Item,
    RetentionPolicy,
    VersionFacts,
    human_size,
    plan_versions,
    report_table,
)
from tests.conftest import PROJECT_ROOT
from tests.test_params import params_root

# --- the policy ---------------------------------------------------------------------------------------


def test_the_project_policy_loads_and_preflight_knows_its_keys() -> None:
    from assets.preflight import unknown_settings

    assert cli.load_policy(PROJECT_ROOT) == RetentionPolicy(dagster_run_history_days=30.0)
    assert unknown_settings(PROJECT_ROOT) == []


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "keep_rejected_versions: 0",
            "keep_rejected_versions: -1",
            r"'retention\.keep_rejected_versions' is -1",
        ),
        (
            "keep_merged_models: 1",
            "keep_merged_models: 0",
            r"'retention\.keep_merged_models' is 0; it must be at least 1",
        ),
        ("dvc_scope: workspace", "dvc_scope: everything", r"'retention\.dvc_scope' is 'everything'"),
        (
            "dagster_run_history_days: 30",
            "dagster_run_history_days: 'a month'",
            r"dagster_run_history_days' is 'a month'",
        ),
        (
            "keep_former_champions: 1",
            "keep_former_champion: 1",
            r"'retention\.keep_former_champion'.*did you mean 'keep_former_champions'",
        ),
    ],
)
def test_a_bad_setting_is_named(tmp_path: Path, old: str, new: str, message: str) -> None:
    root = params_root(tmp_path, old, new)
    with pytest.raises(ValueError, match=message):
        cli.load_policy(root)


def test_preflight_refuses_a_misspelled_retention_key(tmp_path: Path) -> None:
    from assets.preflight import unknown_settings

    root = params_root(tmp_path, "keep_merged_models: 1", "keep_merged_model: 1")
    assert unknown_settings(root) == [
        "params.yaml: setting 'retention.keep_merged_model' is not read by any stage; did you mean "
        "'keep_merged_models'?"
    ]


# --- which registry versions stay ---------------------------------------------------------------------


def _v(version: int, *aliases: str, **tags: str) -> VersionFacts:
    return VersionFacts(str(version), f"run{version}", tuple(aliases), tags)


HISTORY = [
    _v(1, promotion="demoted", demoted_by="3"),  # champion before 3's predecessor
    _v(2, promotion="rejected"),
    _v(3, "previous", promotion="demoted", previous_champion="1", demoted_by="6"),
    _v(4, promotion="rejected"),
    _v(5),  # a run stopped before its gate
    _v(6, "champion", promotion="champion", previous_champion="3"),
    _v(7, promotion="pending"),
    _v(8, promotion="rejected"),
    _v(9),  # the current candidate
]


@pytest.mark.parametrize(
    ("policy", "deleted"),
    [
        (RetentionPolicy(), {"2", "4", "5", "8"}),
        (RetentionPolicy(keep_rejected_versions=2), {"2", "4"}),
        (RetentionPolicy(keep_rejected_versions=10), set()),
    ],
)
def test_champion_previous_rollback_target_pending_and_candidate_always_stay(
    policy: RetentionPolicy, deleted: set[str]
) -> None:
    keep, delete = plan_versions(HISTORY, policy, candidate="9")
    assert set(delete) == deleted
    assert keep["6"] == "champion" and keep["3"].startswith("previous") and keep["7"] == "pending approval"
    assert keep["1"] == "a rollback makes it `previous`"  # else rollback could not set `previous`
    assert keep["9"].startswith("current candidate")
    assert set(keep) | set(delete) == {v.version for v in HISTORY}


def test_former_champions_beyond_the_policy_go() -> None:
    versions = [
        _v(1, promotion="rolled_back"),
        _v(2, promotion="demoted", demoted_by="3"),
        _v(3, promotion="demoted", demoted_by="4"),
        _v(4, "previous", promotion="demoted", previous_champion="3"),
        _v(5, "champion", promotion="champion", previous_champion="4"),
    ]
    keep, delete = plan_versions(versions, RetentionPolicy(keep_former_champions=1))
    assert delete == {"1": "former champion (rolled_back), beyond retention.keep_former_champions = 1"}
    assert keep["2"].startswith("former champion (demoted), among the newest 1")
    _, delete = plan_versions(versions, RetentionPolicy(keep_former_champions=0))
    assert set(delete) == {"1", "2"}


def test_the_table_shows_counts_and_sizes_per_category_and_totals() -> None:
    categories = [
        Category("registry: rejected candidates", [Item("version 2", 3 * 1024**2, "")], [Item("v", 10, "")]),
        Category("DVC cache: merged models", [Item("a.dir", 100, ""), Item("b", 2048, "")]),
    ]
    table = report_table(categories, applied=False).splitlines()
    assert "would delete" in table[0]
    assert table[2].split()[-6:] == ["1", "3.0", "MiB", "1", "10", "B"]
    assert table[3].split()[-6:] == ["2", "2.1", "KiB", "0", "0", "B"]
    assert table[-1].split() == ["total", "3", "3.0", "MiB", "1", "10", "B"]
    assert human_size(None) == "?" and human_size(512) == "512 B"


# --- the command on real stores --------------------------------------------------------------------------

SPLITS = {
    "train_split": "data/splits/train.parquet",
    "test_split": "data/splits/test.parquet",
}
REJECTED = "data/rejected_examples.parquet"
ADAPTER, MERGED = "models/adapter", "models/merged_model"


def _write(root: Path, state: str, paths: list[str]) -> None:
    for relative in paths:
        path = root / relative
        if relative.startswith("models/"):
            if path.exists():
                shutil.rmtree(path)
            path.mkdir(parents=True)
            (path / "weights.bin").write_bytes(f"{relative} {state}\n".encode() * 2000)
            (path / "config.json").write_text('{"shared": "same in every version"}')
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{relative} rows, state {state}\n" * 50)


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> dict:
    """A DVC repository (no git) whose cache holds three states, a registry with a champion (3), the
    previous one (1) and a rejected candidate (2), and a Dagster instance that saw the exports."""
    import dagster as dg
    from dvc.repo import Repo

    from resources.artifacts import dvc_md5
    from resources.registry import ModelRegistry

    root = tmp_path / "project"
    root.mkdir()
    shutil.copyfile(PROJECT_ROOT / "params.yaml", root / "params.yaml")
    Repo.init(str(root), no_scm=True)
    registry = ModelRegistry(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    md5s: dict[str, dict[str, str]] = {}
    everything = [*SPLITS.values(), REJECTED, ADAPTER, MERGED]
    for state, paths in (("A", everything), ("B", [ADAPTER]), ("C", everything)):
        _write(root, state, paths)
        with Repo(str(root)) as repo:
            repo.add([str(root / p) for p in paths])
        md5s[state] = {p: dvc_md5(root / p) for p in everything}
        tags = {f"{key}_md5": md5s[state][path] for key, path in SPLITS.items()}
        tags["adapter_md5"] = md5s[state][ADAPTER]
        lineage = tmp_path / f"lineage-{state}" / "dvc_lock_inputs.json"
        lineage.parent.mkdir()
        clean = {"outs": [{"path": REJECTED, "md5": md5s[state][REJECTED]}]}
        lineage.write_text(json.dumps({"dvc_lock": {"clean": clean}}))
        registry.register_once(
            "m", root / ADAPTER, tags=tags, metrics={}, params={}, extra_artifacts={"lineage": lineage}
        )
    registry.promote("m", "1", expected_champion=None)
    registry.tag("m", "2", "promotion", "rejected")
    registry.promote("m", "3", expected_champion="1")
    (root / "models" / "registered_adapter.json").write_text(json.dumps({"name": "m", "version": "3"}))

    home = tmp_path / "dagster"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.get()
    for state in ("A", "C"):
        instance.report_runless_asset_event(
            dg.AssetMaterialization("merged_model", tags={"dagster/data_version": md5s[state][MERGED]})
        )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    monkeypatch.setattr(cli, "PROJECT_ROOT", root)
    return {"root": root, "registry": registry, "md5s": md5s, "instance": instance}


def cli_run_dir(registry, run_id: str) -> Path:
    from resources.retention import run_artifact_dir

    return run_artifact_dir(registry, run_id).parent


def _cache(root: Path) -> set[str]:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return set(repo.cache.local.all())


@pytest.mark.slow
def test_dry_run_deletes_nothing_and_apply_keeps_what_kept_versions_need(project: dict, capsys) -> None:
    import dagster as dg

    import pipelines.registry as registry_cli
    from resources.artifacts import dvc_md5

    root, registry, md5s = project["root"], project["registry"], project["md5s"]
    # A run someone deleted by hand (or an apply stopped before `mlflow gc`): in MLflow's trash.
    client = registry.client()
    trashed = client.create_run(client.get_experiment_by_name(registry.experiment).experiment_id).info.run_id
    client.log_artifact(trashed, str(root / "params.yaml"), "leftover")
    client.delete_run(trashed)
    trashed_dir = cli_run_dir(registry, trashed)
    assert trashed_dir.is_dir()
    cache_before = _cache(root)
    artifacts_before = sorted(p for p in (root / "mlartifacts").rglob("*") if p.is_file())

    # A run in progress may be writing what retention would delete: --apply refuses.
    busy = dg.DagsterRun(job_name="full_pipeline", status=dg.DagsterRunStatus.STARTED)
    project["instance"].add_run(busy)
    assert cli.main(["--name", "m", "--apply"]) == 1
    assert f"run(s) {busy.run_id} are in progress" in capsys.readouterr().err
    project["instance"].delete_run(busy.run_id)

    assert cli.main(["--name", "m", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "Dry run: nothing was deleted" in out
    assert f"registry: deleted runs: delete run {trashed}" in out
    assert _cache(root) == cache_before
    assert sorted(p for p in (root / "mlartifacts").rglob("*") if p.is_file()) == artifacts_before
    assert "registry: rejected candidates" in out, out
    rows = {
        line.split("  ")[0].strip(): line for line in out.splitlines() if line.startswith(("registry", "DVC"))
    }
    assert "1" in rows["registry: rejected candidates"].split()  # version 2
    assert "KiB" in rows["DVC cache: merged models"]
    assert "registry: rejected candidates: delete version 2" in out
    assert f"DVC cache: merged models: delete {md5s['A'][MERGED]}" in out
    # Two exports kept: the older one stays, with its files.
    two = cli.make_plan(root, RetentionPolicy(keep_merged_models=2), registry, "m", project["instance"])
    kept = {item.name: item.reason for c in two.categories for item in c.keep}
    assert kept[md5s["A"][MERGED]] == "merged model export 2 of retention.keep_merged_models"

    assert cli.main(["--name", "m", "--apply"]) == 0
    out = capsys.readouterr().out
    assert "DVC cache (.dvc/cache):" in out and "before" in out and "after" in out
    client = registry.client()
    assert {str(v.version) for v in client.search_model_versions("name='m'")} == {"1", "3"}
    adapters = [d for d in (root / "mlartifacts").rglob("adapter") if d.is_dir()]
    assert len(adapters) == 2  # versions 1 and 3 keep their adapters; 2's run folder is gone
    assert not trashed_dir.exists()
    with pytest.raises(Exception, match=trashed):
        client.get_run(trashed)  # removed for good by mlflow gc

    cache = _cache(root)
    for state in ("A", "C"):
        for path in [*SPLITS.values(), REJECTED]:
            assert md5s[state][path] in cache, (state, path)  # the data of kept versions 1 and 3
    assert md5s["C"][ADAPTER] in cache and md5s["C"][MERGED] in cache  # what dvc.lock names
    assert md5s["A"][ADAPTER] not in cache  # the registry holds version 1's adapter
    assert md5s["B"][ADAPTER] not in cache  # the rejected version's copy
    assert md5s["A"][MERGED] not in cache  # an older export
    assert len(cache) < len(cache_before)

    # Version 1 (previous) restores its splits from what was kept.
    registry_cli_root = registry_cli.PROJECT_ROOT
    try:
        registry_cli.PROJECT_ROOT = root
        registry_cli.SPLITS = tuple(SPLITS)
        assert registry_cli.main(["--name", "m", "restore", "1", "--to", str(root / "restored")]) == 0
    finally:
        registry_cli.PROJECT_ROOT = registry_cli_root
        registry_cli.SPLITS = ("train_split", "validation_split", "test_split")
    for relative in SPLITS.values():
        assert dvc_md5(root / "restored" / relative) == md5s["A"][relative]

    # A second pass finds nothing more to delete.
    assert cli.main(["--name", "m"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert next(line for line in table if line.startswith("total")).split()[1] == "0"


@pytest.mark.slow
def test_old_runs_go_with_their_logs_but_recent_ones_and_current_materializations_stay(
    tmp_path: Path,
) -> None:
    import dagster as dg

    (tmp_path / "home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "home"))

    @dg.asset(name="raw_examples")
    def raw() -> int:
        return 1

    @dg.asset(name="scratch")
    def scratch() -> int:
        return 2

    runs = [dg.materialize([asset], instance=instance).run_id for asset in (raw, raw, scratch)]
    shards = [Path(instance.event_log_storage.path_for_shard(run_id)) for run_id in runs]
    assert all(s.exists() for s in shards)

    recent = cli.Plan([], "m")
    cli.plan_runs(instance, RetentionPolicy(dagster_run_history_days=30), recent, now=time.time())
    assert recent.delete_runs == []

    later = time.time() + 2 * 86400
    plan = cli.Plan([], "m")
    cli.plan_runs(instance, RetentionPolicy(dagster_run_history_days=1), plan, now=later)
    # The second raw_examples run holds its latest materialization: it stays.
    assert set(plan.delete_runs) == {runs[0], runs[2]}
    assert plan.categories[0].freed > 0
    cli.delete_runs(instance, plan.delete_runs)
    assert instance.get_run_by_id(runs[0]) is None and instance.get_run_by_id(runs[2]) is None
    assert instance.get_run_by_id(runs[1]) is not None
    assert not shards[0].exists() and not shards[2].exists() and shards[1].exists()
    assert instance.get_latest_materialization_event(dg.AssetKey("raw_examples")).run_id == runs[1]


# --- the whole pipeline, for real ------------------------------------------------------------------------


@pytest.mark.slow
def test_on_a_real_project_a_rejected_candidate_goes_and_the_champion_restores(tmp_path: Path) -> None:
    """A copy of the project: one full run (version 1, champion), then two retrained candidates that fail
    the gate (2 and 3; 3 stays the current candidate). Retention deletes version 2 and its adapter's DVC
    copy; the champion's splits still restore, and `dvc status` says what it said before."""
    import subprocess
    import sys

    import yaml
    from mlflow import MlflowClient

    from pipelines.workspace import copy_project, run_in
    from tests.test_end_to_end import OVERRIDES

    root = copy_project(tmp_path / "project", OVERRIDES)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_in(root, [sys.executable, *args], timeout=1500)

    result = run("-m", "pipelines.materialize", "--all")
    assert result.returncode == 0, result.stderr[-3000:]
    adapters = []
    for seed in (7, 8):
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["train"]["seed"] = seed
        params["registry"]["min_relative_improvement"] = 0.9  # a bar no candidate clears
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        for stage in ("adapter", "evaluation_report", "registered_adapter"):
            run("-m", "pipelines.materialize", stage)
        adapters.append(
            json.loads((root / "models" / "registered_adapter.json").read_text())["tags"]["adapter_md5"]
        )
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert {str(v.version) for v in client.search_model_versions("name='finetuned-adapter'")} == {
        "1",
        "2",
        "3",
    }
    cache = root / ".dvc" / "cache" / "files" / "md5"
    assert (cache / adapters[0][:2] / adapters[0][2:]).exists()

    status_before = run("-m", "dvc", "status", "--json").stdout
    dry = run("-m", "pipelines.retention")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "Dry run: nothing was deleted" in dry.stdout
    assert (cache / adapters[0][:2] / adapters[0][2:]).exists()
    applied = run("-m", "pipelines.retention", "--apply")
    assert applied.returncode == 0, applied.stderr[-3000:]
    assert "DVC cache (.dvc/cache):" in applied.stdout

    assert {str(v.version) for v in client.search_model_versions("name='finetuned-adapter'")} == {"1", "3"}
    assert not (cache / adapters[0][:2] / adapters[0][2:]).exists()  # version 2's adapter copy
    assert (cache / adapters[1][:2] / adapters[1][2:]).exists()  # the current adapter (dvc.lock)
    restored = run("-m", "pipelines.registry", "restore", "1", "--to", str(tmp_path / "v1"))
    assert restored.returncode == 0, restored.stderr[-3000:]
    assert (tmp_path / "v1" / "data" / "splits" / "test.parquet").is_file()
    # DVC sees the same project: nothing it names went missing (merged_model is stale, as before).
    assert run("-m", "dvc", "status", "--json").stdout == status_before
