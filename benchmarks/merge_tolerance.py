"""How far a merged export's logits move from adapter-on-base in each export dtype: the measurement behind
the export.logit_tolerance_<dtype> defaults in params.yaml.

    .venv/bin/python benchmarks/merge_tolerance.py [--adapters 3] [--out results/merge_tolerance.json]

On the embedded tiny base (NF4, as trained), LoRA adapters with random non-zero A and B (r 8, all linear
layers; seeds 0..n-1) are merged by :func:`assets.export.merge.merge_and_verify` in float32, bfloat16 and
float16 with no tolerance, on the verification prompts below. For each it prints the max |logit diff| in
memory and after reloading, the logit scale (max |reference logit|), the difference in machine epsilons of
that scale (what the tolerance is expressed in) and the top-1 agreement, with each dtype's worst case as a
ratio to float32's. The baseline of what the check must catch: the same adapter merged into the original
full-precision weights instead of the de-quantized ones (an unfaithful merge), measured in float32.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.results import write_results

PROMPTS = [
    "What is 3 plus 3?",
    "Hallo Welt, wie geht es dir heute?",
    "Summarize the paragraph below in one sentence.",
    "Write a haiku about autumn leaves falling in the park.",
]
NO_LIMIT = {"float32": 1e9, "bfloat16": 1e9, "float16": 1e9}


def _adapter(base: Path, out: Path, seed: int) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    from assets.shared.training_record import TrainingRecord
    from resources.model_loading import load_causal_lm, load_tokenizer

    torch.manual_seed(seed)
    model = load_causal_lm(base, quantization="nf4", dtype="float32", device="cpu")
    lora = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(out)
    load_tokenizer(base).save_pretrained(out)
    TrainingRecord(
        settings={"quantization": "nf4", "max_seq_length": 64}, base_model={"source": "embedded"}
    ).write(out)


def _unfaithful(base: Path, adapter: Path) -> float:
    """Max |logit diff| of the adapter merged into the original float32 weights vs adapter-on-NF4."""
    import torch
    from peft import PeftModel

    from resources.model_loading import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(base)
    batch = tokenizer(PROMPTS, padding=True, return_tensors="pt")
    mask = batch["attention_mask"].bool()
    on_4bit = PeftModel.from_pretrained(
        load_causal_lm(base, quantization="nf4", dtype="float32", device="cpu"), adapter
    ).eval()
    naive = PeftModel.from_pretrained(
        load_causal_lm(base, quantization=None, dtype="float32", device="cpu"), adapter
    ).merge_and_unload()
    with torch.inference_mode():
        return float((on_4bit(**batch).logits[mask] - naive.eval()(**batch).logits[mask]).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--adapters", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/merge_tolerance.json"))
    args = parser.parse_args()

    from assets.export.merge import MACHINE_EPSILON, merge_and_verify
    from resources.model_loading import prepare_base_model

    rows = []
    with tempfile.TemporaryDirectory(prefix="merge-tolerance-") as tmp:
        root = Path(tmp)
        base = root / "base"
        prepare_base_model("embedded", base, seed=0)
        for seed in range(args.adapters):
            adapter = root / f"adapter-{seed}"
            _adapter(base, adapter, seed)
            unfaithful = _unfaithful(base, adapter)
            for dtype in MACHINE_EPSILON:
                report = merge_and_verify(
                    base,
                    adapter,
                    root / f"merged-{seed}-{dtype}",
                    dtype=dtype,
                    tolerances=NO_LIMIT,
                    verify_prompts=PROMPTS,
                )
                worst = max(report["max_abs_logit_diff"], report["reloaded_max_abs_logit_diff"])
                scale = max(1.0, report["logit_scale"])
                rows.append(
                    {
                        "seed": seed,
                        "dtype": dtype,
                        "max_abs_logit_diff": report["max_abs_logit_diff"],
                        "reloaded_max_abs_logit_diff": report["reloaded_max_abs_logit_diff"],
                        "logit_scale": report["logit_scale"],
                        "epsilons_of_scale": worst / scale / MACHINE_EPSILON[dtype],
                        "fraction_of_scale": worst / scale,
                        "top1_agreement": report["top1_agreement"],
                        "unfaithful_float32_merge_diff": unfaithful,
                    }
                )
    print(f"{'seed':>4} {'dtype':>9} {'max diff':>10} {'reloaded':>10} {'scale':>7} {'eps':>6} {'top1':>5}")
    for row in rows:
        print(
            f"{row['seed']:>4} {row['dtype']:>9} {row['max_abs_logit_diff']:>10.3g} "
            f"{row['reloaded_max_abs_logit_diff']:>10.3g} {row['logit_scale']:>7.3g} "
            f"{row['epsilons_of_scale']:>6.2f} {row['top1_agreement']:>5.2f}"
        )
    worst = {
        dtype: max(r["fraction_of_scale"] for r in rows if r["dtype"] == dtype) for dtype in MACHINE_EPSILON
    }
    unfaithful = min(r["unfaithful_float32_merge_diff"] for r in rows)
    print("worst difference (fraction of the logit scale), and as a ratio to float32's:")
    for dtype, value in worst.items():
        print(f"  {dtype:>9}: {value:.3g} ({value / worst['float32']:.0f}x)")
    print(f"smallest difference of an unfaithful merge (original weights, float32): {unfaithful:.3g}")
    summary = {"worst_fraction_of_scale": worst, "smallest_unfaithful_diff": unfaithful}
    result = {"machine": platform.platform(), "python": platform.python_version(), "rows": rows, **summary}
    write_results(result, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
