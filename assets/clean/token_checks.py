"""Token-aware checks: each row as the base model will see it, with its tokenizer and chat template.

Done in the clean stage, so a row that cannot be trained on is a named rejection in rejected_examples
instead of a crash in training or a silently unscorable test row later:

- ``template_error``: the chat template refuses the conversation (e.g. roles that must alternate, a
  role it does not know); the template's own message is the detail.
- ``template_drops_tool_call``: a turn's tool call does not appear in the rendered text, so the
  template does not support tool calls and training would learn an answer without its call.
- ``too_long``: the rendered conversation is longer than ``train.max_seq_length`` tokens. Policy:
  reject. Training would cut the end of the last answer (which then has no end token) and evaluation
  could not score it; trimming earlier turns is not done, since it changes what the answer replies to.

Rows whose content contains the text of a special token (``<|eos|>``...) are counted, not rejected:
:func:`assets.shared.chat.encode_rendered` encodes message content with special tokens split, so that
text stays text in training and evaluation. Framework-free.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from assets.clean.steps import Filtered, FilterStep, Rejection
from assets.shared.chat import encode_conversation, render

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Row = dict[str, Any]


def _tool_names(message: Row) -> list[str]:
    """Function names of a turn's tool calls (stored as JSON text)."""
    calls = json.loads(message.get("tool_calls") or "[]")
    return [str((call.get("function") or call).get("name", "")) for call in calls if isinstance(call, dict)]


def check_tokens(rows: Sequence[Row], *, tokenizer: PreTrainedTokenizerBase, max_seq_length: int) -> Filtered:
    """Render and tokenize every row; reject what the model cannot be trained on (see the module
    docstring). Counts: ``special_token_text_rows`` and the longest rendered length kept
    (``max_tokens_kept``)."""
    special = [token for token in tokenizer.all_special_tokens if token]
    rejections: dict[int, Rejection] = {}
    with_special = 0
    longest = 0
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
        if tokens > max_seq_length:
            rejections[position] = Rejection(
                "too_long",
                f"renders to {tokens} tokens with the base model's chat template, more than "
                f"train.max_seq_length {max_seq_length}: the last answer would be cut; raise "
                "train.max_seq_length or shorten the row",
            )
            continue
        longest = max(longest, tokens)
        if any(token in (message.get("content") or "") for message in messages for token in special):
            with_special += 1
    counts = {"special_token_text_rows": with_special, "max_tokens_kept": longest}
    return Filtered(rejections, counts=counts)


def token_check_step(tokenizer: PreTrainedTokenizerBase, max_seq_length: int) -> FilterStep:
    """The ``tokens`` filter step of the clean pipeline for this tokenizer and length."""
    return FilterStep(
        "tokens", lambda rows: check_tokens(rows, tokenizer=tokenizer, max_seq_length=max_seq_length)
    )
