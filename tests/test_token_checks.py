"""Token-aware clean checks with the base model's tokenizer and chat template (issue 6 item 3)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from assets.clean.steps import run_steps
from assets.clean.token_checks import check_tokens, token_check_step


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from resources.model_loading import load_tokenizer, prepare_base_model

    base = tmp_path_factory.mktemp("base") / "base_model"
    prepare_base_model("embedded", base, seed=0)
    return load_tokenizer(base)


def row(row_id: str, *turns: tuple[str, str], **extra: Any) -> dict[str, Any]:
    messages = [{"role": role, "content": content, **extra.get(row_id, {})} for role, content in turns]
    return {"id": row_id, "messages": messages, "source_file": "in.jsonl", "source_line": 1}


def test_rows_that_fit_are_kept_and_long_ones_are_rejected_with_their_length(tokenizer: Any) -> None:
    short = row("short", ("user", "Hi"), ("assistant", "Hello there."))
    long = row("long", ("user", "word " * 300), ("assistant", "ok"))
    found = check_tokens([short, long], tokenizer=tokenizer, max_seq_length=64)
    assert list(found.rejections) == [1]
    rejection = found.rejections[1]
    assert rejection.reason == "too_long" and "train.max_seq_length 64" in rejection.detail
    tokens = int(rejection.detail.split("renders to ")[1].split(" ")[0])
    assert tokens > 300
    assert 0 < found.counts["max_tokens_kept"] <= 64


def test_special_token_text_is_counted_not_rejected(tokenizer: Any) -> None:
    rows = [row("t1", ("user", "How do I end?"), ("assistant", "Write <|eos|> at the end."))]
    found = check_tokens(rows, tokenizer=tokenizer, max_seq_length=256)
    assert not found.rejections and found.counts["special_token_text_rows"] == 1


def test_a_template_that_refuses_a_conversation_names_its_reason(tokenizer: Any) -> None:
    strict = copy.deepcopy(tokenizer)
    strict.chat_template = (
        "{% for m in messages %}{% if loop.index0 > 0 and m['role'] == messages[loop.index0 - 1]['role'] %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant') }}"
        "{% endif %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    )
    rows = [
        row("ok", ("user", "a"), ("assistant", "b")),
        row("twice", ("user", "a"), ("user", "again"), ("assistant", "b")),
    ]
    result = run_steps(rows, [token_check_step(strict, 256)])
    assert [r["id"] for r in result.kept] == ["ok"]
    [rejected] = result.rejected
    assert (rejected["stage"], rejected["reason"]) == ("tokens", "template_error")
    assert "roles must alternate" in rejected["detail"] and "'twice'" in rejected["detail"]


def test_a_template_without_tool_support_rejects_tool_calls(tokenizer: Any) -> None:
    call = json.dumps([{"type": "function", "function": {"name": "get_time", "arguments": {"city": "Oslo"}}}])
    tool_row = {
        "id": "tool",
        "messages": [
            {"role": "user", "content": "Time in Oslo?"},
            {"role": "assistant", "content": "", "tool_calls": call},
            {"role": "tool", "content": '{"time": "14:05"}'},
            {"role": "assistant", "content": "It is 14:05."},
        ],
    }
    # The embedded template renders role and content only: the call would vanish from training.
    found = check_tokens([tool_row], tokenizer=tokenizer, max_seq_length=256)
    assert found.rejections[0].reason == "template_drops_tool_call"
    assert "get_time" in found.rejections[0].detail
    tools = copy.deepcopy(tokenizer)
    tools.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}"
        "{% for c in m.get('tool_calls') or [] %}<call>{{ c['function']['name'] }}</call>{% endfor %}\n"
        "{% endfor %}"
    )
    assert not check_tokens([tool_row], tokenizer=tools, max_seq_length=256).rejections


def test_rows_are_unchanged_by_the_check(tokenizer: Any, tmp_path: Path) -> None:
    rows = [row("a", ("user", "Hi"), ("assistant", "Hello"))]
    before = copy.deepcopy(rows)
    check_tokens(rows, tokenizer=tokenizer, max_seq_length=32)
    assert rows == before
