"""The MLflow registry resource on throwaway SQLite stores (the real MLflow, no server): registration,
compare-and-set promotion, rollback, overlapping writers, and projects that are moved or copied."""

from __future__ import annotations

import multiprocessing
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from resources.registry import ModelRegistry, RegistryConflict


def _registry(root: Path) -> ModelRegistry:
    """The project default: mlflow.db in ``root``, artifacts in ``mlartifacts`` relative to it."""
    return ModelRegistry(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow database, made once: creating the schema (alembic migrations) takes seconds."""
    root = tmp_path_factory.mktemp("empty-registry")
    _registry(root).client().search_registered_models()
    return root / "mlflow.db"


@pytest.fixture
def tmp_path(tmp_path: Path, empty_db: Path) -> Path:
    """Each test's folder starts with an empty registry database."""
    shutil.copyfile(empty_db, tmp_path / "mlflow.db")
    return tmp_path


def _adapter(tmp_path: Path, content: str) -> Path:
    path = tmp_path / f"adapter-{content}"
    path.mkdir(exist_ok=True)
    (path / "adapter_config.json").write_text(f'{{"r": "{content}"}}')
    return path


def _register(registry: ModelRegistry, tmp_path: Path, content: str) -> dict:
    info, _ = registry.register_once(
        "m", _adapter(tmp_path, content), tags={"adapter_md5": content}, metrics={"ppl": 3.0}, params={}
    )
    return info


def test_register_promote_and_download(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    assert registry.champion("m") is None
    info, reused = registry.register_once(
        "m",
        _adapter(tmp_path, "one"),
        tags={"adapter_md5": "abc", "train_split_md5": "t1"},
        metrics={"ppl": 3.0},
        params={"train.lora_r": 8},
    )
    assert (info["version"], reused) == ("1", False)
    assert info["tags"]["train_split_md5"] == "t1"
    again, reused = registry.register_once(
        "m", _adapter(tmp_path, "one"), tags={"adapter_md5": "abc"}, metrics={}, params={}
    )
    assert (again["version"], reused) == ("1", True)
    assert registry.find_version("m", "adapter_md5", "nope") is None

    registry.promote("m", "1", expected_champion=None)
    champion = registry.champion("m")
    assert champion["version"] == "1" and champion["tags"]["promotion"] == "champion"
    downloaded = registry.download_adapter(champion, tmp_path / "dl")
    assert (downloaded / "adapter_config.json").read_text() == '{"r": "one"}'
    assert str(tmp_path / "mlartifacts") in str(registry.client().get_run(info["run_id"]).info.artifact_uri)

    second = _register(registry, tmp_path, "two")
    assert second["version"] == "2"
    assert registry.champion("m")["version"] == "1"  # registering never promotes


def test_promotion_keeps_previous_retags_the_demoted_and_rollback_restores(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    for content in ("one", "two", "three"):
        _register(registry, tmp_path, content)
    registry.promote("m", "1", expected_champion=None)
    registry.promote("m", "2", expected_champion="1")
    assert registry.previous("m")["version"] == "1"
    assert registry.version("m", "1")["tags"]["promotion"] == "demoted"  # it no longer says champion
    assert registry.version("m", "1")["tags"]["demoted_by"] == "2"
    registry.promote("m", "3", expected_champion="2")

    assert registry.rollback("m") == ("3", "2")
    assert registry.champion("m")["version"] == "2"
    assert registry.version("m", "2")["tags"]["promotion"] == "champion"
    assert registry.version("m", "3")["tags"]["promotion"] == "rolled_back"
    assert registry.previous("m")["version"] == "1"  # version 2's own predecessor
    assert registry.rollback("m") == ("2", "1")
    assert registry.previous("m") is None
    with pytest.raises(RegistryConflict, match="no previous champion"):
        registry.rollback("m")


def test_a_promotion_judged_against_a_stale_champion_moves_nothing(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    for content in ("one", "two", "three"):
        _register(registry, tmp_path, content)
    registry.promote("m", "1", expected_champion=None)
    registry.promote("m", "2", expected_champion="1")
    with pytest.raises(
        RegistryConflict, match="judged against champion 1, but the champion is now version 2"
    ):
        registry.promote("m", "3", expected_champion="1")
    assert registry.champion("m")["version"] == "2"
    assert "promotion" not in registry.version("m", "3")["tags"]


def test_two_threads_promoting_at_once_cannot_both_win(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    for content in ("one", "two"):
        _register(registry, tmp_path, content)
    outcomes: dict[str, str] = {}

    def promote(version: str) -> None:
        try:
            registry.promote("m", version, expected_champion=None)
            outcomes[version] = "promoted"
        except RegistryConflict:
            outcomes[version] = "conflict"

    threads = [threading.Thread(target=promote, args=(v,)) for v in ("1", "2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["conflict", "promoted"]
    winner = next(v for v, outcome in outcomes.items() if outcome == "promoted")
    assert registry.champion("m")["version"] == winner


def _register_in_process(root: str, adapter: str, barrier: multiprocessing.synchronize.Barrier) -> str:
    registry = _registry(Path(root))
    registry.client()  # import mlflow before the race starts
    barrier.wait()
    info, _ = registry.register_once(
        "m", Path(adapter), tags={"adapter_md5": "same-bytes"}, metrics={}, params={}
    )
    return info["version"]


def test_two_threads_registering_the_same_adapter_get_one_version(tmp_path: Path) -> None:
    registry, adapter = _registry(tmp_path), _adapter(tmp_path, "same")
    versions: list[str] = []

    def register() -> None:
        info, _ = registry.register_once("m", adapter, tags={"adapter_md5": "same"}, metrics={}, params={})
        versions.append(info["version"])

    threads = [threading.Thread(target=register) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert versions == ["1", "1"]
    assert len(registry.client().search_model_versions("name='m'")) == 1


@pytest.mark.slow
def test_two_processes_registering_the_same_adapter_get_one_version(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path, "same")
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(2)
    with context.Pool(2) as pool:
        versions = pool.starmap(
            _register_in_process,
            [(str(tmp_path), str(adapter), barrier), (str(tmp_path), str(adapter), barrier)],
        )
    assert versions == ["1", "1"]
    assert len(_registry(tmp_path).client().search_model_versions("name='m'")) == 1


def _experiment_location(root: Path) -> str:
    with sqlite3.connect(root / "mlflow.db") as conn:
        [(location,)] = conn.execute("select artifact_location from experiments where name='finetune'")
    return location


def _built_project(tmp_path: Path) -> Path:
    """A project folder with a registry holding champion version 1 (as `make demo` leaves it)."""
    project = tmp_path / "original"
    project.mkdir()
    shutil.copyfile(tmp_path / "mlflow.db", project / "mlflow.db")
    registry = _registry(project)
    _register(registry, project, "one")
    registry.promote("m", "1", expected_champion=None)
    return project


def test_case_19_a_moved_project_reads_its_adapters_and_writes_under_its_new_path(tmp_path: Path) -> None:
    """../shared/cases/19, first run: the project is moved; the database named the old path."""
    project = _built_project(tmp_path)
    moved = tmp_path / "moved"
    shutil.move(project, moved)
    assert _experiment_location(moved) == (project / "mlartifacts").as_uri()  # what MLflow stored

    registry = _registry(moved)
    champion = registry.champion("m")
    adapter = registry.download_adapter(champion, tmp_path / "dl")
    assert (adapter / "adapter_config.json").read_text() == '{"r": "one"}'
    assert _experiment_location(moved) == (moved / "mlartifacts").as_uri()
    second = _register(registry, moved, "two")
    assert (moved / "mlartifacts" / second["run_id"] / "artifacts" / "adapter").is_dir()
    assert not project.exists()


def test_case_19_a_copied_project_never_writes_into_the_original(tmp_path: Path) -> None:
    """../shared/cases/19, second run: the project is copied and the original left in place."""
    project = _built_project(tmp_path)
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    with sqlite3.connect(project / "mlflow.db") as conn:
        original_rows = conn.execute("select count(*) from model_versions").fetchone()
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)

    registry = _registry(copy)
    second = _register(registry, copy, "two")
    registry.promote("m", second["version"], expected_champion="1")
    assert (copy / "mlartifacts" / second["run_id"] / "artifacts" / "adapter").is_dir()
    assert registry.download_adapter(registry.champion("m"), tmp_path / "dl").is_dir()
    assert _experiment_location(copy) == (copy / "mlartifacts").as_uri()

    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before
    assert _experiment_location(project) == (project / "mlartifacts").as_uri()
    with sqlite3.connect(project / "mlflow.db") as conn:
        assert conn.execute("select count(*) from model_versions").fetchone() == original_rows
    assert _registry(project).champion("m")["version"] == "1"


def test_a_version_whose_artifacts_were_deleted_names_the_version_and_path(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    info = _register(registry, tmp_path, "one")
    shutil.rmtree(tmp_path / "mlartifacts")
    with pytest.raises(FileNotFoundError, match=r"registry version 1 .*mlartifacts.*deleted or not copied"):
        registry.download_adapter(info, tmp_path / "dl")


def test_an_unreachable_registry_is_an_error_not_an_absent_champion(monkeypatch) -> None:
    from resources.registry import RegistryUnavailable

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # restored after the test
    # nothing listens on the discard port
    registry = ModelRegistry(tracking_uri="http://127.0.0.1:9", request_retries=0)
    assert registry.artifact_root() is None  # a server keeps artifacts in its own store
    with pytest.raises(RegistryUnavailable, match=r"http://127\.0\.0\.1:9 cannot be reached"):
        registry.champion("m")


def test_the_rollback_and_approve_commands(tmp_path: Path, monkeypatch, capsys) -> None:
    import pipelines.registry as cli

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    registry = _registry(tmp_path)
    for content in ("one", "two", "three"):
        _register(registry, tmp_path, content)
    registry.promote("m", "1", expected_champion=None)
    registry.promote("m", "2", expected_champion="1")

    assert cli.main(["--name", "m", "rollback"]) == 0
    out = capsys.readouterr().out
    assert "champion: version 1" in out and "python -m pipelines.materialize merged_model" in out
    assert registry.champion("m")["version"] == "1"
    assert cli.main(["--name", "m", "rollback"]) == 1  # nothing before version 1
    assert "no previous champion" in capsys.readouterr().err

    assert cli.main(["--name", "m", "approve", "3"]) == 1  # never passed the gate
    assert "not pending approval" in capsys.readouterr().err
    registry.tag("m", "3", "promotion", "pending")
    registry.tag("m", "3", "gate_champion_version", "1")
    assert cli.main(["--name", "m", "approve", "3"]) == 0
    assert registry.champion("m")["version"] == "3" and registry.previous("m")["version"] == "1"
    assert cli.main(["--name", "m", "status"]) == 0
    assert "champion" in capsys.readouterr().out


def test_status_on_a_missing_database_says_so_and_creates_nothing(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """A mistyped MLFLOW_TRACKING_URI must not look like an empty registry (MLflow would create it)."""
    import pipelines.registry as cli

    db = tmp_path / "mlfow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    assert cli.main(["--name", "m", "status"]) == 0
    assert f"no registry database at {db}" in capsys.readouterr().out
    assert not db.exists()
