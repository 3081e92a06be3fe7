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
    # The histogram holds both rows: the short one in a bucket under the limit, the long one over it.
    assert found.counts["token_length_over_64"] == 1
    assert sum(v for k, v in found.counts.items() if k.startswith("token_length_up_to_")) == 1


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


# --- clean.too_long_policy: trim_history -----------------------------------------------------------------


def test_trim_history_drops_the_earliest_exchanges_until_the_row_fits(tokenizer: Any) -> None:
    from assets.clean.token_checks import token_check_steps

    turns = [
        ("system", "Be brief."),
        ("user", "word " * 200),
        ("assistant", "Noted."),
        ("user", "What now?"),
        ("assistant", "Rest."),
        ("user", "Hi"),
        ("assistant", "Hello there."),
    ]
    fits = row("fits", ("user", "Hi"), ("assistant", "Hello there."))
    rows = [row("long", *turns), fits]
    result = run_steps(rows, token_check_steps(tokenizer, 64, "trim_history"))
    assert [r["id"] for r in result.kept] == ["long", "fits"] and not result.rejected
    # the system turn stays, the first exchange goes, the next one is kept since the row now fits
    assert [(m["role"], m["content"]) for m in result.kept[0]["messages"]] == [turns[0], *turns[3:]]
    assert result.kept[1]["messages"] == fits["messages"]
    [trim] = [step for step in result.step_counts if step["step"] == "trim_history"]
    assert trim["rewritten"] == 1 and trim["changes"] == {
        "changed_rows": 1,
        "trimmed_rows": 1,
        "trimmed_turns": 2,
    }


def test_trim_history_rejects_a_row_whose_last_exchange_is_too_long(tokenizer: Any) -> None:
    from assets.clean.token_checks import token_check_steps

    rows = [
        row("long", ("user", "Hi"), ("assistant", "Hello."), ("user", "word " * 200), ("assistant", "ok"))
    ]
    result = run_steps(rows, token_check_steps(tokenizer, 64, "trim_history"))
    [rejected] = result.rejected
    assert rejected["reason"] == "too_long" and "trim_history could not make it fit" in rejected["detail"]
    assert len(rejected["messages"]) == 4  # rejected as it was, not half trimmed
    # under the default policy the detail offers the setting
    found = check_tokens(rows, tokenizer=tokenizer, max_seq_length=64)
    assert "set clean.too_long_policy: trim_history" in found.rejections[0].detail


def test_an_exchange_keeps_the_tool_turns_that_answer_it() -> None:
    from assets.clean.token_checks import _exchanges

    roles = ["system", "assistant", "user", "assistant", "tool", "assistant", "user", "assistant"]
    head, exchanges = _exchanges([{"role": role} for role in roles])
    assert [m["role"] for m in head] == ["system"]
    assert [[m["role"] for m in exchange] for exchange in exchanges] == [
        ["assistant"],
        ["user", "assistant", "tool", "assistant"],
        ["user", "assistant"],
    ]


def test_an_unknown_too_long_policy_names_the_setting(tokenizer: Any) -> None:
    import dataclasses

    from assets.clean.pipeline import CleanSettings
    from assets.clean.token_checks import token_check_steps
    from assets.params import section, settings_from

    with pytest.raises(ValueError, match=r"clean\.too_long_policy must be one of reject, trim_history"):
        token_check_steps(tokenizer, 64, "truncate")
    settings = settings_from(CleanSettings, section("clean"))
    assert settings.too_long_policy == "reject"
    with pytest.raises(ValueError, match=r"clean\.too_long_policy must be reject or trim_history"):
        dataclasses.replace(settings, too_long_policy="truncate")


def test_the_token_length_histogram_counts_every_checked_row_once_and_marks_the_too_long() -> None:
    from assets.clean.asset import length_table
    from assets.clean.token_checks import length_histogram

    counts = length_histogram([3, 32, 33, 200, 256, 257, 900], 256)
    assert counts == {
        "token_length_up_to_32": 2,
        "token_length_up_to_64": 1,
        "token_length_up_to_128": 0,
        "token_length_up_to_192": 0,
        "token_length_up_to_256": 2,
        "token_length_over_256": 2,
    }
    table = length_table(counts)
    assert "| 1-32 | 2 |" in table and "| 33-64 | 1 |" in table and "| > 256 (too long) | 2 |" in table
