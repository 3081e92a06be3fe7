"""How training rows become batches (``train.batching``), and how much of each batch is padding.

- ``padded``: rows in random order, each batch padded to its longest row (the Trainer's default).
- ``group_by_length``: transformers' ``LengthGroupedSampler`` puts rows of similar length in one batch
  (random megabatches of 50 batches, sorted by length inside), so less of each batch is padding.
- ``packed``: the rows of a batch are concatenated into one row with ``position_ids`` restarting at 0
  for each (the idea of transformers' ``DataCollatorWithFlattening``); no padding at all. With no
  ``attention_mask``, transformers builds a block-diagonal causal mask from the restarts
  (``masking_utils.find_packed_sequence_indices``, for sdpa and eager attention) or passes the
  sequence boundaries to a variable-length flash-attention kernel, so no row attends to another; each
  row's first label is ignored so no token is predicted across a boundary.
- ``auto``: ``packed`` on a CUDA device whose attention is a flash-attention kernel, ``group_by_length``
  otherwise. Packing pays only with a variable-length kernel: without one, a packed batch is one long
  row whose attention cost grows with the square of its length (measured on CPU in issue 8: 0.42-0.93x
  of padded batches), while length grouping removes most padding at no cost.

Prompt-learning methods (prefix, prompt, p_tuning) put virtual tokens before every row, which a packed
row cannot have: they cannot be packed. Framework-free but for the collator's tensors (torch is
imported inside).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assets.shared.chat import IGNORE_INDEX, pad_batch

if TYPE_CHECKING:
    import torch

BATCHING = ("auto", "padded", "group_by_length", "packed")
# peft prompt learning: virtual tokens (or past key/values) before every row; a packed row has one start.
UNPACKABLE_METHODS = ("prefix", "prompt", "p_tuning")
# Attention implementations that take packed rows as variable-length sequences (no quadratic mask).
VARLEN_ATTENTION = ("flash_attention_2", "flash_attention_3")


@dataclass(frozen=True)
class BatchingChoice:
    """The batching a run uses (one of BATCHING but ``auto``) and why, in words for the metadata."""

    name: str
    reason: str


def choose_batching(setting: str, *, method: str, device_type: str, attention: str | None) -> BatchingChoice:
    """Resolve ``train.batching`` for a model on ``device_type`` (``cuda``, ``cpu``...) whose attention
    implementation is ``attention`` (``config._attn_implementation``).

    Raises ValueError for an unknown setting or ``packed`` with a prompt-learning method.
    """
    if setting not in BATCHING:
        raise ValueError(f"train.batching must be one of {BATCHING}; got {setting!r}")
    if setting == "packed" and method in UNPACKABLE_METHODS:
        raise ValueError(
            f"train.batching 'packed' cannot be used with train.method {method!r} (virtual tokens before "
            "every row); use 'group_by_length' or 'auto'"
        )
    if setting != "auto":
        return BatchingChoice(setting, "set in train.batching")
    if method in UNPACKABLE_METHODS:
        return BatchingChoice("group_by_length", f"auto: method {method} cannot be packed")
    if device_type == "cuda" and attention in VARLEN_ATTENTION:
        return BatchingChoice("packed", f"auto: {attention} on CUDA takes packed rows as variable-length")
    return BatchingChoice(
        "group_by_length",
        f"auto: {attention or 'this'} attention on {device_type} has no variable-length kernel, so a "
        "packed row would cost attention quadratic in its length",
    )


def pack_features(features: Sequence[Mapping[str, Sequence[Any]]]) -> dict[str, torch.Tensor]:
    """One packed row of shape (1, total tokens): ``input_ids``, ``labels`` (each row's first label set
    to -100, so nothing is predicted across a boundary), ``position_ids`` restarting at 0 per row
    (int64) and ``loss_weights`` (float32, 0.0 where the label is ignored). No ``attention_mask``: its
    absence is what makes transformers read the row boundaries from ``position_ids``."""
    import torch

    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    weights: list[float] = []
    for feature in features:
        row_labels = list(feature["labels"])
        row_weights = [float(w) for w in feature.get("loss_weights", [1.0] * len(row_labels))]
        row_labels[0], row_weights[0] = IGNORE_INDEX, 0.0
        ids += feature["input_ids"]
        labels += row_labels
        weights += [
            w if label != IGNORE_INDEX else 0.0 for w, label in zip(row_weights, row_labels, strict=True)
        ]
        positions += range(len(row_labels))
    return {
        "input_ids": torch.tensor([ids], dtype=torch.long),
        "labels": torch.tensor([labels], dtype=torch.long),
        "position_ids": torch.tensor([positions], dtype=torch.long),
        "loss_weights": torch.tensor([weights], dtype=torch.float32),
    }


class BatchCollator:
    """The data collator of a run: pads (``padded``, ``group_by_length``) or packs (``packed``), and
    counts real and processed tokens of the batches it makes while :attr:`counting`.

    ``padding_efficiency`` = real tokens / processed tokens (rows x width of each padded batch; 1.0 for
    packed batches), over the batches collated while counting (training batches: the trainer pauses
    the count during evaluation).
    """

    def __init__(self, batching: str, *, pad_token_id: int) -> None:
        if batching not in BATCHING or batching == "auto":
            raise ValueError(
                f"BatchCollator needs a resolved batching, one of {BATCHING[1:]}; got {batching!r}"
            )
        self.batching = batching
        self.pad_token_id = pad_token_id
        self.real_tokens = 0
        self.processed_tokens = 0
        self.counting = True

    def __call__(self, features: Sequence[Mapping[str, Sequence[Any]]]) -> dict[str, torch.Tensor]:
        if self.batching == "packed":
            batch = pack_features(features)
        else:
            batch = pad_batch(features, pad_token_id=self.pad_token_id)
        if self.counting:
            self.real_tokens += sum(len(f["input_ids"]) for f in features)
            self.processed_tokens += batch["input_ids"].numel()
        return batch

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Batches collated inside (evaluation) are not counted."""
        before, self.counting = self.counting, False
        try:
            yield
        finally:
            self.counting = before

    @property
    def padding_efficiency(self) -> float | None:
        """Real tokens / processed tokens so far; None before the first counted batch."""
        return self.real_tokens / self.processed_tokens if self.processed_tokens else None
