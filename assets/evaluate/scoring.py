"""Score a causal LM on held-out conversations: perplexity on the reference answers and the quality of
its own greedy answers (ROUGE-L, BLEU, exact match), overall and per category.

Perplexity is token-weighted over assistant tokens only, masked exactly as in training, so base and
fine-tuned models are compared on the same tokens. The metric modules load from this repository, offline.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assets.shared.chat import IGNORE_INDEX, encode_messages, pad_batch, split_last_answer, tokenize_rows
from assets.shared.errors import InputError
from assets.shared.text import normalize_text

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

METRICS_DIR = Path(__file__).resolve().parent / "metrics"


@dataclass(frozen=True)
class EvalSettings:
    """The ``evaluate`` section of params.yaml, plus the ``train.max_seq_length`` used for perplexity."""

    max_new_tokens: int
    max_examples: int
    batch_size: int
    max_seq_length: int

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "max_examples", "batch_size", "max_seq_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"evaluate settings: {name} must be a positive integer; got {value!r}.")


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def perplexity(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Iterable[Mapping[str, Any]],
    *,
    max_seq_length: int,
    batch_size: int,
) -> float:
    """exp(mean negative log-likelihood) over every assistant token of ``rows``."""
    import torch

    features = tokenize_rows(tokenizer, rows, max_seq_length=max_seq_length)
    if not features:
        raise InputError(
            f"No test row has an assistant token within {max_seq_length} tokens (train.max_seq_length "
            "of the adapter), so perplexity is undefined: check that test_split has assistant answers."
        )
    was_training = model.training
    model.eval()
    total_nll = 0.0
    total_tokens = 0
    try:
        with torch.inference_mode():
            for chunk in _batches(features, batch_size):
                batch = pad_batch(chunk, pad_token_id=tokenizer.pad_token_id)
                batch = {key: value.to(model.device) for key, value in batch.items()}
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                # Position t predicts token t + 1.
                targets = batch["labels"][:, 1:]
                nll = torch.nn.functional.cross_entropy(
                    logits[:, :-1].float().reshape(-1, logits.size(-1)),
                    targets.reshape(-1),
                    ignore_index=IGNORE_INDEX,
                    reduction="sum",
                )
                total_nll += float(nll)
                total_tokens += int((targets != IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    return math.exp(total_nll / total_tokens)


def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Iterable[Mapping[str, Any]],
    *,
    max_new_tokens: int,
    batch_size: int,
) -> list[str]:
    """Greedy answers to each row's conversation up to (not including) its last assistant turn."""
    import torch

    # Special-token text inside a prompt stays text, as in training (encode_messages).
    prompts = [
        {"input_ids": ids, "attention_mask": [1] * len(ids)}
        for ids in (
            encode_messages(tokenizer, split_last_answer(row["messages"])[0], generation_prompt=True)
            for row in rows
        )
    ]
    was_training = model.training
    model.eval()
    answers: list[str] = []
    try:
        with torch.inference_mode():
            for chunk in _batches(prompts, batch_size):
                # Left padding keeps every prompt's last token next to the first generated one.
                encoded = pad_batch(chunk, pad_token_id=tokenizer.pad_token_id, padding_side="left")
                encoded = {key: value.to(model.device) for key, value in encoded.items()}
                output = model.generate(
                    **encoded,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    pad_token_id=tokenizer.pad_token_id,
                )
                new_tokens = output[:, encoded["input_ids"].shape[1] :]
                answers.extend(
                    text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
                )
    finally:
        model.train(was_training)
    return answers


def _load_metric(name: str) -> Any:
    import evaluate

    return evaluate.load(str(METRICS_DIR / name))


def score_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Iterable[Mapping[str, Any]],
    settings: EvalSettings,
) -> dict[str, Any]:
    """Perplexity on every row; ROUGE-L, BLEU (0-100) and exact match on greedy answers to the first
    ``max_examples`` rows; ROUGE-L per ``category`` where rows have one.

    Returns ``perplexity``, ``rougeL``, ``bleu``, ``answer_exact_match``, ``n_examples`` (rows in the
    perplexity), ``n_generated``, ``rougeL_by_category`` and ``answers`` (id, category, reference and
    prediction of each generated row, for inspection).
    """
    rows = list(rows)
    if not rows:
        raise InputError(
            "No rows to evaluate: test_split is empty. Lower split.test_start or raise split.test_fraction "
            "in params.yaml, then materialize split again."
        )
    unanswered = [
        str(row.get("id")) for row in rows if not any(m["role"] == "assistant" for m in row["messages"])
    ]
    if unanswered:
        shown = ", ".join(repr(row_id) for row_id in unanswered[:5]) + (" ..." if len(unanswered) > 5 else "")
        raise InputError(
            f"{len(unanswered)} test_split row(s) have no assistant turn to score against (id {shown}). "
            "Every test row needs a reference answer: clean_examples rejects conversations without one, so "
            "materialize clean and split again, or remove these rows from the data."
        )
    ppl = perplexity(
        model, tokenizer, rows, max_seq_length=settings.max_seq_length, batch_size=settings.batch_size
    )
    generated_rows = rows[: settings.max_examples]
    predictions = generate_answers(
        model,
        tokenizer,
        generated_rows,
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.batch_size,
    )
    references = [split_last_answer(row["messages"])[1] for row in generated_rows]

    rouge = _load_metric("rouge")
    by_category: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(generated_rows):
        if row.get("category"):
            by_category[row["category"]].append(index)
    rouge_by_category = {
        category: rouge.compute(
            predictions=[predictions[i] for i in indices], references=[references[i] for i in indices]
        )["rougeL"]
        for category, indices in sorted(by_category.items())
    }
    exact = sum(normalize_text(p) == normalize_text(r) for p, r in zip(predictions, references, strict=True))
    return {
        "perplexity": ppl,
        "rougeL": rouge.compute(predictions=predictions, references=references)["rougeL"],
        "bleu": _load_metric("bleu").compute(predictions=predictions, references=references)["bleu"],
        "answer_exact_match": exact / len(predictions),
        "n_examples": len(rows),
        "n_generated": len(predictions),
        "rougeL_by_category": rouge_by_category,
        "answers": [
            {"id": row.get("id"), "category": row.get("category"), "reference": ref, "prediction": pred}
            for row, ref, pred in zip(generated_rows, references, predictions, strict=True)
        ],
    }
