"""Wall time and peak memory of the whole graph on the sample data, and of loading the definitions.

    .venv/bin/python benchmarks/pipeline_timing.py [--out benchmarks/results/pipeline_timing.json]
    .venv/bin/python benchmarks/pipeline_timing.py --raw-path ../shared/data/oasst2/oasst2_filtered.jsonl \
        --out benchmarks/results/pipeline_timing_oasst2.json

Runs in a throwaway copy of the project (as a fresh clone, default params.yaml) so nothing here is
touched. Prints the figures and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import write_results
from pipelines.workspace import copy_project, run_in


def step_durations(root: Path) -> dict[str, float]:
    """Seconds per step of the latest run, from the Dagster event log."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(root / ".dagster")) as instance:
        run = instance.get_runs(limit=1)[0]
        stats = instance.get_run_step_stats(run.run_id)
    return {s.step_key: round(s.end_time - s.start_time, 2) for s in stats if s.end_time and s.start_time}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/results/pipeline_timing.json")
    parser.add_argument("--raw-path", help="another input file (data.raw_path), e.g. the oasst2 trees")
    args = parser.parse_args()

    overrides = {"data": {"raw_path": str(Path(args.raw_path).resolve())}} if args.raw_path else None
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        root = copy_project(Path(tmp), overrides)
        loads = []
        for _ in range(3):
            start = time.perf_counter()
            run_in(root, [sys.executable, "-c", "import pipelines.definitions"]).check_returncode()
            loads.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = run_in(root, [sys.executable, "-m", "pipelines.materialize", "--all"])
        wall = time.perf_counter() - start
        if result.returncode != 0:
            print(result.stderr[-4000:], file=sys.stderr)
            return 1
        steps = step_durations(root)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figures = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "definitions_load_s": {
            "median": round(statistics.median(loads), 2),
            "runs": [round(x, 2) for x in loads],
        },
        "raw_path": args.raw_path or "data/sample/examples.jsonl (default)",
        "full_pipeline_wall_s": round(wall, 1),
        "peak_rss_mb": round(peak_mb),
        "step_seconds": steps,
    }
    print(json.dumps(figures, indent=2))
    out = Path(args.out)
    write_results(figures, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
