"""Score a causal LM on prepared test rows (assets/evaluate/examples.py): the loss of each reference
answer, perplexity over all of them, and the quality of its own greedy answers (ROUGE-L, BLEU, exact
match), overall and per category.

Perplexity is token-weighted over the answer tokens of the scored rows, masked exactly as in training,
so base and fine-tuned models are compared on the same tokens. The metric modules load from this
repository, offline.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assets.evaluate.examples import EvalExample
from assets.shared.chat import IGNORE_INDEX, pad_batch
from assets.shared.errors import InputError
from assets.shared.text import normalize_text

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

METRICS_DIR = Path(__file__).resolve().parent / "metrics"


@dataclass(frozen=True)
class EvalSettings:
    """The ``evaluate`` section of params.yaml, plus the ``train.max_seq_length`` of the adapter."""

    max_new_tokens: int
    max_examples: int
    batch_size: int
    max_seq_length: int

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "max_examples", "batch_size", "max_seq_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"evaluate settings: {name} must be a positive integer; got {value!r}.")


@dataclass(frozen=True)
class ModelScores:
    """One model's results: ``metrics`` (the report's ``models.<name>``), ``losses`` (mean NLL per
    answer token, nats, aligned with the examples; None where a row is not scored) and ``generations``
    (greedy answers of the generated rows, in order)."""

    metrics: dict[str, Any]
    losses: list[float | None]
    generations: list[str]


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def text_logits(model: Any, inputs: dict[str, Any]) -> Any:
    """The logits of ``model`` at the positions of ``inputs["input_ids"]``: (batch, tokens, vocab).

    peft's prompt tuning and P-tuning prepend their virtual tokens as embeddings, so their logits have
    ``num_virtual_tokens`` more positions, at the front (peft ``PeftModelForCausalLM.forward``); prefix
    tuning passes them as past keys/values and adds none. Keeping the last ``tokens`` positions aligns
    every method's logits with the text.
    """
    logits = model(**inputs).logits
    return logits[:, -inputs["input_ids"].shape[1] :]


def answer_losses(
    model: PreTrainedModel, examples: Sequence[EvalExample], *, pad_token_id: int, batch_size: int
) -> list[tuple[float, int]]:
    """Summed negative log-likelihood (nats) and token count of each example's answer tokens, in order.

    Only scored examples may be passed. Right padding: positions then count from each row's first token
    (after a soft prompt's virtual tokens), as in training.
    """
    import torch

    was_training = model.training
    model.eval()
    sums: list[tuple[float, int]] = []
    try:
        with torch.inference_mode():
            for chunk in _batches(examples, batch_size):
                features = [
                    {"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
                    for e in chunk
                ]
                batch = pad_batch(features, pad_token_id=pad_token_id)
                batch = {key: value.to(model.device) for key, value in batch.items()}
                inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
                logits = text_logits(model, inputs)
                # Position t predicts token t + 1.
                targets = batch["labels"][:, 1:]
                nll = torch.nn.functional.cross_entropy(
                    logits[:, :-1].float().transpose(1, 2),
                    targets,
                    ignore_index=IGNORE_INDEX,
                    reduction="none",
                )
                counts = (targets != IGNORE_INDEX).sum(dim=1)
                sums.extend(
                    (float(total), int(count)) for total, count in zip(nll.sum(dim=1), counts, strict=True)
                )
    finally:
        model.train(was_training)
    return sums


def perplexity(sums: Iterable[tuple[float, int]]) -> float:
    """exp(total NLL / total tokens): token-weighted over every answer token, from :func:`answer_losses`."""
    sums = list(sums)
    return math.exp(sum(total for total, _ in sums) / sum(count for _, count in sums))


def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    batch_size: int,
) -> list[str]:
    """Greedy answers (at most ``max_new_tokens`` tokens, stripped text) to each prompt, given as token
    ids ending with the template's generation prompt (``EvalExample.prompt_ids``).

    ``generate`` returns the prompt's ids followed by the new ones for every method: peft adds a soft
    prompt's virtual tokens inside each forward, never to the returned sequence."""
    import torch

    features = [{"input_ids": list(ids), "attention_mask": [1] * len(ids)} for ids in prompts]
    was_training = model.training
    model.eval()
    answers: list[str] = []
    try:
        with torch.inference_mode():
            for chunk in _batches(features, batch_size):
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


def generated_examples(examples: Sequence[EvalExample], max_examples: int) -> list[int]:
    """Positions of the rows whose answers are generated: the first ``max_examples`` scored rows."""
    return [index for index, example in enumerate(examples) if example.scored][:max_examples]


def score_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[EvalExample],
    settings: EvalSettings,
) -> ModelScores:
    """Perplexity over the answers of every scored row; ROUGE-L, BLEU (0-100) and exact match on greedy
    answers to the first ``max_examples`` scored rows; ROUGE-L per ``category`` where rows have one.

    ``metrics`` holds ``perplexity``, ``rougeL``, ``bleu``, ``answer_exact_match``, ``n_scored`` (rows in
    the perplexity; also ``n_examples``), ``n_unscored``, ``n_generated``, ``rougeL_by_category`` and
    ``answers`` (id, category, reference and prediction of each generated row). Raises InputError when no
    row can be scored.
    """
    scored = [index for index, example in enumerate(examples) if example.scored]
    if not scored:
        reasons = sorted({str(example.reason) for example in examples})
        raise InputError(
            f"None of the {len(examples)} test_split rows can be scored ({', '.join(reasons)}): every "
            "reference answer is longer than the tokens the adapter was trained on (train.max_seq_length, "
            "within the model's positions). Raise train.max_seq_length and materialize adapter again, or "
            "use test data with shorter answers."
        )
    sums = answer_losses(
        model,
        [examples[i] for i in scored],
        pad_token_id=tokenizer.pad_token_id,
        batch_size=settings.batch_size,
    )
    losses: list[float | None] = [None] * len(examples)
    for index, (total, count) in zip(scored, sums, strict=True):
        losses[index] = total / count
    generated = [examples[i] for i in generated_examples(examples, settings.max_examples)]
    predictions = generate_answers(
        model,
        tokenizer,
        [example.prompt_ids for example in generated],
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.batch_size,
    )
    references = [example.reference for example in generated]

    rouge = _load_metric("rouge")
    by_category: dict[str, list[int]] = defaultdict(list)
    for index, example in enumerate(generated):
        if example.category:
            by_category[example.category].append(index)
    rouge_by_category = {
        category: rouge.compute(
            predictions=[predictions[i] for i in indices], references=[references[i] for i in indices]
        )["rougeL"]
        for category, indices in sorted(by_category.items())
    }
    exact = sum(normalize_text(p) == normalize_text(r) for p, r in zip(predictions, references, strict=True))
    metrics = {
        "perplexity": perplexity(sums),
        "rougeL": rouge.compute(predictions=predictions, references=references)["rougeL"],
        "bleu": _load_metric("bleu").compute(predictions=predictions, references=references)["bleu"],
        "answer_exact_match": exact / len(predictions),
        "n_examples": len(scored),
        "n_scored": len(scored),
        "n_unscored": len(examples) - len(scored),
        "n_generated": len(predictions),
        "rougeL_by_category": rouge_by_category,
        "answers": [
            {"id": example.id, "category": example.category, "reference": ref, "prediction": pred}
            for example, ref, pred in zip(generated, references, predictions, strict=True)
        ],
    }
    return ModelScores(metrics, losses, predictions)
