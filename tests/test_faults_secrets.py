"""A password in MLFLOW_TRACKING_URI never leaves the environment: not in the Dagster event log, run
storage (the resource config the UI shows), compute logs, metadata, or the terminal of a CLI run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dagster as dg
import pytest

from resources.registry import ModelRegistry, tracking_uri_from_env
from resources.secrets import move_tracking_credentials, redact, split_credentials

PASSWORD = "s3cret-Pa55word"
SECRET_URI = f"http://alice:{PASSWORD}@127.0.0.1:9/"  # nothing listens on the discard port


def test_redact_hides_every_password_in_a_text() -> None:
    text = f"API request to {SECRET_URI}api/2.0/x failed; also https://tok3n@h.example/a and sqlite:///m.db"
    assert redact(text) == (
        "API request to http://alice:***@127.0.0.1:9/api/2.0/x failed; also https://***@h.example/a "
        "and sqlite:///m.db"
    )


def test_split_credentials_decodes_and_keeps_the_rest() -> None:
    assert split_credentials("https://a%40b:p%2Fw@host:5000/p?q=1") == (
        "https://host:5000/p?q=1",
        "a@b",
        "p/w",
    )
    assert split_credentials("http://[::1]:5000") == ("http://[::1]:5000", None, None)
    assert split_credentials("https://u:p@[::1]:5000/")[0] == "https://[::1]:5000/"


def test_credentials_move_to_mlflows_auth_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", SECRET_URI)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    uri = tracking_uri_from_env()
    assert isinstance(uri, dg.EnvVar)  # the UI shows the variable's name only
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:9/"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == PASSWORD
    # MLflow still authenticates with them.
    client = ModelRegistry(tracking_uri=os.environ["MLFLOW_TRACKING_URI"]).client()
    creds = client._tracking_client.store.get_host_creds()
    assert (creds.host, creds.username, creds.password) == ("http://127.0.0.1:9/", "alice", PASSWORD)
    move_tracking_credentials()  # idempotent
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == PASSWORD


def test_a_failing_registry_call_leaves_no_password_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", SECRET_URI)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")

    @dg.asset(required_resource_keys={"registry"})
    def champion_lookup(context) -> None:  # no annotation: this module postpones them
        context.log.info(f"asking {context.resources.registry.tracking_uri}")
        context.resources.registry.champion("m")

    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        result = dg.materialize(
            [champion_lookup],
            instance=instance,
            resources={"registry": ModelRegistry(tracking_uri=tracking_uri_from_env())},
            raise_on_error=False,
        )
        assert not result.success
        records = instance.get_records_for_run(result.run_id).records
        logged = "\n".join(repr(record.event_log_entry) for record in records)
        assert "127.0.0.1:9" in logged  # the failure and the URI are reported ...
        assert PASSWORD not in logged  # ... without the password
        from dagster._serdes import serialize_value

        run = instance.get_run_by_id(result.run_id)
        assert PASSWORD not in serialize_value(instance.get_job_snapshot(run.job_snapshot_id))
    out, err = capfd.readouterr()
    assert "127.0.0.1:9" in out + err
    assert PASSWORD not in out + err
    stored = [p for p in home.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]
    assert stored == []


@pytest.mark.slow
def test_a_cli_run_with_a_secret_uri_shows_and_stores_no_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI path: the run's snapshot (with the registry's resource config), event log, compute logs
    and terminal output never hold the password."""
    from pipelines.workspace import copy_project

    root = copy_project(tmp_path / "project")
    import subprocess

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PIPELINE_ROOT", "DVC_STAGE", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    }
    env.update(
        PYTHONPATH=str(root),
        DAGSTER_HOME=str(root / ".dagster"),
        HF_HUB_OFFLINE="1",
        MLFLOW_TRACKING_URI=SECRET_URI,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.materialize", "raw_examples"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert PASSWORD not in done.stdout + done.stderr
    stored = [
        p for p in (root / ".dagster").rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()
    ]
    assert stored == []
    # Run storage compresses snapshots, so read them through the instance: the run's job snapshot holds
    # the registry's resource config as the variable's name.
    from dagster._serdes import serialize_value

    monkeypatch.setenv("DAGSTER_HOME", str(root / ".dagster"))
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs()
        snapshot = serialize_value(instance.get_job_snapshot(run.job_snapshot_id))
        events = "\n".join(repr(r.event_log_entry) for r in instance.get_records_for_run(run.run_id).records)
    assert "MLFLOW_TRACKING_URI" in snapshot
    assert PASSWORD not in snapshot + events + repr(run)
