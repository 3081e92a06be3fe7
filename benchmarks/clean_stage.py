"""The whole clean stage, cleanlab on, at n and 2n synthetic rows: how its time grows, and where it goes.

    .venv/bin/python benchmarks/clean_stage.py [--rows 20000] [--out benchmarks/results/clean_stage.json]

Runs :func:`assets.clean.pipeline.clean_rows` with the ``clean`` settings of params.yaml (cleanlab on, label
issues and drift checked) on ``--rows`` and twice as many synthetic rows, each size in a fresh process so
that one run's memory and caches do not touch the other's. Prints the time ratio (2n over n; 2.0 is
linear, the target is at most 2.3) in wall-clock and in CPU time, each step's share of the stage time
(the cleanlab pass also split into its phases: embedding, kNN graph, Datalab, label classifier, drift)
and the peak RSS, and writes them as JSON.

The rows are support-desk questions and answers in a handful of categories, each category with its own
vocabulary; timestamps span a year over which the mix of categories changes; a few rows are planted
copies (exact or with one word changed) and a few carry the wrong category (their ``source`` says so, and
the label check is scored against it). One seeded generator: the same
arguments give the same rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assets.clean import pipeline
from assets.clean.pipeline import CleanSettings, clean_rows
from assets.params import section, settings_from
from benchmarks.results import machine_facts, write_results

TARGET_RATIO = 2.3
START = datetime(2025, 1, 1, tzinfo=UTC)
# Share of rows planted as copies of an earlier row, and share given another category's label.
COPY_SHARE = 0.03
MISLABELED_SHARE = 0.01

# Per category: the things asked about and what is done about them, so categories differ in words.
CATEGORIES = {
    "billing": (
        ("invoice", "refund", "charge", "subscription", "receipt", "payment card", "discount code", "VAT"),
        ("reissue", "cancel", "dispute", "split", "download", "update", "apply", "verify"),
    ),
    "shipping": (
        ("parcel", "delivery", "courier", "tracking number", "return label", "pallet", "customs form"),
        ("reroute", "track", "collect", "hold", "return", "insure", "redeliver", "label"),
    ),
    "account": (
        ("password", "login", "two-factor code", "username", "profile", "email address", "session"),
        ("reset", "unlock", "merge", "rename", "delete", "recover", "sign out of", "confirm"),
    ),
    "hardware": (
        ("router", "printer", "battery", "charger", "keyboard", "monitor", "fan", "hard drive"),
        ("replace", "reboot", "calibrate", "clean", "mount", "cool down", "flash", "rewire"),
    ),
    "software": (
        ("update", "plugin", "license key", "crash report", "installer", "cache", "driver", "extension"),
        ("reinstall", "roll back", "patch", "configure", "whitelist", "clear", "upgrade", "debug"),
    ),
    "travel": (
        ("flight", "hotel booking", "boarding pass", "seat", "luggage", "visa", "rental car", "itinerary"),
        ("rebook", "upgrade", "check in for", "cancel", "extend", "transfer", "confirm", "change"),
    ),
}
OPENERS = ("", "", "Hi, ", "Hello team, ", "Quick question: ", "Sorry to bother you, ")
ASKS = (
    "how do I {verb} my {thing}",
    "can you help me {verb} the {thing}",
    "what is the fastest way to {verb} a {thing}",
    "why can't I {verb} my {thing}",
    "is it possible to {verb} the {thing} today",
)
CONTEXTS = ("", " from my phone", " for a colleague", " before Friday", " on the old plan", " again")
STEPS = (
    "Open the {thing} page and choose {verb}.",
    "Our team can {verb} the {thing} for you within a day.",
    "Make sure the {thing} is listed under your name first.",
    "If the option is grey, the {thing} is still being processed.",
    "You will get a confirmation once we {verb} it.",
    "Reply with your reference {number} and we will {verb} the {thing}.",
)


SYLLABLES = ("ka", "zo", "ri", "vex", "lan", "mo", "tu", "pel", "qui", "dar", "sen", "bo", "nix", "ta", "lor")


def _product(rng: random.Random) -> str:
    """A made-up product name: what makes two tickets about one kind of thing distinct."""
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).title()


def _category_at(rng: random.Random, fraction: float) -> str:
    """Early rows lean to the first categories, late rows to the last: drift the rows' time order shows."""
    names = list(CATEGORIES)
    weights = [1.0 + 2.0 * (fraction if i >= len(names) // 2 else 1 - fraction) for i in range(len(names))]
    return rng.choices(names, weights)[0]


def synthetic_rows(count: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` raw rows as the ingest stage produces them (see the module docstring)."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    names = list(CATEGORIES)
    for index in range(count):
        fraction = index / max(count - 1, 1)
        created = START + timedelta(seconds=int(fraction * 365 * 86400))
        if rows and rng.random() < COPY_SHARE:
            source = rows[rng.randrange(len(rows))]
            messages = [dict(message) for message in source["messages"]]
            if rng.random() < 0.5:
                words = messages[0]["content"].split(" ")
                words[rng.randrange(len(words))] = rng.choice(("kindly", "please", "urgently"))
                messages[0]["content"] = " ".join(words)
            category, origin = source["category"], source["source"]
        else:
            category = _category_at(rng, fraction)
            things, verbs = CATEGORIES[category]
            slots = {
                "thing": f"{rng.choice(things)} for {_product(rng)}",
                "verb": rng.choice(verbs),
                "number": rng.randint(1000, 99999),
            }
            ask = rng.choice(ASKS).format(**slots)
            question = f"{rng.choice(OPENERS)}{ask[0].upper()}{ask[1:]}{rng.choice(CONTEXTS)}?"
            steps = [step.format(**slots) for step in rng.sample(STEPS, rng.randint(2, 3))]
            answer = f"Thanks for asking about your {slots['thing']}. " + " ".join(steps)
            messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            origin = "synthetic"
            if rng.random() < MISLABELED_SHARE:
                category = rng.choice([name for name in names if name != category])
                origin = "synthetic:mislabeled"  # the truth the label check is scored against
        rows.append(
            {
                "id": f"row-{index}",
                "messages": messages,
                "created_at": created,
                "category": category,
                "lang": "en",
                "source": origin,
                "augmented_from": None,
                "group_id": None,
                "source_file": "synthetic.jsonl",
                "source_line": index + 1,
                "raw": "{}",
                "error": None,
            }
        )
    return rows


class _PhaseTimes(logging.Handler):
    """Collects the cleanlab pass's phase timings from its log records (``phase``, ``seconds``,
    ``cpu_seconds``)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        phase = getattr(record, "phase", None)
        if phase is not None:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + float(record.seconds)
            self.cpu_seconds[phase] = self.cpu_seconds.get(phase, 0.0) + float(record.cpu_seconds)


def measure(count: int) -> dict[str, Any]:
    """Clean ``count`` synthetic rows once; the stage's seconds, per step and per cleanlab phase."""
    rows = synthetic_rows(count)
    # Import the heavy libraries first: a one-off cost of a few seconds that is not the stage's scaling.
    import cleanlab  # noqa: F401
    import sklearn.decomposition
    import sklearn.feature_extraction.text
    import sklearn.linear_model
    import sklearn.model_selection  # noqa: F401

    settings = dataclasses.replace(settings_from(CleanSettings, section("clean")), cleanlab_enabled=True)
    step_seconds: dict[str, float] = {}
    step_cpu_seconds: dict[str, float] = {}
    build_steps = pipeline.default_steps

    def timed(run: Any, name: str) -> Any:
        def wrapper(view: Any) -> Any:
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return run(view)
            finally:
                step_seconds[name] = step_seconds.get(name, 0.0) + time.perf_counter() - start
                step_cpu_seconds[name] = step_cpu_seconds.get(name, 0.0) + time.process_time() - cpu

        return wrapper

    def timed_steps(*args: Any, **kwargs: Any) -> list[Any]:
        return [dataclasses.replace(s, run=timed(s.run, s.name)) for s in build_steps(*args, **kwargs)]

    phases = _PhaseTimes()
    logger = logging.getLogger("assets.clean")
    logger.addHandler(phases)
    logger.setLevel(logging.INFO)
    pipeline.default_steps = timed_steps  # the same steps clean_rows builds, each timed
    try:
        start, cpu = time.perf_counter(), time.process_time()
        result = clean_rows(rows, settings)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    finally:
        pipeline.default_steps = build_steps
        logger.removeHandler(phases)
    # The label check against the planted truth, over the rows it saw (those that reached the cleanlab pass).
    mislabeled = {row["id"] for row in rows if row["source"] == "synthetic:mislabeled"}
    scored = {score["id"] for score in result.quality_scores if score.get("label_score") is not None}
    flagged = {score["id"] for score in result.quality_scores if score.get("suggested_category") is not None}
    planted = mislabeled & scored
    return {
        "rows": count,
        "label_issues": {
            "planted": len(planted),
            "flagged": len(flagged),
            "recall": round(len(flagged & planted) / len(planted), 4) if planted else None,
            "precision": round(len(flagged & planted) / len(flagged), 4) if flagged else None,
        },
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "step_seconds": {name: round(value, 3) for name, value in step_seconds.items()},
        "step_cpu_seconds": {name: round(value, 3) for name, value in step_cpu_seconds.items()},
        "cleanlab_phase_seconds": {name: round(value, 3) for name, value in phases.seconds.items()},
        "cleanlab_phase_cpu_seconds": {name: round(value, 3) for name, value in phases.cpu_seconds.items()},
        "kept": len(result.kept),
        "counts": result.counts,
        "notes": result.notes,
        # Linux reports ru_maxrss in KiB
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def _shares(run: dict[str, Any], clock: str = "") -> dict[str, float]:
    """Each step's and cleanlab phase's share of the stage time; ``clock`` "cpu_" for CPU time."""
    total = run[f"{clock}seconds"]
    shares = {name: value / total for name, value in run[f"step_{clock}seconds"].items()}
    phases = run[f"cleanlab_phase_{clock}seconds"]
    shares.update({f"cleanlab.{name}": value / total for name, value in phases.items()})
    return {name: round(share, 3) for name, share in shares.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=20_000, help="n; the second run has 2n rows")
    parser.add_argument("--out", default="benchmarks/results/clean_stage.json")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process: measure one size
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one)))
        return 0

    runs = []
    for count in (args.rows, 2 * args.rows):
        child = subprocess.run(
            [sys.executable, __file__, "--one", str(count)], capture_output=True, text=True, check=False
        )
        if child.returncode != 0:
            print(child.stderr, file=sys.stderr)
            return child.returncode
        runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
    ratio = runs[1]["seconds"] / runs[0]["seconds"]
    cpu_ratio = runs[1]["cpu_seconds"] / runs[0]["cpu_seconds"]
    figures = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_facts(),
        "time_ratio": round(ratio, 3),
        # CPU time of the process (all its threads): less moved by other work on a shared machine.
        "cpu_time_ratio": round(cpu_ratio, 3),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
        "shares": {str(run["rows"]): _shares(run) for run in runs},
        "cpu_shares": {str(run["rows"]): _shares(run, "cpu_") for run in runs},
        "runs": runs,
    }
    print(json.dumps(figures, indent=2))
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(
        f"clean stage: {runs[0]['rows']} rows {runs[0]['seconds']:.1f} s, {runs[1]['rows']} rows "
        f"{runs[1]['seconds']:.1f} s, ratio {ratio:.2f} ({verdict} the target <= {TARGET_RATIO}); CPU time "
        f"{runs[0]['cpu_seconds']:.1f} s and {runs[1]['cpu_seconds']:.1f} s, ratio {cpu_ratio:.2f}; load "
        f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    out = Path(args.out)
    write_results(figures, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
