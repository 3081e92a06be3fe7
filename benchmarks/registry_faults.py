"""How long a registry fault takes to be reported, and how: ours against MLflow's defaults, same script.

    .venv/bin/python benchmarks/registry_faults.py [--skip-baseline]

1. A tracking server that cannot be reached (a closed local port): ``ModelRegistry.champion`` with the
   resource's defaults (15 s timeout, 2 retries, backoff 1) against the same call with MLflow's own
   settings (120 s, 7 retries, backoff 2: the baseline, about four minutes).
2. A locked ``mlflow.db`` (another process holds ``BEGIN EXCLUSIVE`` throughout): a fresh process's
   first registry call with the default ``lock_wait_s`` against a plain ``MlflowClient`` (the baseline).

Each call runs in a fresh interpreter (as a new run would) and is timed there, imports excluded. Prints
the figures and the ratio, and writes benchmarks/results/registry_faults.json.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import machine_facts, write_results  # noqa: E402

# Times one call in a child interpreter; prints {"seconds", "error", "message"} as JSON.
CHILD = """
import json, sys, time
kind, uri, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
import mlflow
from resources.registry import ModelRegistry
if kind == "ours":
    call = lambda: ModelRegistry(tracking_uri=uri, **settings).champion("m")
else:
    call = lambda: mlflow.MlflowClient(uri, uri).search_registered_models(max_results=1)
start = time.perf_counter()
try:
    call()
    error, message = None, ""
except Exception as exc:
    error, message = type(exc).__name__, str(exc)
seconds = round(time.perf_counter() - start, 1)
print(json.dumps({"seconds": seconds, "error": error, "message": message[:400]}))
"""
HOLD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(3600)
"""
MLFLOW_DEFAULTS = {"request_timeout_s": 120, "request_retries": 7, "request_backoff_factor": 2}


def timed(kind: str, uri: str, settings: dict | None = None) -> dict:
    """Run one call in a fresh interpreter without MLflow's HTTP variables; its time and error."""
    import os

    child_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST_")}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, uri, json.dumps(settings or {})],
        cwd=ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{kind} {uri} {settings or ''}: {result['seconds']} s, {result['error']}", flush=True)
    return result


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-baseline", action="store_true", help="only ours (the baseline takes ~5 min)")
    args = parser.parse_args()
    figures: dict = {"machine": machine_facts(), "date": time.strftime("%Y-%m-%d")}

    uri = f"http://127.0.0.1:{closed_port()}"
    figures["unreachable_ours"] = timed("ours", uri)
    if not args.skip_baseline:
        figures["unreachable_mlflow_defaults"] = timed("ours", uri, MLFLOW_DEFAULTS)

    with tempfile.TemporaryDirectory(prefix="registry-bench-") as tmp:
        db = Path(tmp) / "mlflow.db"
        timed("baseline", f"sqlite:///{db}")  # creates the schema, unlocked
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            figures["locked_ours"] = timed("ours", f"sqlite:///{db}")
            if not args.skip_baseline:
                figures["locked_mlflow_client"] = timed("baseline", f"sqlite:///{db}")
        finally:
            holder.kill()
            holder.wait()

    for key in ("unreachable_ours", "unreachable_mlflow_defaults", "locked_ours", "locked_mlflow_client"):
        if key in figures:
            result = figures[key]
            print(f"{key:<30} {result['seconds']:>7.1f} s  {result['error']}: {result['message'][:160]}")
    if "unreachable_mlflow_defaults" in figures:
        ratio = figures["unreachable_mlflow_defaults"]["seconds"] / max(
            figures["unreachable_ours"]["seconds"], 0.1
        )
        figures["unreachable_speedup"] = round(ratio, 1)
        print(f"an unreachable server is reported {ratio:.0f}x sooner than with MLflow's defaults")
    write_results(figures, ROOT / "benchmarks" / "results" / "registry_faults.json")


if __name__ == "__main__":
    main()
