"""Training throughput: our train_adapter against a plain peft + transformers Trainer run.

    .venv/bin/python benchmarks/train.py [--path ../shared/data/oasst2/oasst2_filtered.jsonl]
        [--steps 10] [--repetitions 2] [--max-seq-length 512] [--out benchmarks/results/train.json]

Same tiny embedded base (4-bit NF4, as the default qlora loads it), same LoRA settings, same rows
(the OpenAssistant conversations and the project's sample, data/sample/examples.jsonl, both normalized
by the project's ingest; as the clean stage does, rows longer than the sequence limit are left out, so
lengths are mixed from a few dozen tokens up to the limit), same steps, batch size and seed. The
limit is 512 tokens here, not params.yaml's 256: the tiny model's tokenizer spells OpenAssistant's long
answers in many tokens, and only 41 of its 494 conversations fit in 256.

The baseline is what a user writes from the peft and transformers docs: ``get_peft_model`` on the base
without gradient checkpointing, ``Trainer`` with random batches each padded to its longest row, the
model's own loss. Ours is ``train_adapter`` with params.yaml's defaults (checkpoint saves and
validation off in both, since the baseline has neither). The two alternate, ``--repetitions`` times
each, with runs of ours with one setting changed (what each lever is worth) in the same rotation, so a
change in the shared machine's load falls on all of them alike.

Effective tokens/s = real (non-padding) tokens of the training batches / training wall time; the same
per CPU second of the process is reported beside it, as wall time on a shared machine moves with the
other processes' load (ours is charged its tokenization and save there). Padding
efficiency = real tokens / tokens processed (rows x width of each batch). Quality: each trained model's
loss on the same held-out rows (token-weighted mean over assistant tokens), and the mean training loss
of the last five steps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assets.ingest.normalize import normalize_file
from assets.params import section
from assets.shared.chat import IGNORE_INDEX, pad_batch, tokenize_conversation
from assets.train.device_defaults import resolve_optimizer
from assets.train.settings import TrainSettings
from assets.train.training import train_adapter
from assets.train.truncation import fit_rows
from benchmarks.results import machine_facts, write_results
from resources.model_loading import load_causal_lm, load_tokenizer, prepare_base_model
from resources.project import PROJECT_ROOT

DEFAULT_PATH = PROJECT_ROOT.parent / "shared" / "data" / "oasst2" / "oasst2_filtered.jsonl"
SAMPLE_PATH = PROJECT_ROOT / "data" / "sample" / "examples.jsonl"
HELD_OUT_ROWS = 32
# Ours with one setting changed: what each lever is worth on this CPU (by default, auto batching groups
# by length here and auto checkpointing is off: the tiny model's activations fit many times over).
VARIANTS = {
    "ours, gradient checkpointing always": {"gradient_checkpointing": "always"},
    "ours, batching padded": {"batching": "padded"},
    "ours, batching packed": {"batching": "packed"},
    # The default pins one thread (same bytes on any machine); 0 is torch's choice, as the baseline has.
    "ours, num_threads 0 (torch's choice)": {"num_threads": 0},
}


def _settings(steps: int, max_seq_length: int, **overrides: Any) -> TrainSettings:
    values = dict(section("train"))
    values.pop("base_model")
    # No checkpoint saves or validation: the baseline has neither, and both are I/O, not training.
    values.update(
        max_seq_length=max_seq_length,
        max_steps=steps,
        save_steps=10 * steps,
        eval_steps=10 * steps,
        log_every_steps=10 * steps,
    )
    values.update(overrides)
    return TrainSettings.from_mapping(values)


def _chat_rows(paths: list[Path], tokenizer: Any, max_seq_length: int, seed: int) -> list[dict[str, Any]]:
    """The files' conversations that fit in ``max_seq_length`` tokens (the clean stage's too_long
    rule), shuffled with ``seed``."""
    import random

    rows = [
        row
        for path in paths
        for row in normalize_file(path, max_chars=section("data")["max_chars"])
        if row["error"] is None
        and len(tokenize_conversation(tokenizer, row["messages"], max_seq_length=sys.maxsize)["input_ids"])
        <= max_seq_length
    ]
    random.Random(seed).shuffle(rows)
    return rows


def _held_out_loss(model: Any, features: list[dict[str, Any]], pad_token_id: int) -> float:
    """Token-weighted mean loss over the assistant tokens of ``features`` (batches of 8)."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(features), 8):
            batch = pad_batch(features[start : start + 8], pad_token_id=pad_token_id)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            targets = batch["labels"][:, 1:]
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                targets.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="sum",
            )
            total += float(nll)
            count += int((targets != IGNORE_INDEX).sum())
    return total / count


def _baseline(base_dir: Path, features: list, settings: TrainSettings, pad_token_id: int) -> dict[str, Any]:
    """Plain peft + Trainer: random batches padded to their longest row, no gradient checkpointing."""
    from peft import LoraConfig, get_peft_model
    from transformers import PrinterCallback, Trainer, TrainingArguments, set_seed

    model = load_causal_lm(base_dir, quantization=settings.quantization, dtype="float32", device="cpu")
    set_seed(settings.seed)
    config = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=settings.target_modules,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    counts = {"real": 0, "processed": 0}
    plain = [{k: f[k] for k in ("input_ids", "attention_mask", "labels")} for f in features]

    def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
        padded = pad_batch(batch, pad_token_id=pad_token_id)
        counts["real"] += int(padded["attention_mask"].sum())
        counts["processed"] += padded["input_ids"].numel()
        return padded

    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            per_device_train_batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            max_steps=settings.max_steps,
            warmup_steps=settings.warmup_ratio,
            lr_scheduler_type=settings.lr_scheduler,
            # What train.optimizer: auto resolves to on a CPU (assets/train/device_defaults.py).
            optim=resolve_optimizer(settings.optimizer, "cpu"),
            seed=settings.seed,
            data_seed=settings.seed,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            remove_unused_columns=False,
            use_cpu=True,
        )
        trainer = Trainer(model=model, args=args, train_dataset=plain, data_collator=collate)
        trainer.remove_callback(PrinterCallback)
        started, cpu_started = time.perf_counter(), time.process_time()
        trainer.train()
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "real_tokens": counts["real"],
        "padding_efficiency": counts["real"] / counts["processed"],
        "last_losses": losses[-5:],
        "model": model,
    }


def _ours(base_dir: Path, rows: list, settings: TrainSettings, tokenizer: Any) -> dict[str, Any]:
    model = load_causal_lm(base_dir, quantization=settings.quantization, dtype="float32", device="cpu")
    with tempfile.TemporaryDirectory() as scratch:
        # CPU time around the whole call (tokenization and the save included: counted against us).
        cpu_started = time.process_time()
        result = train_adapter(
            model, tokenizer, rows, [], settings, Path(scratch) / "adapter", base_model_source="embedded"
        )
        cpu_seconds = time.process_time() - cpu_started
    return {
        "seconds": result.train_runtime_s,
        "cpu_seconds": cpu_seconds,
        "real_tokens": result.train_tokens,
        "padding_efficiency": result.padding_efficiency,
        "last_losses": [entry["loss"] for entry in result.loss_history[-5:]],
        "batching": result.batching,
        "gradient_checkpointing": result.gradient_checkpointing,
        "model": result.model,
    }


def _summary(run: dict[str, Any], held_out: list, pad_token_id: int) -> dict[str, Any]:
    return {
        "effective_tokens_per_s": round(run["real_tokens"] / run["seconds"], 1),
        # Less sensitive than wall time to other processes on a shared machine.
        "effective_tokens_per_cpu_s": round(run["real_tokens"] / run["cpu_seconds"], 1),
        "seconds": round(run["seconds"], 2),
        "cpu_seconds": round(run["cpu_seconds"], 2),
        "real_tokens": run["real_tokens"],
        "padding_efficiency": round(run["padding_efficiency"], 4),
        "mean_loss_last_5_steps": round(statistics.fmean(run["last_losses"]), 4),
        "held_out_loss": round(_held_out_loss(run["model"], held_out, pad_token_id), 4),
        **{k: run[k] for k in ("batching", "gradient_checkpointing") if k in run},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH, help="an oasst2 trees JSONL file")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument("--max-seq-length", type=int, default=512)
    parser.add_argument("--out", default="benchmarks/results/train.json")
    args = parser.parse_args()
    if not args.path.is_file():
        print(
            f"benchmarks/train.py skipped: {args.path} is absent (the OpenAssistant sample ships only beside "
            "the team's checkout); pass --path to point at an oasst2 trees .jsonl file",
            file=sys.stderr,
        )
        return 0
    import torch

    with tempfile.TemporaryDirectory() as scratch:
        base_dir = Path(scratch) / "base"
        prepare_base_model("embedded", base_dir, seed=0)
        tokenizer = load_tokenizer(base_dir)
        settings = _settings(args.steps, args.max_seq_length)
        rows = _chat_rows([args.path, SAMPLE_PATH], tokenizer, args.max_seq_length, settings.seed)
        train_rows, held_out_rows = rows[HELD_OUT_ROWS:], rows[:HELD_OUT_ROWS]
        limit, rule = settings.max_seq_length, settings.truncation
        features, _ = fit_rows(tokenizer, train_rows, max_seq_length=limit, rule=rule)
        held_out, _ = fit_rows(tokenizer, held_out_rows, max_seq_length=limit, rule=rule)
        pad_id = tokenizer.pad_token_id
        # Every configuration once per repetition, in the same order: a change in the machine's load
        # then falls on all of them, not on whichever ran last.
        runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "ours": [], **{n: [] for n in VARIANTS}}
        for repetition in range(args.repetitions):
            for name, history in runs.items():
                if name == "baseline":
                    run = _baseline(base_dir, features, settings, pad_id)
                else:
                    variant = _settings(args.steps, args.max_seq_length, **VARIANTS.get(name, {}))
                    run = _ours(base_dir, train_rows, variant, tokenizer)
                history.append(_summary(run, held_out, pad_id))
                print(f"[{repetition + 1}/{args.repetitions}] {name}: {json.dumps(history[-1])}", flush=True)

    def median(name: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[name])

    speedups = [
        ours["effective_tokens_per_s"] / base["effective_tokens_per_s"]
        for ours, base in zip(runs["ours"], runs["baseline"], strict=True)
    ]
    cpu_speedups = [
        ours["effective_tokens_per_cpu_s"] / base["effective_tokens_per_cpu_s"]
        for ours, base in zip(runs["ours"], runs["baseline"], strict=True)
    ]
    held_out_gap = abs(median("ours", "held_out_loss") / median("baseline", "held_out_loss") - 1)
    figures = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_facts(torch=torch.__version__, torch_threads=torch.get_num_threads()),
        "input": [str(args.path), str(SAMPLE_PATH.relative_to(PROJECT_ROOT))],
        "train_rows": len(features),
        "held_out_rows": len(held_out),
        "steps": args.steps,
        "batch_size": settings.batch_size,
        "max_seq_length": limit,
        "method": settings.method,
        "quantization": settings.quantization,
        "runs": runs,
        "median_effective_tokens_per_s": {name: median(name, "effective_tokens_per_s") for name in runs},
        "median_effective_tokens_per_cpu_s": {
            name: median(name, "effective_tokens_per_cpu_s") for name in runs
        },
        "speedup_per_repetition": [round(s, 3) for s in speedups],
        "speedup_median": round(statistics.median(speedups), 3),
        "cpu_time_speedup_per_repetition": [round(s, 3) for s in cpu_speedups],
        "cpu_time_speedup_median": round(statistics.median(cpu_speedups), 3),
        "target_speedup": 2.0,
        "held_out_loss_relative_gap": round(held_out_gap, 4),
        "held_out_loss_within_1_percent": held_out_gap <= 0.01,
    }
    ours_pad, base_pad = median("ours", "padding_efficiency"), median("baseline", "padding_efficiency")
    ours_loss, base_loss = median("ours", "held_out_loss"), median("baseline", "held_out_loss")
    print(
        f"effective tokens/s ours / baseline: {figures['speedup_median']}x (target 2x; per CPU second "
        f"{figures['cpu_time_speedup_median']}x); padding "
        f"efficiency {ours_pad} vs {base_pad}; held-out loss {ours_loss} vs {base_loss} "
        f"({held_out_gap:.2%} apart)"
    )
    write_results(figures, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
