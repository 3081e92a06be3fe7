"""The training loss: per-token negative log-likelihood weighted by each assistant turn's ``weight``.

The rule: loss = sum over label tokens of w * nll / sum of w, over every row of an optimizer step (all
gradient-accumulation micro-batches and, with ``average_tokens_across_devices``, all processes), where
w is the weight of the turn the token belongs to. With every weight 1 this is exactly transformers' own
causal-LM loss with ``num_items_in_batch`` (the token-weighted mean over the accumulated batch), so
unweighted data trains as before.

Where the convention comes from: LLaMA-Factory, axolotl and the OpenAI fine-tuning format give each
assistant turn a ``weight``, but all three only honour 0 (context) and 1 (trained). We also honour the
fractions in between, as a scale on the turn's share of the loss (a token of a 0.5 turn counts half a
token in both the sum and the normalizer), which is the usual weighted-mean reading of a per-example
loss weight (torch's ``cross_entropy(weight=...)`` normalises the same way). Weights over 1 count more
than a token.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from assets.shared.chat import IGNORE_INDEX

if TYPE_CHECKING:
    import torch


def weighted_token_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    loss_weights: torch.Tensor,
    normalizer: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """sum(w * nll) / ``normalizer`` (default: sum(w) of this batch), a scalar tensor.

    ``logits`` (rows, tokens, vocab), ``labels`` (rows, tokens; -100 ignored) and ``loss_weights``
    (rows, tokens) are aligned as the model sees them: the logits at position t predict the label at
    t + 1 (the shift of transformers' ``ForCausalLMLoss``); logits longer than the labels (peft's virtual
    tokens before the row) are aligned on the last position. The cross entropy is computed in float32.
    A batch whose weights sum to 0 gives a loss of 0 (with a gradient of 0).
    """
    import torch
    import torch.nn.functional as F

    # Prompt tuning and P-tuning put virtual tokens before the row: their logits predict no label.
    logits = logits[:, logits.shape[1] - labels.shape[1] :]
    targets = labels[:, 1:].reshape(-1)
    weights = loss_weights[:, 1:].reshape(-1).to(torch.float32)
    scores = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    nll = F.cross_entropy(scores, targets.to(scores.device), ignore_index=IGNORE_INDEX, reduction="none")
    total = (nll * weights.to(nll.device)).sum()
    denominator = weights.sum() if normalizer is None else torch.as_tensor(normalizer, dtype=torch.float32)
    return total / denominator.to(total.device).clamp_min(torch.finfo(torch.float32).tiny)


def row_weighted_sums(
    logits: torch.Tensor, labels: torch.Tensor, loss_weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: sum(w * nll) and sum(w), two float32 tensors of shape (rows,), aligned as in
    :func:`weighted_token_loss` (whose batch value is their sums' ratio)."""
    import torch
    import torch.nn.functional as F

    logits = logits[:, logits.shape[1] - labels.shape[1] :]
    targets = labels[:, 1:]
    weights = loss_weights[:, 1:].to(torch.float32)
    scores = logits[:, :-1].float()
    nll = F.cross_entropy(
        scores.reshape(-1, scores.shape[-1]),
        targets.reshape(-1).to(scores.device),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).reshape(targets.shape)
    weights = weights.to(nll.device)
    return (nll * weights).sum(dim=1), weights.sum(dim=1)


def weighted_loss_trainer(trainer_class: type) -> type:
    """``trainer_class`` (transformers' Trainer) computing :func:`weighted_token_loss` from the batch's
    ``loss_weights``.

    Three Trainer hooks (transformers 5.x) are overridden: ``compute_loss`` (the weighted loss, model
    called without labels and with ``use_cache=False`` so packed rows are detected),
    ``_get_num_items_in_batch`` (the sum of weights over the accumulated batch, gathered across
    processes as transformers gathers its token count) and ``_track_num_input_tokens`` (a packed batch
    has no attention mask and no padding: every token counts). ``evaluate`` pauses the collator's
    padding count, so it measures training batches only.
    """
    import torch

    class WeightedLossTrainer(trainer_class):  # type: ignore[misc, valid-type]
        # compute_loss divides by the accumulated batch's weight sum: already scaled for accumulation.
        loss_is_scaled_for_ga = True

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            inputs = dict(inputs)
            labels = inputs.pop("labels")
            weights = inputs.pop("loss_weights", None)
            if weights is None:
                weights = (labels != IGNORE_INDEX).to(torch.float32)
            outputs = model(**inputs, use_cache=False)
            loss = weighted_token_loss(outputs.logits, labels, weights, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                # The normalizer is the weight sum of all processes; DDP averages gradients over them.
                loss = loss * self.accelerator.num_processes
            return (loss, outputs) if return_outputs else loss

        def _get_num_items_in_batch(self, batch_samples: list, device: Any) -> Any:
            if not batch_samples or "labels" not in batch_samples[0]:
                return None
            total = sum(
                (
                    batch["loss_weights"][..., 1:].to(torch.float32).sum()
                    if "loss_weights" in batch
                    else (batch["labels"][..., 1:] != IGNORE_INDEX).sum().to(torch.float32)
                )
                for batch in batch_samples
            )
            total = torch.as_tensor(total, dtype=torch.float32, device=device)
            if self.args.average_tokens_across_devices and self.args.world_size > 1:
                total = self.accelerator.gather(total).sum()
            return total

        def _track_num_input_tokens(self, inputs: dict[str, Any]) -> None:
            if "attention_mask" not in inputs and "position_ids" in inputs:
                if self.args.include_num_input_tokens_seen != "no":
                    count = torch.as_tensor(inputs["input_ids"].numel(), device=self.args.device)
                    self.state.num_input_tokens_seen += int(self.accelerator.gather(count).sum().item())
                return
            super()._track_num_input_tokens(inputs)

        def evaluation_loop(
            self,
            dataloader: Any,
            description: str,
            prediction_loss_only: bool | None = None,
            ignore_keys: list[str] | None = None,
            metric_key_prefix: str = "eval",
        ) -> Any:
            """The validation loss as the same rule over the whole split: sum(w * nll) / sum(w) over
            every validation token, whatever the batch size or the number of processes. transformers'
            own loop averages per-batch means, so the figure moved with how rows fell into batches (and
            shards, under DDP). Each row's two sums are gathered with ``gather_for_metrics``, which
            drops the rows accelerate repeats to even out the shards."""
            from transformers.trainer_utils import EvalLoopOutput

            model = self._wrap_model(self.model, training=False, dataloader=dataloader)
            model.eval()
            totals, denominators = [], []
            for inputs in dataloader:
                inputs = self._prepare_inputs(dict(inputs))
                labels = inputs.pop("labels")
                weights = inputs.pop("loss_weights", None)
                if weights is None:
                    weights = (labels != IGNORE_INDEX).to(torch.float32)
                with torch.no_grad():
                    logits = model(**inputs, use_cache=False).logits
                total, denominator = row_weighted_sums(logits, labels, weights)
                totals.append(self.accelerator.gather_for_metrics(total))
                denominators.append(self.accelerator.gather_for_metrics(denominator))
            total = torch.cat(totals).sum() if totals else torch.tensor(0.0)
            denominator = torch.cat(denominators).sum() if denominators else torch.tensor(0.0)
            loss = float(total / denominator) if float(denominator) > 0 else float("nan")
            rows = int(sum(len(t) for t in totals))
            return EvalLoopOutput(
                predictions=None,
                label_ids=None,
                metrics={f"{metric_key_prefix}_loss": loss},
                num_samples=rows,
            )

        def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
            paused = getattr(self.data_collator, "paused", None)
            with paused() if paused is not None else contextlib.nullcontext():
                return super().evaluate(*args, **kwargs)

    return WeightedLossTrainer
