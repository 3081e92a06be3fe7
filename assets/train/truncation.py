"""Rows longer than ``train.max_seq_length``: what happens to an answer the limit cuts, and the count.

An answer cut by the limit has lost its end: trained as it stands, the model would learn a reply that
stops mid-sentence with no end token. ``train.truncation`` states the rule:

- ``trim``: keep the row up to the limit but take the cut answer's tokens out of the loss (the earlier,
  complete answers of the conversation still train). A row left without a trained token is dropped.
- ``drop``: drop every row with a cut answer.

Either way the rows are counted (:class:`TruncationCounts`), for the metadata and the run log.
The clean stage already rejects rows longer than the limit, so on pipeline data this is a guard for
a limit lowered at launch. Framework-free.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assets.shared.chat import IGNORE_INDEX, tokenize_conversation

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

TRUNCATION_RULES = ("trim", "drop")


@dataclass
class TruncationCounts:
    """Rows seen, rows longer than the limit, answers the limit cut, and rows left out (by reason)."""

    rows: int = 0
    longer_than_limit: int = 0
    answers_cut: int = 0
    dropped_cut_answer: int = 0
    dropped_no_answer_token: int = 0


def fit_rows(
    tokenizer: PreTrainedTokenizerBase,
    rows: Iterable[Mapping[str, Any]],
    *,
    max_seq_length: int,
    rule: str,
) -> tuple[list[dict[str, list[Any]]], TruncationCounts]:
    """Features (``input_ids``, ``attention_mask``, ``labels``, ``loss_weights``) of ``rows`` within
    ``max_seq_length`` tokens under ``rule`` (``trim`` or ``drop``, see the module docstring), and the counts.

    Rows without any trained token (no assistant turn within the limit, or all weight 0) are left out
    and counted. Raises ValueError for an unknown rule.
    """
    if rule not in TRUNCATION_RULES:
        raise ValueError(f"train.truncation must be one of {TRUNCATION_RULES}; got {rule!r}")
    counts = TruncationCounts()
    features = []
    for row in rows:
        counts.rows += 1
        full = tokenize_conversation(tokenizer, row["messages"], max_seq_length=sys.maxsize)
        feature = full
        if len(full["input_ids"]) > max_seq_length:
            counts.longer_than_limit += 1
            labels = full["labels"][:max_seq_length]
            loss_weights = full["loss_weights"][:max_seq_length]
            # The limit cuts an answer when a run of trained tokens goes on across it.
            cut = labels[-1] != IGNORE_INDEX and full["labels"][max_seq_length] != IGNORE_INDEX
            if cut:
                counts.answers_cut += 1
                if rule == "drop":
                    counts.dropped_cut_answer += 1
                    continue
                position = len(labels) - 1
                while position >= 0 and labels[position] != IGNORE_INDEX:
                    labels[position] = IGNORE_INDEX
                    loss_weights[position] = 0.0
                    position -= 1
            feature = {
                "input_ids": full["input_ids"][:max_seq_length],
                "attention_mask": full["attention_mask"][:max_seq_length],
                "labels": labels,
                "loss_weights": loss_weights,
            }
        if all(label == IGNORE_INDEX for label in feature["labels"]):
            counts.dropped_no_answer_token += 1
            continue
        features.append(feature)
    return features, counts
