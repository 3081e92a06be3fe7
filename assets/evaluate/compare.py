"""Score the base model and each trained model (candidate, champion) on the same prepared rows, loading
the base as few times as possible, and measure how far the candidate moves the base's logits.

Each trained directory is loaded as its training record (``training_config.json``) says: a peft adapter
(any method) on the base loaded with the quantization it was trained with, or, for full fine-tuning,
the directory itself as a plain transformers model. Candidate and champion may be of different methods.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assets.evaluate.examples import EvalExample, prepare_examples, token_budget, unscored_counts
from assets.evaluate.scoring import EvalSettings, ModelScores, generated_examples, score_model
from assets.shared.chat import IGNORE_INDEX, pad_batch
from assets.shared.errors import InputError
from assets.shared.training_record import read_training_record

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# Rows (the first scored ones) on which candidate and base logits are compared. A fixed, small number:
# an adapter that changed nothing gives 0 on any row, and one that changed the model shows it on a few.
LOGIT_CHECK_ROWS = 32
ADAPTER_CONFIG_FILE = "adapter_config.json"


@dataclass(frozen=True)
class TrainedModel:
    """How to load one trained directory: ``method`` and ``quantization`` from its training record;
    ``peft_type`` and ``virtual_tokens`` from its ``adapter_config.json`` (None and 0 for ``full``).

    ``virtual_tokens``: positions a soft prompt (prefix, prompt, p_tuning) takes before the text."""

    path: Path
    method: str
    quantization: str | None
    peft_type: str | None
    virtual_tokens: int

    @property
    def full(self) -> bool:
        return self.peft_type is None

    @property
    def prompt_learning(self) -> bool:
        return self.virtual_tokens > 0

    def shares_base_with(self, other: TrainedModel | None) -> bool:
        """Whether this adapter can join ``other``'s peft model (peft ``load_adapter``): same kind of
        injected layers on the same base. Soft prompts never share: each gets its own wrapper."""
        return (
            other is not None
            and not self.full
            and not self.prompt_learning
            and (self.peft_type, self.quantization) == (other.peft_type, other.quantization)
        )


def describe_trained(path: Path) -> TrainedModel:
    """Read what :class:`TrainedModel` needs from ``path``.

    Raises InputError (TrainingRecordError) when the training record is missing or unreadable, and when a
    ``full`` directory has no ``config.json`` or an adapter directory no ``adapter_config.json``.
    """
    path = Path(path)
    record = read_training_record(path)
    if record.method == "full":
        if not (path / "config.json").is_file():
            raise InputError(
                f"{path} was trained with train.method 'full' but holds no config.json: it is not a "
                "complete model. Re-materialize adapter."
            )
        return TrainedModel(path, record.method, record.quantization, None, 0)
    config_path = path / ADAPTER_CONFIG_FILE
    if not config_path.is_file():
        raise InputError(
            f"{config_path} is missing: {path} is recorded as a {record.method!r} adapter but holds no peft "
            "adapter. Re-materialize adapter."
        )
    config = json.loads(config_path.read_text(encoding="utf-8"))
    # peft's prompt-learning configs (prefix, prompt, p_tuning) are the ones with num_virtual_tokens.
    virtual = int(config.get("num_virtual_tokens") or 0)
    return TrainedModel(path, record.method, record.quantization, str(config.get("peft_type")), virtual)


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def load_full_model(path: Path, *, dtype: Any, device: Any) -> PreTrainedModel:
    """A fully fine-tuned model directory as a plain transformers model, in ``dtype`` (a torch dtype)
    on ``device``: those of the base it is compared with."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype, device_map={"": device}, local_files_only=True
    )
    return model.eval()


def evaluate_models(
    load_base: Callable[[str | None], PreTrainedModel],
    tokenizer: PreTrainedTokenizerBase,
    trained: dict[str, Path],
    rows: Sequence[dict[str, Any]],
    settings: EvalSettings,
    *,
    aliases: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The report's measured parts for "base" and each named trained directory (``candidate`` first),
    all on the rows of ``rows`` prepared once (assets/evaluate/examples.py), so every model is scored
    on the same rows and tokens.

    ``load_base(quantization)`` returns a fresh base loaded with that quantization (None: full
    precision). The base is loaded as the candidate was trained and scored first, before any layer is
    injected; adapters are then attached to it in turn (peft ``load_adapter`` when they are of the same
    kind and quantization), so a real multi-GB base is usually loaded once. A champion of another
    method or quantization gets a base of its own; a ``full`` model is loaded from its directory (a
    ``full`` candidate is held beside the untouched base for the logit comparison). The
    token budget leaves room for the largest soft prompt among them. ``aliases`` maps a name to a
    scored one whose results it shares (``{"champion": "candidate"}`` when the candidate is the
    champion). Returns ``models`` (name -> metrics), ``examples`` (one dict per row), ``unscored``
    (reason -> count), ``candidate_vs_base`` (logit differences) and ``max_tokens`` (the token budget).
    Raises InputError when a directory is not a trained model (see :func:`describe_trained`).
    """
    from peft import PeftModel

    described = {name: describe_trained(path) for name, path in trained.items()}
    # The candidate first: the base must still be untouched when the candidate is compared with it.
    order = sorted(described, key=lambda name: name != "candidate")
    first = described[order[0]] if order else None
    base_quantization = first.quantization if first else None
    base_model = load_base(base_quantization)
    max_positions = getattr(base_model.config, "max_position_embeddings", None)
    virtual = max((d.virtual_tokens for d in described.values()), default=0)
    if max_positions and virtual:
        # A soft prompt takes positions before the text (peft prepends it as embeddings or keys/values).
        max_positions -= virtual
    max_tokens = token_budget(settings.max_seq_length, max_positions)
    examples = prepare_examples(
        tokenizer, rows, max_tokens=max_tokens, max_new_tokens=settings.max_new_tokens
    )
    scores = {"base": score_model(base_model, tokenizer, examples, settings)}
    dtype, device = base_model.dtype, base_model.device
    logit_check: dict[str, Any] | None = None
    # ``base_model`` stays None once adapter layers were injected into it or it was let go.
    peft_model: Any = None
    hosted: TrainedModel | None = None
    for name in order:
        spec = described[name]
        if spec.full:
            model = load_full_model(spec.path, dtype=dtype, device=device)
            scores[name] = score_model(model, tokenizer, examples, settings)
            if name == "candidate":
                # The candidate comes first: base_model is still the untouched base.
                logit_check = logit_difference(
                    model,
                    examples,
                    pad_token_id=tokenizer.pad_token_id,
                    batch_size=settings.batch_size,
                    base=base_model,
                )
            del model
            _free_memory()
            continue
        if spec.shares_base_with(hosted):
            peft_model.load_adapter(str(spec.path), adapter_name=name)
        else:
            if base_model is None or spec.quantization != base_quantization:
                # Another method or quantization than the adapters before: a base of its own, after
                # letting the previous one go (two bases never coexist).
                base_model = peft_model = None
                _free_memory()
                base_model = load_base(spec.quantization)
            peft_model = PeftModel.from_pretrained(base_model, str(spec.path), adapter_name=name)
            base_model = None
        hosted = spec
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
        "methods": {name: spec.method for name, spec in described.items()},
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
    candidate: Any,
    examples: Sequence[EvalExample],
    *,
    pad_token_id: int,
    batch_size: int,
    base: Any = None,
) -> dict[str, Any]:
    """Max and mean |candidate logit - base logit| over the answer positions of the first
    ``LOGIT_CHECK_ROWS`` scored rows. ``base`` is the base model; None: ``candidate`` is a peft model
    and the base is the same model with its adapters disabled (peft ``disable_adapter``).

    An adapter whose LoRA product is zero (untrained, or a learning rate too small to move it) gives 0.
    """
    import contextlib

    import torch

    from assets.evaluate.scoring import text_logits

    chosen = [example for example in examples if example.scored][:LOGIT_CHECK_ROWS]
    largest, total, count = 0.0, 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(chosen), batch_size):
            features = [
                {"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
                for e in chosen[start : start + batch_size]
            ]
            batch = {
                key: value.to(candidate.device)
                for key, value in pad_batch(features, pad_token_id=pad_token_id).items()
            }
            inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
            # The logits that predict answer tokens: position t predicts token t + 1.
            positions = batch["labels"][:, 1:] != IGNORE_INDEX
            after = text_logits(candidate, inputs)[:, :-1][positions].float()
            disabled = candidate.disable_adapter() if base is None else contextlib.nullcontext()
            with disabled:
                before = text_logits(candidate if base is None else base, inputs)[:, :-1][positions].float()
            difference = (after - before).abs()
            largest = max(largest, float(difference.max()))
            total += float(difference.sum())
            count += difference.numel()
    return {
        "max_abs_logit_diff": largest,
        "mean_abs_logit_diff": total / count if count else 0.0,
        "rows": len(chosen),
    }
