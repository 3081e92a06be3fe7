"""train.gradient_checkpointing: auto (assets/train/activation_memory.py): on only when a micro-batch's
estimated activations exceed half of the free memory."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from assets.train.activation_memory import activation_bytes, choose_gradient_checkpointing, free_bytes

# Llama-2-7B's shape (its config.json).
LLAMA_7B = SimpleNamespace(hidden_size=4096, num_attention_heads=32, num_hidden_layers=32, vocab_size=32000)
GIB = 2**30


def test_the_estimate_follows_korthikanti_et_al() -> None:
    # One 2048-token row in 16-bit: 32 layers x 2048 x 4096 x (34 + 5 x 32 x 2048 / 4096) bytes, plus
    # float32 logits and their gradient.
    expected = 32 * 2048 * 4096 * (34 + 80) + 2 * 4 * 2048 * 32000
    assert activation_bytes(LLAMA_7B, rows=1, tokens=2048, bytes_per_value=2) == expected
    assert activation_bytes(LLAMA_7B, rows=1, tokens=2048, bytes_per_value=4) > expected


@pytest.mark.parametrize(
    ("setting", "rows", "free", "enabled"),
    [
        ("auto", 1, 140 * GIB, False),  # about 31 GiB of activations on an empty 140 GiB GPU
        ("auto", 8, 140 * GIB, True),  # about 245 GiB
        ("auto", 1, 40 * GIB, True),
        ("always", 1, 140 * GIB, True),
        ("never", 8, 1 * GIB, False),
    ],
)
def test_auto_checkpoints_only_when_activations_would_not_fit(
    setting: str, rows: int, free: int, enabled: bool
) -> None:
    choice = choose_gradient_checkpointing(
        setting, method_allows=True, config=LLAMA_7B, rows=rows, tokens=2048, bytes_per_value=2, free=free
    )
    assert choice.enabled is enabled and choice.reason


def test_a_method_that_refuses_checkpointing_never_gets_it() -> None:
    choice = choose_gradient_checkpointing(
        "auto", method_allows=False, config=LLAMA_7B, rows=8, tokens=2048, bytes_per_value=2, free=GIB
    )
    assert not choice.enabled


def test_free_memory_of_the_host_is_read() -> None:
    assert free_bytes("cpu") > 0
