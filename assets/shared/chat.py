"""Turn conversations into token ids with labels on the assistant tokens only.

The model should learn to answer, not to predict the user's words, so every label is -100 (ignored by the
loss) except the tokens of assistant turns, including the template's end-of-turn marker so the model
learns where to stop. The assistant spans are found by rendering the conversation turn by turn with the
tokenizer's own chat template, so no ``{% generation %}`` markers are needed (real templates, such as
Qwen2.5's, have none).
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from assets.shared.errors import InputError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100
Message = Mapping[str, str]


class ChatTemplateError(InputError):
    """A conversation cannot be rendered or its assistant turns cannot be located."""


def template_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages as chat templates take them: role and content, plus ``tool_calls`` (stored as JSON text,
    passed parsed, in the OpenAI shape transformers templates expect) when a turn has them."""
    out: list[dict[str, Any]] = []
    for message in messages:
        item: dict[str, Any] = {"role": message["role"], "content": message.get("content") or ""}
        if message.get("tool_calls"):
            item["tool_calls"] = json.loads(message["tool_calls"])
        out.append(item)
    return out


def render(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message], *, prompt: bool = False) -> str:
    """The conversation as the chat template writes it (with the assistant prompt when ``prompt``)."""
    return tokenizer.apply_chat_template(
        template_messages(messages), tokenize=False, add_generation_prompt=prompt
    )


def _span_by_prefix(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message], index: int, text: str
) -> tuple[int, int] | None:
    """Assistant turn ``index`` as the text between the generation prompt and the rendered turn, if the
    template renders conversations prefix-consistently (most do); None otherwise."""
    if index == 0:
        return None
    before = render(tokenizer, messages[:index], prompt=True)
    through = render(tokenizer, messages[: index + 1], prompt=False)
    if text.startswith(through) and through.startswith(before) and len(through) > len(before):
        return len(before), len(through)
    return None


def _span_by_search(
    tokenizer: PreTrainedTokenizerBase, content: str, text: str, cursor: int
) -> tuple[int, int] | None:
    """Assistant content found verbatim after ``cursor``, extended over an EOS right after it."""
    needle = content.strip()
    start = text.find(needle, cursor)
    if not needle or start < 0:
        return None
    end = start + len(needle)
    eos = tokenizer.eos_token
    if eos and text.startswith(eos, end):
        end += len(eos)
    return start, end


def assistant_spans(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message]
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant turns."""
    text = render(tokenizer, messages, prompt=False)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        span = _span_by_prefix(tokenizer, messages, index, text)
        if span is None or span[0] < cursor:
            span = _span_by_search(tokenizer, message["content"], text, cursor)
        if span is None:
            raise ChatTemplateError(
                f"Could not locate assistant turn {index} ({message['content'][:40]!r}...) in the text the "
                "chat template rendered. The template rewrites assistant content; use a template that keeps "
                "it verbatim."
            )
        # Whitespace the template writes after the turn (a newline after the end-of-turn marker) is
        # formatting, not something the model has to produce before it stops.
        start, end = span
        while end > start and text[end - 1].isspace():
            end -= 1
        spans.append((start, end))
        cursor = span[1]
    return text, spans


def content_spans(text: str, messages: Sequence[Message]) -> list[tuple[int, int]]:
    """Character spans of the messages' contents in the rendered ``text``, found in order. A content the
    template rewrote is not found; its characters are then treated as template text."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for message in messages:
        content = message.get("content") or ""
        start = text.find(content, cursor) if content else -1
        if start >= 0:
            spans.append((start, start + len(content)))
            cursor = start + len(content)
    return spans


def encode_rendered(
    tokenizer: PreTrainedTokenizerBase, text: str, contents: Sequence[tuple[int, int]]
) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids and character offsets of a rendered conversation.

    The template's own text is encoded as usual, so its markers become control tokens; each message's
    content is encoded with ``split_special_tokens=True``, so text such as ``<|eos|>`` inside an answer
    stays text and never becomes a real end-of-sequence (or role) token. Pieces are encoded separately,
    so no token spans a content boundary.
    """
    ids: list[int] = []
    offsets: list[tuple[int, int]] = []
    cuts = [(0, False)]
    for start, end in contents:
        cuts += [(start, True), (end, False)]
    cuts.append((len(text), False))
    for (start, is_content), (end, _) in itertools.pairwise(cuts):
        if end <= start:
            continue
        encoding = tokenizer(
            text[start:end],
            add_special_tokens=False,
            return_offsets_mapping=True,
            split_special_tokens=is_content,
        )
        ids += encoding["input_ids"]
        offsets += [(start + a, start + b) for a, b in encoding["offset_mapping"]]
    return ids, offsets


def encode_conversation(
    tokenizer: PreTrainedTokenizerBase, text: str, messages: Sequence[Message]
) -> tuple[list[int], list[tuple[int, int]]]:
    """Ids and offsets of ``text``, the rendering of ``messages``, with their contents kept as text
    (:func:`content_spans` then :func:`encode_rendered`)."""
    return encode_rendered(tokenizer, text, content_spans(text, messages))


def encode_messages(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message], *, generation_prompt: bool = False
) -> list[int]:
    """Token ids of a conversation rendered with the chat template (with the assistant prompt appended
    when ``generation_prompt``), content special-token text kept as text (see :func:`encode_rendered`)."""
    return encode_conversation(tokenizer, render(tokenizer, messages, prompt=generation_prompt), messages)[0]


def turn_weight(message: Message, index: int) -> float:
    """The loss weight of assistant turn ``index``: its ``weight`` (None or absent: 1.0).

    Raises ChatTemplateError for a weight that is not a finite number >= 0.
    """
    weight = message.get("weight")
    if weight is None:
        return 1.0
    if (
        isinstance(weight, bool)
        or not isinstance(weight, numbers.Real)
        or not math.isfinite(weight)
        or weight < 0
    ):
        raise ChatTemplateError(
            f"Turn {index} has weight {weight!r}; a turn's weight must be a finite number >= 0 "
            "(0: context, not trained; 1: trained; in between: trained with that share of the loss)."
        )
    return float(weight)


def tokenize_conversation(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message], *, max_seq_length: int
) -> dict[str, list[Any]]:
    """``input_ids``, ``attention_mask``, ``labels`` (assistant tokens only, of turns whose ``weight`` is
    not 0) and ``loss_weights`` (each labelled token's turn weight, 0.0 elsewhere; floats), cut to
    ``max_seq_length``.

    A turn's weight multiplies its tokens' loss (see assets/train/loss.py for the weighted mean).
    Special-token text inside a message is encoded as text (:func:`encode_rendered`). Raises
    ChatTemplateError for a slow tokenizer, an assistant turn the template rewrote or a weight < 0.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ChatTemplateError(
            f"{type(tokenizer).__name__} is not a fast tokenizer; assistant-token masking needs character "
            "offsets. Use a model directory that has a tokenizer.json."
        )
    text, spans = assistant_spans(tokenizer, messages)
    # A turn with weight 0 is context, not a target (LLaMA-Factory's and axolotl's per-turn weight);
    # any other weight scales its tokens' share of the loss.
    weights = [turn_weight(m, i) for i, m in enumerate(messages) if m["role"] == "assistant"]
    weighted = [(span, w) for span, w in zip(spans, weights, strict=True) if w > 0]
    # The template already wrote BOS and other special tokens as text.
    all_ids, all_offsets = encode_conversation(tokenizer, text, messages)
    input_ids = all_ids[:max_seq_length]
    labels = [IGNORE_INDEX] * len(input_ids)
    loss_weights = [0.0] * len(input_ids)
    # A token belongs to the turn its first character is in.
    span_iter = iter(weighted)
    current = next(span_iter, None)
    for position, (start, _end) in enumerate(all_offsets[: len(input_ids)]):
        while current is not None and start >= current[0][1]:
            current = next(span_iter, None)
        if current is not None and current[0][0] <= start:
            labels[position] = input_ids[position]
            loss_weights[position] = current[1]
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": labels,
        "loss_weights": loss_weights,
    }


def tokenize_rows(
    tokenizer: PreTrainedTokenizerBase, rows: Iterable[Mapping[str, Any]], *, max_seq_length: int
) -> list[dict[str, list[Any]]]:
    """Tokenize every row's ``messages``; rows whose assistant tokens were all cut off are left out,
    since they carry no training signal."""
    features = []
    for row in rows:
        feature = tokenize_conversation(tokenizer, row["messages"], max_seq_length=max_seq_length)
        if any(label != IGNORE_INDEX for label in feature["labels"]):
            features.append(feature)
    return features


def pad_batch(
    features: Sequence[Mapping[str, Sequence[int]]], *, pad_token_id: int, padding_side: str = "right"
) -> dict[str, torch.Tensor]:
    """Stack features into tensors of shape (rows, longest row): ids padded with ``pad_token_id``, masks
    with 0, labels with -100 (all int64) and ``loss_weights``, when present, with 0.0 (float32)."""
    import torch

    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right'; got {padding_side!r}.")
    width = max(len(f["input_ids"]) for f in features)
    fill = {"input_ids": pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX, "loss_weights": 0.0}
    batch: dict[str, list[list[Any]]] = {key: [] for key in fill if key in features[0]}
    for feature in features:
        for key, rows in batch.items():
            values = list(feature[key])
            padding = [fill[key]] * (width - len(values))
            rows.append(padding + values if padding_side == "left" else values + padding)
    return {
        key: torch.tensor(rows, dtype=torch.float32 if key == "loss_weights" else torch.long)
        for key, rows in batch.items()
    }


def split_last_answer(messages: Sequence[Message]) -> tuple[list[dict[str, str]], str]:
    """The conversation before its last assistant turn (the prompt) and that turn's content."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index]["role"] == "assistant":
            prompt = [{"role": m["role"], "content": m["content"]} for m in messages[:index]]
            return prompt, messages[index]["content"]
    raise ChatTemplateError("The conversation has no assistant turn to use as the reference answer.")
