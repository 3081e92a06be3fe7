"""What each test row contributes to the evaluation: the tokens it is scored on, or why it is not scored.

A row is scored on its last assistant turn (the reference answer), given everything before it as the
prompt, exactly as it was rendered and masked for training. When prompt and answer together exceed the
token budget (``train.max_seq_length`` of the adapter, never more than the model's positions), the prompt
is cut from the left, as chat front ends drop the oldest context: the question nearest the answer survives,
and the answer itself is never cut. A row whose answer alone does not fit is not scored, with a reason;
it is counted, never dropped silently. Every model (base, candidate, champion) is scored on the same
prepared rows, so their metrics are over the same rows and tokens. Framework-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assets.shared.chat import (
    IGNORE_INDEX,
    ChatTemplateError,
    assistant_spans,
    encode_conversation,
    split_last_answer,
)
from assets.shared.errors import InputError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Why a row is not scored: reason code -> what it means, for the report and the UI.
UNSCORED_REASONS = {
    "answer_too_long": "the reference answer alone is longer than the token budget, so it cannot be scored "
    "whole; raise train.max_seq_length (the model must allow it) or shorten the answer",
    "empty_answer": "the reference answer has no token to score",
}


@dataclass(frozen=True)
class EvalExample:
    """One test row as every model sees it.

    ``input_ids``/``labels``: the scored sequence (prompt, left-truncated, then the answer; labels are
    -100 except on the answer tokens), empty when not scored; ``prompt_ids``: the prompt for generation,
    left-truncated to leave room for the generated tokens; ``reason``: a key of ``UNSCORED_REASONS`` when
    not scored.
    """

    id: str
    category: str | None
    reference: str
    prompt_text: str
    answer_tokens: int
    prompt_tokens_dropped: int
    input_ids: tuple[int, ...] = ()
    labels: tuple[int, ...] = ()
    prompt_ids: tuple[int, ...] = ()
    generation_prompt_tokens_dropped: int = 0
    reason: str | None = None

    @property
    def scored(self) -> bool:
        return self.reason is None


def keep_last(ids: Sequence[int], budget: int, *, bos_token_id: int | None) -> tuple[list[int], int]:
    """The last ``budget`` tokens of ``ids`` (a leading BOS kept in first place, since models are trained
    to see it there) and how many tokens were dropped from the left."""
    if len(ids) <= budget:
        return list(ids), 0
    if bos_token_id is not None and ids and ids[0] == bos_token_id and budget > 1:
        kept = [ids[0], *ids[len(ids) - budget + 1 :]]
    else:
        kept = list(ids[len(ids) - budget :])
    return kept, len(ids) - len(kept)


def token_budget(max_seq_length: int, max_positions: int | None) -> int:
    """Tokens a scored sequence may have: the adapter's training length, within the model's positions."""
    return min(max_seq_length, max_positions) if max_positions else max_seq_length


def prepare_example(
    tokenizer: PreTrainedTokenizerBase,
    row: Mapping[str, Any],
    *,
    max_tokens: int,
    max_new_tokens: int,
) -> EvalExample:
    """Tokenize ``row`` and fit it into ``max_tokens`` (see the module docstring).

    The scored sequence keeps at most ``max_tokens`` tokens; the generation prompt at most
    ``max_tokens - max_new_tokens``, so prompt and generated answer fit what the adapter was trained on.
    Raises ChatTemplateError when the row has no assistant turn or the template hides its answer.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ChatTemplateError(
            f"{type(tokenizer).__name__} is not a fast tokenizer; locating the answer tokens needs character "
            "offsets. Use a model directory that has a tokenizer.json."
        )
    messages = row["messages"]
    prompt_messages, reference = split_last_answer(messages)
    text, spans = assistant_spans(tokenizer, messages)
    ids, offsets = encode_conversation(tokenizer, text, messages)
    start, end = spans[-1]
    # A token belongs to the answer when its first character does, as in training.
    answer = [position for position, (first, _) in enumerate(offsets) if start <= first < end]
    common = {
        "id": str(row.get("id")),
        "category": row.get("category") or None,
        "reference": reference,
        "prompt_text": prompt_messages[-1]["content"] if prompt_messages else "",
        "answer_tokens": len(answer),
    }
    if not answer:
        return EvalExample(**common, prompt_tokens_dropped=0, reason="empty_answer")
    first, last = answer[0], answer[-1]
    if first == 0:
        raise ChatTemplateError(
            f"Row {common['id']!r}: the chat template writes nothing before the answer, so its first token "
            "cannot be predicted. Use a template that starts with a role marker or BOS."
        )
    # Position t predicts token t + 1: the answer's first token needs at least one token before it.
    if last - first + 2 > max_tokens:
        return EvalExample(**common, prompt_tokens_dropped=0, reason="answer_too_long")
    bos = tokenizer.bos_token_id
    prompt = ids[:first]
    kept_prompt, dropped = keep_last(prompt, max_tokens - (last + 1 - first), bos_token_id=bos)
    answer_ids = ids[first : last + 1]
    in_answer = set(answer)
    labels = [IGNORE_INDEX] * len(kept_prompt) + [
        token if first + offset in in_answer else IGNORE_INDEX for offset, token in enumerate(answer_ids)
    ]
    generation_prompt, generation_dropped = keep_last(prompt, max_tokens - max_new_tokens, bos_token_id=bos)
    return EvalExample(
        **common,
        prompt_tokens_dropped=dropped,
        input_ids=tuple(kept_prompt + answer_ids),
        labels=tuple(labels),
        prompt_ids=tuple(generation_prompt),
        generation_prompt_tokens_dropped=generation_dropped,
    )


def prepare_examples(
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Mapping[str, Any]],
    *,
    max_tokens: int,
    max_new_tokens: int,
) -> list[EvalExample]:
    """Every row of ``rows`` prepared by :func:`prepare_example`, in order.

    Raises InputError when ``rows`` is empty, when a row has no assistant turn (clean_examples rejects
    those, so the split is out of date), or when ``max_new_tokens`` leaves no room for a prompt.
    """
    if not rows:
        raise InputError(
            "No rows to evaluate: test_split is empty. Lower split.test_start or raise split.test_fraction "
            "in params.yaml, then materialize split again."
        )
    if max_new_tokens >= max_tokens:
        raise InputError(
            f"evaluate.max_new_tokens ({max_new_tokens}) leaves no room for a prompt within the "
            f"{max_tokens} tokens the adapter was trained on (train.max_seq_length, within the model's "
            "positions): lower evaluate.max_new_tokens in params.yaml."
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
    return [
        prepare_example(tokenizer, row, max_tokens=max_tokens, max_new_tokens=max_new_tokens) for row in rows
    ]


def unscored_counts(examples: Sequence[EvalExample]) -> dict[str, int]:
    """Reason -> number of rows not scored for it."""
    counts: dict[str, int] = {}
    for example in examples:
        if example.reason is not None:
            counts[example.reason] = counts.get(example.reason, 0) + 1
    return dict(sorted(counts.items()))
