"""Ingest and clean the real OpenAssistant sample: timings, peak memory and what the clean stage rejects.

    .venv/bin/python benchmarks/oasst2_clean.py [--path ../shared/data/oasst2/oasst2_filtered.jsonl]
                                                [--out benchmarks/results/oasst2_clean.json]

Uses the ``data.max_chars`` and ``clean`` settings of params.yaml. Prints the figures and writes them as
JSON, with a couple of rejected rows per reason so the verdicts can be checked by eye.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assets.clean.pipeline import CleanSettings, clean_rows
from assets.ingest.normalize import normalize_file
from assets.params import section, settings_from
from benchmarks.results import machine_facts, write_results
from resources.project import PROJECT_ROOT

DEFAULT_PATH = PROJECT_ROOT.parent / "shared" / "data" / "oasst2" / "oasst2_filtered.jsonl"
# Rejected rows shown per reason in the results, with their detail cut to this many characters.
SAMPLES_PER_REASON = 2
DETAIL_CHARS = 300


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH, help="an oasst2 trees JSONL file")
    parser.add_argument("--out", default="benchmarks/results/oasst2_clean.json")
    args = parser.parse_args()
    if not args.path.is_file():
        print(
            f"{args.path} is absent: the OpenAssistant sample ships only beside the team's checkout; "
            "pass --path to point at an oasst2 trees .jsonl file",
            file=sys.stderr,
        )
        return 2

    trees = sum(1 for line in args.path.open(encoding="utf-8") if line.strip())
    start = time.perf_counter()
    rows = normalize_file(args.path, max_chars=section("data")["max_chars"])
    ingest_s = time.perf_counter() - start
    settings = settings_from(CleanSettings, section("clean"))
    start = time.perf_counter()
    result = clean_rows(rows, settings)
    clean_s = time.perf_counter() - start

    reasons = Counter(row["reason"] for row in result.rejected)
    samples: dict[str, list[dict[str, str]]] = {}
    for row in result.rejected:
        shown = samples.setdefault(row["reason"], [])
        if len(shown) < SAMPLES_PER_REASON:
            shown.append({"id": row["id"], "detail": row["detail"][:DETAIL_CHARS]})
    figures = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_facts(),
        "input": str(args.path),
        "trees": trees,
        "rows": len(rows),
        "rows_with_ingest_errors": sum(1 for row in rows if row["error"] is not None),
        "ingest_s": round(ingest_s, 3),
        "clean_s": round(clean_s, 3),
        "kept": len(result.kept),
        "rejected": len(result.rejected),
        "rejected_by_reason": dict(sorted(reasons.items())),
        "kept_by_lang": dict(Counter(row["lang"] for row in result.kept).most_common()),
        # Linux reports ru_maxrss in KiB
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "notes": result.notes,
        "sample_rejections": samples,
    }
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    out = Path(args.out)
    write_results(figures, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
