"""Token-aware checks: each row as the base model will see it, with its tokenizer and chat template.

Done in the clean stage, so a row that cannot be trained on is a named rejection in rejected_examples
instead of a crash in training or a silently unscorable test row later:

- ``template_error``: the chat template refuses the conversation (e.g. roles that must alternate, a
  role it does not know); the template's own message is the detail.
- ``template_drops_tool_call``: a turn's tool call does not appear in the rendered text, so the
  template does not support tool calls and training would learn an answer without its call.
- ``too_long``: the rendered conversation is longer than ``train.max_seq_length`` tokens. Training
  would cut the end of the last answer (which then has no end token) and evaluation could not score it.
  ``clean.too_long_policy`` decides: ``reject`` (the default) rejects the row; ``trim_history`` first
  drops its earliest exchanges (a user turn with the assistant and tool turns that answer it; the
  system turn stays) one at a time, until the rendering fits, keeping the last exchange whole (a rewrite
  step, ``trim_history``, counted in ``trimmed_rows`` and ``trimmed_turns``). A row whose last exchange
  alone is still too long is rejected as ``too_long``. Trimming changes what an earlier answer replied
  to, never the last one, which is the one a multi-turn row is usually kept for; it is opt-in.

Rows whose content contains the text of a special token (``<|eos|>``...) are counted, not rejected:
:func:`assets.shared.chat.encode_rendered` encodes message content with special tokens split, so that
text stays text in training and evaluation. Framework-free.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from assets.clean.steps import Filtered, FilterStep, Rejection, RewriteStep, Rewritten, Step
from assets.shared.chat import encode_conversation, render

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Row = dict[str, Any]
TOO_LONG_POLICIES = ("reject", "trim_history")


def _tool_names(message: Row) -> list[str]:
    """Function names of a turn's tool calls (stored as JSON text)."""
    calls = json.loads(message.get("tool_calls") or "[]")
    return [str((call.get("function") or call).get("name", "")) for call in calls if isinstance(call, dict)]


def check_tokens(
    rows: Sequence[Row],
    *,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    too_long_policy: str = "reject",
) -> Filtered:
    """Render and tokenize every row; reject what the model cannot be trained on (see the module
    docstring). Counts: ``special_token_text_rows`` and the longest rendered length kept
    (``max_tokens_kept``)."""
    special = [token for token in tokenizer.all_special_tokens if token]
    rejections: dict[int, Rejection] = {}
    with_special = 0
    longest = 0
    lengths: list[int] = []
    for position, row in enumerate(rows):
        messages = row["messages"]
        try:
            text = render(tokenizer, messages)
        except Exception as exc:  # a template raises whatever its author chose (jinja's TemplateError...)
            rejections[position] = Rejection(
                "template_error", f"the base model's chat template cannot render it: {exc}"
            )
            continue
        missing = [name for message in messages for name in _tool_names(message) if name and name not in text]
        if missing:
            rejections[position] = Rejection(
                "template_drops_tool_call",
                f"the base model's chat template does not render tool call {missing[0]!r}: it cannot "
                "train tool use; use a base model whose template supports tools, or remove tool rows",
            )
            continue
        tokens = len(encode_conversation(tokenizer, text, messages)[0])
        lengths.append(tokens)
        if tokens > max_seq_length:
            rejections[position] = Rejection(
                "too_long",
                f"renders to {tokens} tokens with the base model's chat template, more than "
                f"train.max_seq_length {max_seq_length}: the last answer would be cut; raise "
                "train.max_seq_length or shorten the row"
                + (
                    " (its last exchange alone is too long, so clean.too_long_policy trim_history "
                    "could not make it fit)"
                    if too_long_policy == "trim_history"
                    else ", or set clean.too_long_policy: trim_history to drop its earlier turns"
                ),
            )
            continue
        longest = max(longest, tokens)
        if any(token in (message.get("content") or "") for message in messages for token in special):
            with_special += 1
    counts = {"special_token_text_rows": with_special, "max_tokens_kept": longest}
    counts.update(length_histogram(lengths, max_seq_length))
    return Filtered(rejections, counts=counts)


HISTOGRAM_PREFIX = "token_length_up_to_"
# Bucket edges as fractions of train.max_seq_length: how much room the data leaves, and how much is over.
HISTOGRAM_FRACTIONS = (0.125, 0.25, 0.5, 0.75, 1.0)


def length_histogram(lengths: Sequence[int], max_seq_length: int) -> dict[str, int]:
    """Rendered lengths (tokens) counted into buckets whose upper edges are fractions of
    ``max_seq_length`` (``token_length_up_to_<edge>``), plus ``token_length_over_<max>`` for rows too long.
    Every bucket is present, empty ones as 0, so the table always has the same rows."""
    edges = sorted({max(1, round(max_seq_length * fraction)) for fraction in HISTOGRAM_FRACTIONS})
    buckets = {f"{HISTOGRAM_PREFIX}{edge}": 0 for edge in edges}
    over = f"token_length_over_{max_seq_length}"
    buckets[over] = 0
    for length in lengths:
        edge = next((e for e in edges if length <= e), None)
        buckets[f"{HISTOGRAM_PREFIX}{edge}" if edge is not None else over] += 1
    return buckets


def _exchanges(messages: Sequence[Row]) -> tuple[list[Row], list[list[Row]]]:
    """The system turn (if first) and the rest cut into exchanges, each opening at a user turn (turns
    before the first user turn are an exchange of their own)."""
    head = [messages[0]] if messages and messages[0]["role"] == "system" else []
    exchanges: list[list[Row]] = []
    for message in messages[len(head) :]:
        if message["role"] == "user" or not exchanges:
            exchanges.append([])
        exchanges[-1].append(message)
    return head, exchanges


def _length(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Row]) -> int | None:
    """Rendered length in tokens, or None when the template refuses the conversation."""
    try:
        text = render(tokenizer, messages)
    except Exception:  # the token filter reports template errors, with the template's message
        return None
    return len(encode_conversation(tokenizer, text, messages)[0])


def trim_history(
    rows: Sequence[Row], *, tokenizer: PreTrainedTokenizerBase, max_seq_length: int
) -> Rewritten:
    """For each row that renders longer than ``max_seq_length`` tokens, the system turn and its latest
    exchanges that fit (the earliest dropped one at a time); rows that fit, that the template refuses,
    or whose last exchange alone is too long are left alone (the token filter then rejects them with a
    reason). Counts: ``trimmed_rows``, ``trimmed_turns``."""
    trimmed: dict[int, list[Row]] = {}
    dropped = 0
    for position, row in enumerate(rows):
        length = _length(tokenizer, row["messages"])
        if length is None or length <= max_seq_length:
            continue
        head, exchanges = _exchanges(row["messages"])
        for start in range(1, len(exchanges)):
            kept = head + [message for exchange in exchanges[start:] for message in exchange]
            length = _length(tokenizer, kept)
            if length is not None and length <= max_seq_length:
                trimmed[position] = kept
                dropped += len(row["messages"]) - len(kept)
                break
    return Rewritten({}, {"trimmed_rows": len(trimmed), "trimmed_turns": dropped}, messages=trimmed)


def token_check_step(
    tokenizer: PreTrainedTokenizerBase, max_seq_length: int, too_long_policy: str = "reject"
) -> FilterStep:
    """The ``tokens`` filter step of the clean pipeline for this tokenizer and length."""
    return FilterStep(
        "tokens",
        lambda rows: check_tokens(
            rows, tokenizer=tokenizer, max_seq_length=max_seq_length, too_long_policy=too_long_policy
        ),
    )


def token_check_steps(
    tokenizer: PreTrainedTokenizerBase, max_seq_length: int, too_long_policy: str = "reject"
) -> list[Step]:
    """The token-aware steps for ``clean.too_long_policy``: the ``tokens`` filter, after the
    ``trim_history`` rewrite under ``trim_history``. Raises ValueError for another policy."""
    if too_long_policy not in TOO_LONG_POLICIES:
        raise ValueError(
            f"clean.too_long_policy must be one of {', '.join(TOO_LONG_POLICIES)}, got {too_long_policy!r}"
        )
    steps: list[Step] = []
    if too_long_policy == "trim_history":
        trim = RewriteStep(
            "tokens",
            lambda rows: trim_history(rows, tokenizer=tokenizer, max_seq_length=max_seq_length),
            name="trim_history",
        )
        steps.append(trim)
    return [*steps, token_check_step(tokenizer, max_seq_length, too_long_policy)]
