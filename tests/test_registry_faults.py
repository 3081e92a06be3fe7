"""Registry faults with bounded, explained outcomes (issue 9 item 5; issue 7's bad inputs).

Real MLflow on throwaway SQLite files, real sockets and real SQLite locks held by another process:
- a tracking server that cannot be reached fails after the resource's short timeout and retries, with
  one message naming the URI (credentials hidden), the cause and what to do; the preflight refuses a
  run that needs it before its first step;
- a locked mlflow.db is waited for (with backoff, up to ``lock_wait_s``), then named with its holder;
- a champion whose registry files are gone: evaluation falls back to the base with a warning, the gate
  agrees, and ``python -m pipelines.registry repair`` moves the alias to an earlier champion with files;
- each bad input leaves the champion and the export as they were.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from assets.params import section
from assets.shared.errors import InputError
from resources.registry import ModelRegistry, RegistryUnavailable
from tests.test_failures import (
    assert_says,
    example_rows,
    failure_description,
    store_at,
    tiny_base,
    write_base,
    write_examples,
)

__all__ = ["tiny_base"]  # the module-scoped fixture of test_failures

NAME = "finetuned-adapter"
HTTP_ENV = (
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
)
# Holds an exclusive SQLite lock on argv[1] for argv[2] seconds, like a writer in the middle of a
# transaction; prints "locked" once it holds it and the time it let go.
HOLD_LOCK = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("COMMIT")
    print(time.time(), flush=True)
    """
)


@pytest.fixture(autouse=True)
def _restore_http_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry writes MLflow's HTTP variables for the process: put them back after each test."""
    for name in HTTP_ENV:
        # setenv records what to restore (a value, or none); each test starts without the variable.
        monkeypatch.setenv(name, "set-by-test")
        monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow database, made once: creating the schema (alembic migrations) takes seconds."""
    root = tmp_path_factory.mktemp("empty-registry")
    ModelRegistry(tracking_uri=f"sqlite:///{root / 'mlflow.db'}").client().search_registered_models()
    return root / "mlflow.db"


@pytest.fixture
def project(tmp_path: Path, empty_db: Path) -> Path:
    shutil.copyfile(empty_db, tmp_path / "mlflow.db")
    return tmp_path


def _registry(root: Path, **fields: Any) -> ModelRegistry:
    """The project layout: mlflow.db in ``root``, artifacts in ``root/mlartifacts``."""
    return ModelRegistry(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", **fields)


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unreachable(**fields: Any) -> ModelRegistry:
    """A tracking server that is down, with credentials in its URI, and the short settings the brief
    asks tests to use (1 retry, 2 s)."""
    settings = {"request_timeout_s": 2, "request_retries": 1, "request_backoff_factor": 0, **fields}
    return ModelRegistry(tracking_uri=f"http://ops:s3cret@127.0.0.1:{closed_port()}", **settings)


@pytest.fixture
def silent_server() -> Iterator[tuple[str, list[int]]]:
    """A server that accepts connections and never answers; yields its URI and the connection count."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[int] = []
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            held.append(connection)
            accepted.append(1)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    server.close()
    for connection in held:
        connection.close()


@pytest.fixture
def hold_lock() -> Iterator[Any]:
    """Start a process holding an exclusive lock on a database for some seconds; ended after the test."""
    started: list[subprocess.Popen] = []

    def start(db: Path, seconds: float) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(db), str(seconds)], stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "locked"
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def _adapter_dir(root: Path, content: str) -> Path:
    path = root / f"adapter-{content}"
    path.mkdir(exist_ok=True)
    (path / "adapter_config.json").write_text(f'{{"r": "{content}"}}')
    return path


def _champion(registry: ModelRegistry, root: Path, *, base_md5: str = "b", content: str = "one") -> dict:
    """Register an adapter and make it the champion (through the compare-and-set)."""
    tags = {"adapter_md5": content, "base_model_md5": base_md5, "base_model": "embedded"}
    info, _ = registry.register_once(NAME, _adapter_dir(root, content), tags=tags, metrics={}, params={})
    current = registry.champion(NAME)
    registry.promote(NAME, info["version"], expected_champion=current and current["version"])
    return info


def _delete_artifacts(registry: ModelRegistry, info: dict) -> None:
    """Delete a version's files from the artifact store, as someone cleaning disk space would."""
    from urllib.parse import unquote, urlparse

    uri = registry.client().get_run(info["run_id"]).info.artifact_uri
    shutil.rmtree(Path(unquote(urlparse(uri).path)) / "adapter")


def _materialize(root: Path, keys: list[str], registry: ModelRegistry, config: dict | None = None, **kw: Any):
    """tests.test_failures.materialize with this test's registry resource."""
    from pipelines.definitions import ASSETS
    from pipelines.io_manager import ArtifactIOManager
    from resources.dvc import DvcResource
    from resources.models import ModelLoader
    from resources.storage import StorageResource
    from tests.test_failures import OP_OF_KEY

    [op] = {OP_OF_KEY[key] for key in keys}
    storage = StorageResource(root=str(root))
    resources = {
        "storage": storage,
        "io_manager": ArtifactIOManager(storage=storage),
        "dvc": DvcResource(root=str(root), enabled=False),
        "models": ModelLoader(embedded_root=str(root / "models" / "embedded")),
        "registry": registry,
    }
    return dg.materialize(
        ASSETS,
        selection=keys,
        resources=resources,
        run_config={"ops": {op: {"config": config or {}}}},
        raise_on_error=False,
        **kw,
    )


# ---------------------------------------------------------------- a tracking server that cannot be reached
def test_an_unreachable_server_fails_after_the_short_settings_naming_the_uri_without_credentials() -> None:
    registry = unreachable()
    with pytest.raises(RegistryUnavailable) as caught:
        registry.champion(NAME)
    message = str(caught.value)
    port = registry.tracking_uri.rsplit(":", 1)[1]
    assert_says(
        message,
        f"http://ops:***@127.0.0.1:{port} cannot be reached",
        "connection refused",
        "tried 2 time(s) (timeout 2 s each)",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
    )
    assert "s3cret" not in message
    # MLflow's client was given the resource's settings, not its defaults (120 s, 7 retries, factor 2).
    assert [os.environ[name] for name in HTTP_ENV] == ["2", "1", "0"]


def test_a_server_that_never_answers_is_given_the_timeout_and_the_retries(
    silent_server: tuple[str, list[int]],
) -> None:
    uri, accepted = silent_server
    registry = ModelRegistry(
        tracking_uri=uri, request_timeout_s=1, request_retries=1, request_backoff_factor=0
    )
    with pytest.raises(RegistryUnavailable, match="no answer within the timeout; tried 2 time"):
        registry.champion(NAME)
    assert len(accepted) == 2  # the first try and one retry, each cut off by the 1 s timeout


def test_the_preflight_refuses_a_run_that_needs_an_unreachable_registry() -> None:
    from assets.preflight import preflight

    registry = unreachable()
    with pytest.raises(InputError, match=r"needs the model registry, and the registry at http://ops:\*\*\*@"):
        preflight(["evaluation_report"], registry=registry)
    preflight(["clean"], registry=registry)  # a data stage never asks the registry


def test_the_preflight_names_a_server_that_refuses_the_request() -> None:
    """A server that answers, but refuses (wrong credentials, a proxy): named with its answer."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from assets.preflight import registry_problem

    class Refuse(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"error_code": "PERMISSION_DENIED", "message": "no access for this user"}'
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://ops:s3cret@127.0.0.1:{server.server_address[1]}"
        problem = registry_problem(ModelRegistry(tracking_uri=uri, request_retries=0))
    finally:
        server.shutdown()
    assert problem is not None
    assert_says(
        problem, "http://ops:***@127.0.0.1", "refused the request", "no access", "MLFLOW_TRACKING_PASSWORD"
    )
    assert "s3cret" not in problem


def test_the_command_line_stops_before_any_step_when_the_server_is_down(monkeypatch, capsys) -> None:
    from pipelines.materialize import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    assert main(["registered_adapter"]) == 2
    assert_says(
        capsys.readouterr().err, "nothing was run", "127.0.0.1", "cannot be reached", "tried 2 time(s)"
    )


def test_the_preflight_refuses_a_registry_file_that_is_no_database(tmp_path: Path) -> None:
    from assets.preflight import registry_problem

    (tmp_path / "mlflow.db").write_text("not a database\n")
    problem = registry_problem(_registry(tmp_path))
    assert problem is not None
    assert_says(problem, str(tmp_path / "mlflow.db"), "cannot be read", "backup")
    assert registry_problem(_registry(tmp_path / "fresh")) is not None  # its folder does not exist
    (tmp_path / "fresh").mkdir()
    assert registry_problem(_registry(tmp_path / "fresh")) is None  # MLflow creates the file


# ---------------------------------------------------------------- a locked SQLite file
def test_calls_are_retried_while_the_database_is_locked(tmp_path: Path) -> None:
    registry = _registry(tmp_path, lock_wait_s=10)
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    assert registry.guarded(flaky) == "done" and len(calls) == 3

    def locked() -> None:
        calls.append(1)
        raise sqlite3.OperationalError("database is locked")

    calls.clear()
    with pytest.raises(RegistryUnavailable, match=f"{tmp_path / 'mlflow.db'} stayed locked for 1 s"):
        _registry(tmp_path, lock_wait_s=1).guarded(locked)
    assert len(calls) == 2  # tried, waited 0.5 s, tried again; a third try would end past the bound


def test_a_locked_database_is_waited_for_until_its_holder_lets_go(
    project: Path, hold_lock, monkeypatch
) -> None:
    registry = _registry(project, lock_wait_s=30)
    _champion(registry, project)
    monkeypatch.setattr("resources.registry._repointed", set())  # a new process opens it afresh
    holder = hold_lock(project / "mlflow.db", 2)
    assert registry.champion(NAME)["version"] == "1"
    returned = time.time()
    released = float(holder.stdout.readline())
    assert returned >= released  # it waited for the lock, then read the champion


def test_a_database_locked_past_the_bound_fails_naming_the_file_and_its_holder(
    project: Path, hold_lock, monkeypatch
) -> None:
    registry = _registry(project)
    _champion(registry, project)
    monkeypatch.setattr("resources.registry._repointed", set())
    holder = hold_lock(project / "mlflow.db", 120)
    with pytest.raises(RegistryUnavailable) as caught:
        _registry(project, lock_wait_s=2).champion(NAME)
    assert_says(
        str(caught.value),
        f"{project / 'mlflow.db'} stayed locked for 2 s",
        f"pid {holder.pid}",
        "let it finish",
    )
    holder.kill()
    holder.wait()
    assert registry.champion(NAME)["version"] == "1"  # nothing moved


@pytest.mark.slow
def test_a_lock_held_through_mlflows_own_busy_timeout_is_bounded_and_named(project: Path, hold_lock) -> None:
    """The lock taken after the database was opened: MLflow's session waits its 20 s busy timeout,
    then our bound ends it with the same message."""
    registry = _registry(project, lock_wait_s=1)
    registry.champion(NAME)  # opened (and repointed) before the lock is taken
    holder = hold_lock(project / "mlflow.db", 120)
    with pytest.raises(RegistryUnavailable, match=f"pid {holder.pid}"):
        registry.champion(NAME)


# ---------------------------------------------------------------- a champion whose files are gone
@pytest.fixture(scope="module")
def lora_adapter(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real LoRA adapter on the tiny base (random A and B, so it changes the model), with its record."""
    import torch
    from peft import LoraConfig, get_peft_model

    from assets.shared.training_record import TrainingRecord
    from resources.model_loading import load_causal_lm

    out = tmp_path_factory.mktemp("lora") / "adapter"
    torch.manual_seed(0)
    model = load_causal_lm(tiny_base, quantization=None, dtype="float32", device="cpu")
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(out)
    TrainingRecord(
        settings={"quantization": None, "max_seq_length": 64},
        base_model={"source": "embedded"},
        method="lora",
    ).write(out)
    return out


def test_the_gate_judges_a_report_made_against_the_base_because_the_champions_files_were_gone() -> None:
    from assets.registry.promotion import evaluate_gate
    from tests.test_gate import make_report, noisy

    champion = {"version": "1", "tags": {"adapter_md5": "old", "base_model_md5": "B"}}
    base = noisy(3.0, 30, seed=1)
    report = make_report(base, [x - 0.5 for x in base])  # a clear improvement over the base
    report.update(adapter_md5="candidate", base_model_md5="B")
    gate = {k: v for k, v in section("registry").items() if k != "model_name"}
    record = {"name": NAME, "version": "2", "tags": {"adapter_md5": "candidate"}, "gate": gate}

    # A report against the base while the champion (same base) can be scored is refused, as before ...
    decision, _ = evaluate_gate(record, report, champion)
    assert not decision.passed and "another reference" in decision.verdict
    # ... but not when the evaluation found the champion's files gone: same reference, judged on merit,
    # and the promotion's compare-and-set is against the broken champion.
    decision, against = evaluate_gate(record, {**report, "champion_artifacts_missing": "1"}, champion)
    assert decision.passed and decision.reference == "base" and against == "1"


@pytest.mark.slow
def test_evaluation_falls_back_to_the_base_when_the_champions_files_are_gone_and_the_gate_agrees(
    project: Path, tiny_base: Path, lora_adapter: Path
) -> None:
    from assets.registry.promotion import evaluate_gate

    store = store_at(project)
    write_base(project, tiny_base)
    write_examples(project, "test_split", example_rows(3))
    shutil.copytree(lora_adapter, store.path("adapter"))
    registry = _registry(project)
    champion = _champion(registry, project, base_md5=store.md5("base_model"))
    _delete_artifacts(registry, champion)

    instance = dg.DagsterInstance.ephemeral()
    config = {"model_name": NAME, "max_examples": 1, "max_new_tokens": 2}
    result = _materialize(project, ["evaluation_report"], registry, config, instance=instance)
    assert result.success
    report = store.read_json("evaluation_report")
    assert report["reference"] == "base" and report["champion_artifacts_missing"] == "1"
    assert set(report["models"]) == {"base", "candidate"}
    [materialization] = result.asset_materializations_for_node("evaluation_report")
    assert materialization.metadata["reference"].value == "base (champion v1 artifacts missing)"
    warnings = [
        e.user_message
        for e in instance.all_logs(result.run_id)
        if e.level == 30 and "artifacts missing" in e.message
    ]
    assert warnings and "python -m pipelines.registry repair" in warnings[0], warnings
    assert registry.champion(NAME)["version"] == "1"  # evaluation moves no alias

    # The gate judges the candidate against the same reference the report used (the base), so the run
    # is not refused as "made against another reference".
    gate = {k: v for k, v in section("registry").items() if k != "model_name"}
    record = {"name": NAME, "version": "2", "tags": {"adapter_md5": report["adapter_md5"]}, "gate": gate}
    decision, against = evaluate_gate(record, report, registry.champion(NAME))
    assert decision.reference == "base" and against == "1"
    assert "another reference" not in decision.verdict


def test_the_repair_command_moves_the_alias_to_the_newest_earlier_champion_with_files(
    project: Path, monkeypatch, capsys
) -> None:
    import pipelines.registry as cli

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    registry = _registry(project)
    first = _champion(registry, project, content="one")
    rejected, _ = registry.register_once(
        NAME, _adapter_dir(project, "two"), tags={"adapter_md5": "two"}, metrics={}, params={}
    )
    registry.tag(NAME, rejected["version"], "promotion", "rejected")
    third = _champion(registry, project, content="three")
    assert (registry.champion(NAME)["version"], registry.previous(NAME)["version"]) == ("3", "1")

    _delete_artifacts(registry, third)
    assert cli.main(["--name", NAME, "repair"]) == 0
    out = capsys.readouterr().out
    assert_says(
        out, "version 3 lost its registry files", "champion: version 1", "pipelines.materialize merged_model"
    )
    assert registry.champion(NAME)["version"] == "1"  # the rejected version 2 never becomes champion
    assert registry.previous(NAME) is None
    tags = registry.version(NAME, "3")["tags"]
    assert (tags["artifacts"], tags["promotion"]) == ("missing", "artifacts_missing")
    assert registry.version(NAME, "2")["tags"]["promotion"] == "rejected"

    assert cli.main(["--name", NAME, "repair"]) == 0
    assert "nothing to repair: champion version 1 has its files" in capsys.readouterr().out

    _delete_artifacts(registry, first)
    assert cli.main(["--name", NAME, "repair"]) == 0
    assert "champion alias was removed" in capsys.readouterr().out
    assert registry.champion(NAME) is None  # the next candidate faces the base model
    assert cli.main(["--name", NAME, "repair"]) == 0
    assert "has no champion" in capsys.readouterr().out


def test_the_commands_report_an_unreachable_registry_in_one_line(monkeypatch, capsys) -> None:
    import pipelines.registry as cli

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert cli.main(["--name", NAME, "repair"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the registry at http://127.0.0.1:") and "Traceback" not in err


# ------------------------------------------------ issue 7: bad inputs leave everything as it was
@pytest.fixture
def exported(project: Path, tiny_base: Path) -> tuple[Path, ModelRegistry]:
    """A project with a champion (version 1, on the current base) and its export on disk."""
    store = store_at(project)
    write_base(project, tiny_base)
    write_examples(project, "test_split", example_rows(2))
    registry = _registry(project)
    _champion(registry, project, base_md5=store.md5("base_model"))
    export = store.path("merged_model")
    export.mkdir(parents=True)
    (export / "champion.json").write_text('{"version": "1"}\n')
    store.write_json("registered_adapter", {"name": NAME, "version": "1"})
    return project, registry


def _unchanged(project: Path, registry: ModelRegistry) -> None:
    export = store_at(project).path("merged_model")
    assert [p.name for p in export.iterdir()] == ["champion.json"]
    assert json.loads((export / "champion.json").read_text()) == {"version": "1"}
    assert registry.champion(NAME)["version"] == "1"


def test_export_with_an_unreachable_registry(exported: tuple[Path, ModelRegistry]) -> None:
    project, registry = exported
    result = _materialize(project, ["merged_model"], unreachable())
    description = failure_description(result, "merged_model")
    assert_says(description, "http://ops:***@127.0.0.1:", "cannot be reached", "connection refused")
    assert "s3cret" not in description
    _unchanged(project, registry)


def test_the_gate_with_an_unreachable_registry_promotes_nothing_and_says_why() -> None:
    from assets.registry.asset import gate_result
    from tests.test_gate import make_report, noisy

    base = noisy(3.0, 30, seed=1)
    report = {**make_report(base, [x - 0.5 for x in base]), "adapter_md5": "candidate"}
    gate = {k: v for k, v in section("registry").items() if k != "model_name"}
    record = {"name": NAME, "version": "2", "tags": {"adapter_md5": "candidate"}, "gate": gate}
    check = gate_result(record, report, unreachable())
    assert not check.passed
    assert check.metadata["promotion"].value == "not promoted"
    assert_says(check.metadata["verdict"].value, "http://ops:***@127.0.0.1:", "cannot be reached")


def test_evaluation_with_an_unreachable_registry(project: Path, tiny_base: Path) -> None:
    from tests.test_failures import write_adapter

    store = store_at(project)
    write_base(project, tiny_base)
    write_examples(project, "test_split", example_rows(2))
    write_adapter(project)  # the registry is asked before any weight is read
    result = _materialize(project, ["evaluation_report"], unreachable(), {"model_name": NAME})
    assert_says(failure_description(result, "evaluation_report"), "cannot be reached", "MLFLOW_TRACKING_URI")
    assert not store.path("evaluation_report").exists()


def test_export_with_a_locked_registry_file(
    exported: tuple[Path, ModelRegistry], hold_lock, monkeypatch
) -> None:
    project, registry = exported
    monkeypatch.setattr("resources.registry._repointed", set())  # the run's process opens it afresh
    holder = hold_lock(project / "mlflow.db", 120)
    result = _materialize(project, ["merged_model"], _registry(project, lock_wait_s=1))
    assert_says(
        failure_description(result, "merged_model"), str(project / "mlflow.db"), "locked", f"pid {holder.pid}"
    )
    holder.kill()
    holder.wait()
    _unchanged(project, registry)


def test_export_of_a_champion_whose_files_are_gone_names_the_repair(
    exported: tuple[Path, ModelRegistry],
) -> None:
    project, registry = exported
    _delete_artifacts(registry, registry.champion(NAME))
    result = _materialize(project, ["merged_model"], registry)
    assert_says(
        failure_description(result, "merged_model"),
        "registry version 1",
        f"python -m pipelines.registry --name {NAME} repair",
        "last export is kept",
    )
    _unchanged(project, registry)


def test_export_of_a_champion_trained_on_another_base(exported: tuple[Path, ModelRegistry]) -> None:
    project, registry = exported
    registry.tag(NAME, "1", "base_model_md5", "another-base-md5")
    registry.tag(NAME, "1", "base_model", "acme/other-base")
    result = _materialize(project, ["merged_model"], registry)
    assert_says(
        failure_description(result, "merged_model"), "acme/other-base", "not on the current base_model"
    )
    export = store_at(project).path("merged_model")
    assert json.loads((export / "champion.json").read_text()) == {"version": "1"}
    assert registry.champion(NAME)["version"] == "1"


def test_registration_with_an_evaluation_report_for_another_adapter(
    exported: tuple[Path, ModelRegistry], tiny_base: Path
) -> None:
    from tests.test_failures import _write_registration_inputs

    project, registry = exported
    shutil.rmtree(store_at(project).path("base_model"))  # written again by the helper, same bytes
    _write_registration_inputs(project, tiny_base)
    versions = len(registry.client().search_model_versions(f"name='{NAME}'"))
    metrics = {"perplexity": 10.0, "rougeL": 0.1, "bleu": 1.0, "answer_exact_match": 0.0, "n_examples": 1}
    store_at(project).write_json(
        "evaluation_report",
        {
            "adapter_md5": "another-adapter",
            "registry_model_name": NAME,
            "reference": "champion",
            "models": {"base": metrics, "candidate": metrics},
        },
    )
    result = _materialize(project, ["registered_adapter"], registry, {"model_name": NAME})
    assert_says(
        failure_description(result, "registered_adapter"), "another adapter", "materialize evaluation_report"
    )
    assert len(registry.client().search_model_versions(f"name='{NAME}'")) == versions
    _unchanged(project, registry)
