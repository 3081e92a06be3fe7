"""Ingest of a large JSONL file: rows/s and peak RSS of the streamed raw_examples path against the
load-everything path, at several file sizes, each run in its own process.

    .venv/bin/python benchmarks/ingest.py [--sizes-mb 50 300] [--methods streamed whole]
                                          [--dir /tmp] [--out benchmarks/results/ingest.json]

The file is synthetic and deterministic (a fixed seed): alpaca and chat rows of about 1 KB, one in ten
holding an e-mail address, a phone number or a card number, without timestamps (``row_order``). Methods,
with the ``data`` settings of params.yaml (PII redaction on):

- ``streamed``: what the raw_examples asset does: :func:`assets.ingest.normalize.normalize_chunks`, one
  Arrow table per chunk, :meth:`resources.artifacts.ArtifactStore.write_dataset_stream`;
- ``whole``: the baseline, the path before streaming: every normalized row in one list
  (:func:`assets.ingest.normalize.normalize_file`), one ``Dataset`` of them, one Parquet write. (The old
  reader also held the whole file's text in memory while reading; this baseline does not, so its RSS is
  if anything below the old path's.)

Throughput counts the ingest alone, not writing the synthetic file, by the wall clock and by the
process's CPU time (steadier on a machine shared with other work). Peak RSS is each process's (the
interpreter and pyarrow included). Prints a table with ratios to the baseline at each size and writes the
JSON. A 2 GB run: ``--sizes-mb 2000 --methods streamed`` (the baseline would need tens of GB).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import machine_facts, write_results

SEED = 5
BASELINE = "whole"
WORDS = tuple(
    [
        "account",
        "billing",
        "order",
        "refund",
        "password",
        "login",
        "error",
        "update",
        "install",
        "network",
        "printer",
        "invoice",
        "shipping",
        "delivery",
        "warranty",
        "screen",
        "battery",
        "laptop",
        "phone",
        "email",
        "server",
        "backup",
        "restore",
        "license",
        "customer",
        "support",
        "ticket",
        "please",
        "thanks",
        "issue",
        "problem",
        "working",
        "again",
        "since",
        "yesterday",
        "morning",
        "could",
        "would",
        "should",
        "settings",
        "menu",
        "button",
        "click",
        "open",
        "close",
        "restart",
        "device",
        "version",
        "upgrade",
    ]
)
PII = ("reach me at jane.doe{n}@gmail.com", "my phone is +44 20 7946 {n:04d}", "card 4111 1111 1111 1111")


def write_synthetic(path: Path, size_mb: int) -> int:
    """Write rows to ``path`` until it holds ``size_mb`` MB; returns the number of rows."""
    rng = random.Random(SEED)
    target = size_mb * 1_000_000
    written = rows = 0
    with path.open("w", encoding="utf-8") as handle:
        while written < target:
            question = " ".join(rng.choices(WORDS, k=rng.randint(20, 60)))
            answer = " ".join(rng.choices(WORDS, k=rng.randint(60, 160)))
            if rows % 10 == 0:
                question += ", " + PII[rows // 10 % len(PII)].format(n=rows % 10_000)
            if rows % 2:
                row = {"id": f"r{rows}", "instruction": question, "input": "", "output": answer}
            else:
                turns = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
                row = {"id": f"r{rows}", "messages": turns}
            line = json.dumps(row) + "\n"
            handle.write(line)
            written += len(line.encode("utf-8"))
            rows += 1
    return rows


def _rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(method: str, path: Path) -> dict:
    from assets.ingest.normalize import normalize_chunks, normalize_file
    from assets.ingest.settings import IngestOptions
    from assets.params import section, settings_from
    from assets.shared.schema import raw_features, to_dataset
    from assets.stages import ARTIFACTS
    from resources.artifacts import ArtifactStore

    data = section("data")
    options = settings_from(IngestOptions, data)
    store = ArtifactStore(path.parent / f"store-{method}", ARTIFACTS)
    features = raw_features()
    rss_start = _rss_mb()
    cpu_start = time.process_time()
    start = time.perf_counter()
    if method == "streamed":
        chunks = normalize_chunks(path, max_chars=data["max_chars"], options=options)
        tables = (to_dataset(chunk, features).data.table for chunk in chunks)
        written = store.write_dataset_stream("raw_examples", features.arrow_schema, tables)
    else:
        rows = normalize_file(path, max_chars=data["max_chars"], options=options)
        written = store.write_dataset("raw_examples", to_dataset(rows, features))
        del rows
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    import pyarrow.parquet as pq

    count = pq.ParquetFile(written).metadata.num_rows
    written.unlink()
    return {
        "method": method,
        "file_mb": round(path.stat().st_size / 1e6, 1),
        "rows": count,
        "seconds": round(seconds, 1),
        "rows_per_s": round(count / seconds),
        # CPU seconds of the process: on a shared machine, steadier than the wall clock
        "cpu_s": round(cpu, 1),
        "rows_per_cpu_s": round(count / cpu),
        "mb_per_s": round(path.stat().st_size / 1e6 / seconds, 2),
        "peak_rss_mb": round(_rss_mb()),
        "rss_before_mb": round(rss_start),
    }


def _child(method: str, path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", method, "--path", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(results: list[dict]) -> str:
    lines = [
        "| file MB | method | rows | wall s | rows/s | MB/s | CPU s | rows/CPU s | peak RSS MB "
        "| vs baseline (rows/CPU s, RSS) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        base = next((b for b in results if b["method"] == BASELINE and b["file_mb"] == r["file_mb"]), None)
        ratio = (
            f"{r['rows_per_cpu_s'] / base['rows_per_cpu_s']:.2f}x, "
            f"{r['peak_rss_mb'] / base['peak_rss_mb']:.2f}x"
            if base
            else "-"
        )
        lines.append(
            f"| {r['file_mb']} | {r['method']} | {r['rows']} | {r['seconds']} | {r['rows_per_s']} | "
            f"{r['mb_per_s']} | {r['cpu_s']} | {r['rows_per_cpu_s']} | {r['peak_rss_mb']} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[50, 300])
    parser.add_argument("--methods", nargs="+", default=["streamed", "whole"], choices=["streamed", "whole"])
    parser.add_argument("--dir", default=None, help="where the synthetic files go (default: a temp dir)")
    parser.add_argument("--out", default="benchmarks/results/ingest.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, Path(args.path))))
        return 0
    results = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for size in args.sizes_mb:
            path = Path(tmp) / f"synthetic-{size}mb.jsonl"
            rows = write_synthetic(path, size)
            print(f"{size} MB: {rows} rows written to {path}", flush=True)
            for method in args.methods:
                results.append(_child(method, path))
                print(json.dumps(results[-1]), flush=True)
            path.unlink()
    figures = {
        "benchmark": "ingest",
        "machine": machine_facts(),
        "date": time.strftime("%Y-%m-%d"),
        "baseline": BASELINE,
        "results": results,
    }
    print(_table(results))
    out = Path(args.out)
    write_results(figures, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
