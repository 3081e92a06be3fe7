"""Training speed and adapter bytes per ``train.num_threads``: the measurement behind its default.

    .venv/bin/python benchmarks/training_threads.py [--threads 1,2,0] [--rounds 3] [--rows 160]
        [--out benchmarks/results/training_threads.json]

Trains the embedded tiny base (QLoRA, NF4, as the default params.yaml does) on ``--rows`` synthetic
conversations of growing length (batch 8, max_seq_length 256, one epoch) once per thread setting per
round, the settings interleaved so that a shared machine's load falls on all of them alike. Prints the
median wall and CPU seconds of each setting, its ratio to the first setting (the baseline) and the md5 of
each adapter_model.safetensors: one md5 per setting when each is reproducible, the same md5 across
settings when the thread count does not change the bytes on this machine. ``0`` is torch's own choice
(the machine's cores).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.results import machine_facts, write_results

ROOT = Path(__file__).resolve().parents[1]


def _rows(count: int) -> list[dict[str, Any]]:
    """Arithmetic conversations whose answers grow with the row number (10 to ~200 tokens)."""
    rows = []
    for i in range(count):
        steps = " ".join(f"then add {j} to get {i + j * (j + 1) // 2}." for j in range(1, 2 + i % 25))
        rows.append(
            {
                "id": str(i),
                "messages": [
                    {
                        "role": "user",
                        "content": f"Start from {i} and add 1, 2, 3 and so on. What do you get?",
                    },
                    {"role": "assistant", "content": f"We start at {i}, {steps}"},
                ],
            }
        )
    return rows


def _settings(num_threads: int) -> Any:
    import yaml

    from assets.train.settings import TrainSettings

    values = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    values.pop("base_model")
    values.update(epochs=1, batch_size=8, max_seq_length=256, num_threads=num_threads)
    return TrainSettings.from_mapping(values)


def _train_once(base: Path, out: Path, rows: list[dict[str, Any]], num_threads: int) -> dict[str, Any]:
    from assets.train.training import train_adapter
    from resources.model_loading import load_causal_lm, load_tokenizer

    model = load_causal_lm(base, quantization="nf4", dtype="float32", device="cpu")
    split = len(rows) * 9 // 10
    wall, cpu = time.perf_counter(), time.process_time()
    result = train_adapter(
        model, load_tokenizer(base), rows[:split], rows[split:], _settings(num_threads), out,
        base_model_source="embedded",
    )  # fmt: skip
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "steps": result.steps,
        "md5": hashlib.md5((out / "adapter_model.safetensors").read_bytes()).hexdigest(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2,0")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=160)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "training_threads.json")
    args = parser.parse_args()

    import torch

    from resources.model_loading import prepare_base_model

    settings = [int(t) for t in args.threads.split(",")]
    rows = _rows(args.rows)
    runs: dict[int, list[dict[str, Any]]] = {t: [] for t in settings}
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as tmp:
        base = Path(tmp) / "base"
        prepare_base_model("embedded", base, seed=0)
        for round_number in range(args.rounds):
            for threads in settings:
                out = Path(tmp) / f"adapter-{threads}-{round_number}"
                runs[threads].append(_train_once(base, out, rows, threads))
    baseline = statistics.median(r["wall_s"] for r in runs[settings[0]])
    figures: dict[str, Any] = {"settings": {}}
    print(f"{'num_threads':>11} {'wall s':>8} {'cpu s':>8} {'ratio':>6}  md5 of each round")
    for threads, measured in runs.items():
        wall = statistics.median(r["wall_s"] for r in measured)
        cpu = statistics.median(r["cpu_s"] for r in measured)
        md5s = [r["md5"] for r in measured]
        figures["settings"][str(threads)] = {
            "median_wall_s": round(wall, 2),
            "median_cpu_s": round(cpu, 2),
            "wall_ratio_to_baseline": round(wall / baseline, 3),
            "steps": measured[0]["steps"],
            "md5": md5s,
        }
        print(f"{threads:>11} {wall:8.2f} {cpu:8.2f} {wall / baseline:6.2f}  {' '.join(m[:8] for m in md5s)}")
    every = {md5 for values in figures["settings"].values() for md5 in values["md5"]}
    figures["same_bytes_across_settings"] = len(every) == 1
    print(f"same adapter bytes across every setting and round: {len(every) == 1}")
    figures["machine"] = machine_facts(torch=torch.__version__, torch_default_threads=torch.get_num_threads())
    figures["rows"], figures["rounds"] = args.rows, args.rounds
    write_results(figures, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
