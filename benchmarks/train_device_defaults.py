"""The measurements behind what ``train.optimizer: auto`` and ``train.precision: auto`` pick on a CPU
(assets/train/device_defaults.py).

    .venv/bin/python benchmarks/train_device_defaults.py [--reps 2] [--out results/train_device_defaults.json]

1. Optimizer step on a CPU: torch's AdamW (transformers' ``adamw_torch``, the baseline) against
   bitsandbytes' paged 8-bit AdamW (``paged_adamw_8bit``; bitsandbytes cannot page on a CPU and falls back
   to unpaged 8-bit state) on the trainable parameters of LoRA r 8 on every linear layer of a 0.5B
   Qwen2-shaped model (24 layers, hidden 896, MLP 4864: 4.4M parameters), random gradients; seconds per
   step and optimizer state size.
2. Training precision on a CPU: ``train_adapter`` on the embedded tiny model, float32 (the baseline)
   against bfloat16 autocast, for qlora (the default method) and lora; optimizer steps per second and
   final loss.
Repetitions are interleaved, so machine load hits every variant alike; ratios are against the baseline
measured in the same repetition, medians over repetitions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.results import machine_facts, write_results

ROOT = Path(__file__).resolve().parents[1]
# (in, out) of the seven projections of one Qwen2-0.5B layer: q, k, v, o, gate, up, down.
QWEN05_LAYER = [(896, 896), (896, 128), (896, 128), (896, 896), (896, 4864), (896, 4864), (4864, 896)]
OPTIMIZER_STEPS = 5
TRAIN_STEPS = 8


def _lora_parameters() -> list[Any]:
    import torch

    generator = torch.Generator().manual_seed(0)
    shapes = [shape for _ in range(24) for i, o in QWEN05_LAYER for shape in ((8, i), (o, 8))]
    return [torch.nn.Parameter(torch.randn(*s, generator=generator) * 0.01) for s in shapes]


def _optimizer_step(name: str) -> dict[str, float]:
    import bitsandbytes as bnb
    import torch

    params = _lora_parameters()
    if name == "adamw_torch":
        optimizer = torch.optim.AdamW(params, lr=1e-4)
    else:
        optimizer = bnb.optim.PagedAdamW8bit(params, lr=1e-4)
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    optimizer.step()  # state is created on the first step: not timed
    started = time.perf_counter()
    for _ in range(OPTIMIZER_STEPS):
        optimizer.step()
    seconds = (time.perf_counter() - started) / OPTIMIZER_STEPS
    state = sum(
        v.numel() * v.element_size()
        for s in optimizer.state.values()
        for v in s.values()
        if torch.is_tensor(v)
    )
    return {"s_per_step": seconds, "state_mib": state / 2**20}


def _rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}? Answer in a full sentence."},
                {"role": "assistant", "content": f"{i} plus {i} is {2 * i}, as you can check by counting."},
            ]
        }
        for i in range(count)
    ]


def _train(base: Path, method: str, precision: str) -> dict[str, float]:
    import yaml

    from assets.train.settings import TrainSettings
    from assets.train.training import train_adapter
    from resources.model_loading import load_causal_lm, load_tokenizer

    values = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    values.pop("base_model")
    quantization = "nf4" if method == "qlora" else None
    values.update(
        method=method,
        quantization=quantization,
        precision=precision,
        max_steps=TRAIN_STEPS,
        batch_size=8,
        max_seq_length=64,
        optimizer="adamw_torch",
    )
    settings = TrainSettings.from_mapping(values)
    # As the adapter asset loads it: a 4-bit base computes in the training precision.
    dtype = precision if quantization else "float32"
    model = load_causal_lm(base, quantization=quantization, dtype=dtype, device="cpu")
    with tempfile.TemporaryDirectory() as out:
        result = train_adapter(
            model,
            load_tokenizer(base),
            _rows(32),
            [],
            settings,
            Path(out) / "a",
            base_model_source="embedded",
        )
    return {
        "steps_per_s": result.steps / result.train_runtime_s,
        "final_loss": result.loss_history[-1]["loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results/train_device_defaults.json"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    from resources.model_loading import prepare_base_model

    optimizer_runs: dict[str, list[dict[str, float]]] = {"adamw_torch": [], "paged_adamw_8bit": []}
    precision_runs: dict[str, list[dict[str, float]]] = {
        f"{m}/{p}": [] for m in ("qlora", "lora") for p in ("float32", "bfloat16")
    }
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "base"
        prepare_base_model("embedded", base, seed=0)
        for rep in range(args.reps):
            for name, runs in optimizer_runs.items():
                runs.append(_optimizer_step(name))
                print(f"rep {rep} optimizer {name}: {runs[-1]}", flush=True)
            for name, runs in precision_runs.items():
                method, precision = name.split("/")
                runs.append(_train(base, method, precision))
                print(f"rep {rep} train {name}: {runs[-1]}", flush=True)

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    optimizer = {
        name: {
            "s_per_step": median(runs, "s_per_step"),
            "state_mib": median(runs, "state_mib"),
            "time_vs_adamw_torch": statistics.median(
                r["s_per_step"] / b["s_per_step"]
                for r, b in zip(runs, optimizer_runs["adamw_torch"], strict=True)
            ),
        }
        for name, runs in optimizer_runs.items()
    }
    precision = {
        name: {
            "steps_per_s": median(runs, "steps_per_s"),
            "final_loss": median(runs, "final_loss"),
            "speed_vs_float32": statistics.median(
                r["steps_per_s"] / b["steps_per_s"]
                for r, b in zip(runs, precision_runs[name.split("/")[0] + "/float32"], strict=True)
            ),
        }
        for name, runs in precision_runs.items()
    }
    for name, figures in {**optimizer, **precision}.items():
        print(name, {k: round(v, 4) for k, v in figures.items()})
    import bitsandbytes

    write_results(
        {
            "optimizer_step_lora_qwen05b_shape": optimizer,
            "training_precision_tiny_model": precision,
            "optimizer_steps_timed": OPTIMIZER_STEPS,
            "train_steps": TRAIN_STEPS,
            "repetitions": args.reps,
            "machine": machine_facts(
                torch=torch.__version__,
                bitsandbytes=bitsandbytes.__version__,
                threads=torch.get_num_threads(),
            ),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
