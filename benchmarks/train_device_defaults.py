"""The measurements behind what ``train.optimizer: auto`` and ``train.precision: auto`` pick on a CPU
(assets/train/device_defaults.py).

    .venv/bin/python benchmarks/train_device_defaults.py [--reps 2] [--out results/train_device_defaults.json]

1. Optimizer step on a CPU: torch's AdamW (transformers' ``adamw_torch``, the baseline) against
   bitsandbytes' paged 8-bit AdamW (``paged_adamw_8bit``; bitsandbytes cannot page on a CPU and falls back
   to unpaged 8-bit state) on the trainable parameters of LoRA r 8 on every linear layer of a 0.5B
   Qwen2-shaped model (24 layers, hidden 896, MLP 4864: 4.4M parameters), random gradients; seconds per
   step and optimizer state size.
2. Training precision on a CPU: a LoRA training step (r 8, all linear layers; forward, backward,
   AdamW) on a 4-layer model of Qwen2-0.5B's width (random weights, batch 2 x 256 tokens), float32 (the
   baseline) against bfloat16 autocast; seconds per step. The tiny embedded model is too small for the
   matrix arithmetic to show over the overheads.
Repetitions are interleaved, so machine load hits every variant alike; ratios are against the baseline
measured in the same repetition, medians over repetitions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
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
TRAIN_STEPS = 3
MID_LAYERS = 4
SEQUENCE = 256


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


def _lora_model() -> Any:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=MID_LAYERS,
        num_attention_heads=14,
        num_key_value_heads=2,
        vocab_size=32000,
        max_position_embeddings=SEQUENCE,
    )
    return get_peft_model(LlamaForCausalLM(config), LoraConfig(r=8, target_modules="all-linear"))


def _training_step(precision: str) -> dict[str, float]:
    """Seconds per LoRA training step (forward, backward, AdamW) under ``precision`` autocast, as the
    Trainer runs it with ``bf16=True`` on a CPU, and the first step's loss."""
    import torch

    model = _lora_model()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, 32000, (2, SEQUENCE), generator=torch.Generator().manual_seed(0))
    losses = []

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss))

    step()  # allocations and kernel selection: not timed
    started = time.perf_counter()
    for _ in range(TRAIN_STEPS):
        step()
    return {"s_per_step": (time.perf_counter() - started) / TRAIN_STEPS, "first_loss": losses[0]}


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

    optimizer_runs: dict[str, list[dict[str, float]]] = {"adamw_torch": [], "paged_adamw_8bit": []}
    precision_runs: dict[str, list[dict[str, float]]] = {"float32": [], "bfloat16": []}
    for rep in range(args.reps):
        for name, runs in optimizer_runs.items():
            runs.append(_optimizer_step(name))
            print(f"rep {rep} optimizer {name}: {runs[-1]}", flush=True)
        for name, runs in precision_runs.items():
            runs.append(_training_step(name))
            print(f"rep {rep} precision {name}: {runs[-1]}", flush=True)

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
            "s_per_step": median(runs, "s_per_step"),
            "first_loss": median(runs, "first_loss"),
            "time_vs_float32": statistics.median(
                r["s_per_step"] / b["s_per_step"]
                for r, b in zip(runs, precision_runs["float32"], strict=True)
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
            "lora_step_precision_qwen05b_width_4_layers": precision,
            "optimizer_steps_timed": OPTIMIZER_STEPS,
            "train_steps_timed": TRAIN_STEPS,
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
