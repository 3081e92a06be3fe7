"""Per-turn loss weights (assets/train/loss.py): a turn's weight scales its tokens' share of the loss,
all-1 weights give transformers' own loss, and the weights survive tokenization and truncation."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from assets.shared.chat import IGNORE_INDEX, ChatTemplateError, pad_batch, tokenize_conversation
from assets.train.loss import weighted_loss_trainer, weighted_token_loss
from assets.train.truncation import fit_rows
from resources.model_loading import load_causal_lm, load_tokenizer


def _conversation(second_weight: Any) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help you today?", "weight": 1.0},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "It is 4, as anyone can check.", "weight": second_weight},
    ]


@pytest.fixture(scope="module")
def tokenizer(base_dir: Path) -> Any:
    return load_tokenizer(base_dir)


@pytest.fixture(scope="module")
def model(base_dir: Path) -> Any:
    return load_causal_lm(base_dir, quantization=None, dtype="float32", device="cpu").eval()


def _turn_runs(feature: dict[str, list[Any]]) -> list[tuple[int, int, float]]:
    """(start, end, weight) of each run of labelled positions."""
    runs, start = [], None
    labels = [*feature["labels"], IGNORE_INDEX]
    for position, label in enumerate(labels):
        if label != IGNORE_INDEX and start is None:
            start = position
        elif label == IGNORE_INDEX and start is not None:
            runs.append((start, position, feature["loss_weights"][start]))
            start = None
    return runs


def test_each_assistant_token_carries_its_turns_weight(tokenizer: Any) -> None:
    feature = tokenize_conversation(tokenizer, _conversation(0.5), max_seq_length=512)
    runs = _turn_runs(feature)
    assert [weight for *_, weight in runs] == [1.0, 0.5]
    for start, end, weight in runs:
        assert feature["loss_weights"][start:end] == [weight] * (end - start)
    labelled = {p for start, end, _ in runs for p in range(start, end)}
    assert all(w == 0.0 for p, w in enumerate(feature["loss_weights"]) if p not in labelled)
    # Weight 0 is context: no label, no weight.
    context = tokenize_conversation(tokenizer, _conversation(0), max_seq_length=512)
    assert [w for *_, w in _turn_runs(context)] == [1.0]


@pytest.mark.parametrize("weight", [-0.5, float("nan"), "high", True])
def test_a_weight_that_is_not_a_number_at_least_0_is_refused(tokenizer: Any, weight: Any) -> None:
    with pytest.raises(ChatTemplateError, match=r"Turn 3 has weight"):
        tokenize_conversation(tokenizer, _conversation(weight), max_seq_length=512)


def test_a_trimmed_answer_loses_its_weight_too(tokenizer: Any) -> None:
    full = tokenize_conversation(tokenizer, _conversation(0.5), max_seq_length=sys.maxsize)
    (_, first_end, _), (second_start, _, _) = _turn_runs(full)
    limit = second_start + 2
    (feature,), _ = fit_rows(tokenizer, [{"messages": _conversation(0.5)}], max_seq_length=limit, rule="trim")
    assert feature["loss_weights"][:first_end] == full["loss_weights"][:first_end]
    assert feature["loss_weights"][first_end:] == [0.0] * (limit - first_end)
    assert len(feature["loss_weights"]) == len(feature["labels"]) == limit


def test_with_every_weight_1_the_trainer_loss_is_transformers_own(base_dir: Path, tokenizer: Any) -> None:
    """The weighted Trainer against the plain Trainer on the same batch, both normalised by the
    accumulated batch's count as in training (what the adapter trained with before weights)."""
    from transformers import Trainer, TrainingArguments

    model = load_causal_lm(base_dir, quantization=None, dtype="float32", device="cpu").eval()
    features = [
        tokenize_conversation(tokenizer, _conversation(1.0), max_seq_length=512),
        tokenize_conversation(tokenizer, _conversation(1.0)[:2], max_seq_length=512),
    ]
    batch = pad_batch(features, pad_token_id=tokenizer.pad_token_id)
    args = TrainingArguments(output_dir=str(base_dir.parent / "out"), report_to="none", use_cpu=True)
    plain = Trainer(model=model, args=args)
    weighted = weighted_loss_trainer(Trainer)(model=model, args=args)
    plain_items = plain._get_num_items_in_batch([batch], "cpu")
    weighted_items = weighted._get_num_items_in_batch([batch], "cpu")
    assert float(weighted_items) == float(plain_items)
    without_weights = {k: v for k, v in batch.items() if k != "loss_weights"}
    expected = plain.compute_loss(model, dict(without_weights), num_items_in_batch=plain_items)
    got = weighted.compute_loss(model, dict(batch), num_items_in_batch=weighted_items)
    assert float(got) == pytest.approx(float(expected), rel=1e-6)
    # And without an accumulated normaliser: the model's own mean over label tokens.
    own = model(**without_weights).loss
    assert float(weighted.compute_loss(model, dict(batch))) == pytest.approx(float(own), rel=1e-6)


def test_a_half_weighted_turn_counts_exactly_half(model: Any, tokenizer: Any) -> None:
    import torch

    feature = tokenize_conversation(tokenizer, _conversation(0.5), max_seq_length=512)
    batch = pad_batch([feature], pad_token_id=tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"]).logits[0]
    # By hand: the negative log-likelihood of each label under the logits one position before it.
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    (first_start, first_end, _), (second_start, second_end, _) = _turn_runs(feature)
    ids = feature["input_ids"]
    first = [-log_probs[p - 1, ids[p]].item() for p in range(first_start, first_end)]
    second = [-log_probs[p - 1, ids[p]].item() for p in range(second_start, second_end)]
    expected = (sum(first) + 0.5 * sum(second)) / (len(first) + 0.5 * len(second))
    got = weighted_token_loss(logits[None], batch["labels"], batch["loss_weights"])
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # The same row with the second turn at weight 1 is the plain mean: the half really changed it.
    plain = (sum(first) + sum(second)) / (len(first) + len(second))
    assert abs(expected - plain) > 1e-3


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_the_validation_loss_is_the_weighted_mean_over_the_split_whatever_the_batches(
    base_dir: Path, tokenizer: Any, batch_size: int, tmp_path: Path
) -> None:
    """sum(w * nll) / sum(w) over every validation token: the same for any evaluation batch size (and
    so for any sharding across processes), unlike transformers' mean of per-batch means."""
    from transformers import Trainer, TrainingArguments

    from assets.train.batching import BatchCollator

    model = load_causal_lm(base_dir, quantization=None, dtype="float32", device="cpu").eval()
    conversations = [_conversation(1.0), _conversation(0.5), _conversation(1.0)[:2], _conversation(0.25)]
    features = [tokenize_conversation(tokenizer, c, max_seq_length=512) for c in conversations]
    expected_total = expected_weight = 0.0
    for feature in features:
        batch = pad_batch([feature], pad_token_id=tokenizer.pad_token_id)
        loss = weighted_token_loss(
            model(input_ids=batch["input_ids"]).logits, batch["labels"], batch["loss_weights"]
        )
        weight = float(batch["loss_weights"][:, 1:].sum())
        expected_total += float(loss) * weight
        expected_weight += weight
    args = TrainingArguments(
        output_dir=str(tmp_path),
        report_to="none",
        use_cpu=True,
        per_device_eval_batch_size=batch_size,
        remove_unused_columns=False,  # as train_adapter sets it: loss_weights reach the loss
    )
    collator = BatchCollator("padded", pad_token_id=tokenizer.pad_token_id)
    trainer = weighted_loss_trainer(Trainer)(model=model, args=args, data_collator=collator)
    metrics = trainer.evaluate(eval_dataset=features)
    assert metrics["eval_loss"] == pytest.approx(expected_total / expected_weight, rel=1e-5)
