"""Score the base model and each adapter on the same prepared rows, loading the base only once, and
measure how far the candidate moves the base's logits."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assets.evaluate.examples import EvalExample, prepare_examples, token_budget, unscored_counts
from assets.evaluate.scoring import EvalSettings, ModelScores, generated_examples, score_model
from assets.shared.chat import IGNORE_INDEX, pad_batch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# Rows (the first scored ones) on which candidate and base logits are compared. A fixed, small number:
# an adapter that changed nothing gives 0 on any row, and one that changed the model shows it on a few.
LOGIT_CHECK_ROWS = 32


def evaluate_models(
    base_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    adapters: dict[str, Path],
    rows: Sequence[dict[str, Any]],
    settings: EvalSettings,
    *,
    aliases: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The report's measured parts for "base" and each named adapter (``candidate`` first), all on the
    rows of ``rows`` prepared once (assets/evaluate/examples.py), so every model is scored on the same
    rows and tokens.

    The base is scored first, before any LoRA layer is injected; adapters are then attached to the same
    base in turn, so a real multi-GB base is loaded once for the whole comparison. ``aliases`` maps a
    name to a scored one whose results it shares (``{"champion": "candidate"}`` when the candidate is the
    champion). Returns ``models`` (name -> metrics), ``examples`` (one dict per row), ``unscored``
    (reason -> count), ``candidate_vs_base`` (logit differences) and ``max_tokens`` (the token budget).
    """
    from peft import PeftModel

    max_positions = getattr(base_model.config, "max_position_embeddings", None)
    max_tokens = token_budget(settings.max_seq_length, max_positions)
    examples = prepare_examples(
        tokenizer, rows, max_tokens=max_tokens, max_new_tokens=settings.max_new_tokens
    )
    scores = {"base": score_model(base_model, tokenizer, examples, settings)}
    logit_check: dict[str, Any] | None = None
    peft_model = None
    for name, path in adapters.items():
        if peft_model is None:
            peft_model = PeftModel.from_pretrained(base_model, str(path), adapter_name=name)
        else:
            peft_model.load_adapter(str(path), adapter_name=name)
        peft_model.set_adapter(name)
        peft_model.eval()
        scores[name] = score_model(peft_model, tokenizer, examples, settings)
        if name == "candidate":
            logit_check = logit_difference(
                peft_model, examples, pad_token_id=tokenizer.pad_token_id, batch_size=settings.batch_size
            )
    for alias, name in (aliases or {}).items():
        scores[alias] = scores[name]
    report: dict[str, Any] = {
        "max_tokens": max_tokens,
        "models": {name: score.metrics for name, score in scores.items()},
        "unscored": unscored_counts(examples),
        "examples": example_records(examples, scores, settings.max_examples),
    }
    if logit_check is not None:
        report["candidate_vs_base"] = logit_check
    return report


def example_records(
    examples: Sequence[EvalExample], scores: dict[str, ModelScores], max_examples: int
) -> list[dict[str, Any]]:
    """One JSON-ready dict per test row: whether and why it was scored, its token counts, each model's
    mean answer loss (nats per token) and, for the generated rows, the reference and each model's answer."""
    generated = {index: order for order, index in enumerate(generated_examples(examples, max_examples))}
    records = []
    for index, example in enumerate(examples):
        record: dict[str, Any] = {
            "id": example.id,
            "category": example.category,
            "scored": example.scored,
            "reason": example.reason,
            "answer_tokens": example.answer_tokens,
            "prompt_tokens_dropped": example.prompt_tokens_dropped,
        }
        if example.scored:
            record["loss"] = {name: score.losses[index] for name, score in scores.items()}
        if index in generated:
            record["prompt"] = example.prompt_text
            record["reference"] = example.reference
            record["generation_prompt_tokens_dropped"] = example.generation_prompt_tokens_dropped
            record["generation"] = {
                name: score.generations[generated[index]] for name, score in scores.items()
            }
        records.append(record)
    return records


def logit_difference(
    peft_model: Any, examples: Sequence[EvalExample], *, pad_token_id: int, batch_size: int
) -> dict[str, Any]:
    """Max and mean |candidate logit - base logit| over the answer positions of the first
    ``LOGIT_CHECK_ROWS`` scored rows, the base being the same model with its adapters disabled.

    An adapter whose LoRA product is zero (untrained, or a learning rate too small to move it) gives 0.
    """
    import torch

    chosen = [example for example in examples if example.scored][:LOGIT_CHECK_ROWS]
    largest, total, count = 0.0, 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(chosen), batch_size):
            features = [
                {"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
                for e in chosen[start : start + batch_size]
            ]
            batch = {
                key: value.to(peft_model.device)
                for key, value in pad_batch(features, pad_token_id=pad_token_id).items()
            }
            inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
            # The logits that predict answer tokens: position t predicts token t + 1.
            positions = batch["labels"][:, 1:] != IGNORE_INDEX
            candidate = peft_model(**inputs).logits[:, :-1][positions].float()
            with peft_model.disable_adapter():
                base = peft_model(**inputs).logits[:, :-1][positions].float()
            difference = (candidate - base).abs()
            largest = max(largest, float(difference.max()))
            total += float(difference.sum())
            count += difference.numel()
    return {
        "max_abs_logit_diff": largest,
        "mean_abs_logit_diff": total / count if count else 0.0,
        "rows": len(chosen),
    }
