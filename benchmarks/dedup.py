"""Near-duplicate detection on planted support-desk rows: speed, peak memory, recall and precision of the
clean stage's dedup against plain datasketch MinHashLSH baselines, each run in its own process.

    .venv/bin/python benchmarks/dedup.py [--rows 100000] [--million] [--no-baselines]
                                         [--out benchmarks/results/dedup.json]

The rows come from :mod:`benchmarks.planted` (English, Chinese and Japanese support-desk rows, a copy of
30% of them with one kind of edit each, 10% templated rows that must all be kept). Methods:

- ``ours``: :func:`assets.shared.neardup.find_near_duplicates` (the engine of the clean stage's dedup and
  of the split's groups and leakage check) with the ``clean`` settings of params.yaml;
- ``datasketch_words``: the baseline. datasketch ``MinHash`` + ``MinHashLSH`` with its defaults
  (128 permutations, threshold 0.8), word 5-grams of the normalized text, the first row of a bucket kept,
  no verification: what a plain library dedup does;
- ``datasketch_chars``: the same on our character 5-grams at our threshold, without our verification and
  rules, to tell the shingles' effect from the rules'.

``--million`` runs 1M rows (ours only, unless ``--baselines`` is given too). Throughput counts the dedup
alone, not building the rows; peak RSS is each process's (the planted rows included). Prints a table with
each figure as a ratio to the baseline and writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.planted import planted_set, score
from benchmarks.results import machine_facts, write_results

DUPLICATE_FRACTION = 0.3
SEED = 11
BASELINE = "datasketch_words"


def _rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ours(planted, settings: dict) -> dict[int, int]:
    from assets.shared.neardup import ConversationParts, find_near_duplicates

    report = find_near_duplicates(
        planted.texts(),
        threshold=settings["near_dup_threshold"],
        num_permutations=settings["minhash_permutations"],
        shingle_size=settings["shingle_size"],
        parts=ConversationParts(planted.conversations),
    )
    return {index: near.kept_index for index, near in report.duplicates.items()}


def _datasketch(planted, *, shingles: str, threshold: float, size: int) -> dict[int, int]:
    """Query, then insert: a row that finds an indexed row is a duplicate of the earliest one found."""
    from datasketch import MinHash, MinHashLSH

    from assets.shared.shingles import comparison_text, shingle_set
    from assets.shared.text import normalize_text

    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    found: dict[int, int] = {}
    for index, text in enumerate(planted.texts()):
        if shingles == "words":
            words = normalize_text(text).split()
            grams = {" ".join(words[i : i + size]) for i in range(max(len(words) - size + 1, 1))}
        else:
            grams = set(shingle_set(comparison_text(text), size))
        minhash = MinHash(num_perm=128)
        minhash.update_batch([gram.encode("utf-8") for gram in grams])
        matches = lsh.query(minhash)
        if matches:
            found[index] = min(matches)
        else:
            lsh.insert(index, minhash, check_duplication=False)
    return found


def run_one(method: str, rows: int) -> dict:
    """Build the planted rows, run one method, and measure it (in this process)."""
    from assets.params import section

    settings = section("clean")
    planted = planted_set(
        round(rows / (1 + DUPLICATE_FRACTION)), duplicate_fraction=DUPLICATE_FRACTION, seed=SEED
    )
    rss_rows = _rss_mb()
    start, cpu_start = time.perf_counter(), time.process_time()
    if method == "ours":
        found = _ours(planted, settings)
    elif method == "datasketch_words":
        found = _datasketch(planted, shingles="words", threshold=0.8, size=5)
    else:
        found = _datasketch(
            planted, shingles="chars", threshold=settings["near_dup_threshold"], size=settings["shingle_size"]
        )
    seconds = time.perf_counter() - start
    # CPU time too: the machine is shared, so wall time depends on what else runs.
    cpu_seconds = time.process_time() - cpu_start
    scores = score(planted, found)
    return {
        "method": method,
        "rows": len(planted.clusters),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "rows_per_s": round(len(planted.clusters) / seconds),
        "peak_rss_mb": round(_rss_mb()),
        "rss_with_rows_mb": round(rss_rows),
        "recall": round(scores.recall, 4),
        "precision": round(scores.precision, 4),
        "planted_duplicates": scores.true_duplicates,
        "flagged": scores.flagged,
        "recall_by_kind": {kind: round(value, 4) for kind, value in scores.recall_by_kind.items()},
        "false_positives_by_kind": scores.false_positives_by_kind,
    }


def _child(method: str, rows: int) -> dict:
    command = [sys.executable, __file__, "--child", method, "--rows", str(rows)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(results: list[dict]) -> str:
    base = next((r for r in results if r["method"] == BASELINE), None)
    lines = ["| method | rows | rows/s | peak RSS MB | recall | precision | vs baseline (speed, RSS) |"]
    lines.append("|---|---|---|---|---|---|---|")
    for r in results:
        ratio = "n/a"
        if base is not None and base["rows"] == r["rows"]:
            ratio = (
                f"{r['rows_per_s'] / base['rows_per_s']:.2f}x, {r['peak_rss_mb'] / base['peak_rss_mb']:.2f}x"
            )
        lines.append(
            f"| {r['method']} | {r['rows']} | {r['rows_per_s']} | {r['peak_rss_mb']} | {r['recall']:.4f} | "
            f"{r['precision']:.4f} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the planted set (about)")
    parser.add_argument("--million", action="store_true", help="also run 1M rows (ours only)")
    parser.add_argument("--baselines", action="store_true", help="run the baselines at 1M rows too")
    parser.add_argument("--no-baselines", action="store_true", help="run ours only")
    parser.add_argument("--out", default="benchmarks/results/dedup.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.rows)))
        return 0

    methods = ["ours"] if args.no_baselines else ["ours", BASELINE, "datasketch_chars"]
    runs = [(method, args.rows) for method in methods]
    if args.million:
        runs += [(method, 1_000_000) for method in (methods if args.baselines else ["ours"])]
    results = []
    for method, rows in runs:
        print(f"running {method} on {rows} rows ...", file=sys.stderr, flush=True)
        results.append(_child(method, rows))
    figures = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_facts(),
        "planted": {"duplicate_fraction": DUPLICATE_FRACTION, "templated_fraction": 0.1, "seed": SEED},
        "baseline": BASELINE,
        "results": results,
    }
    print(_table(results))
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    out = Path(args.out)
    write_results(figures, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
