"""Row accounting: raw = clean + rejected, each row exactly once."""

from __future__ import annotations

import pytest

from assets.clean.accounting import account_rows


@pytest.mark.parametrize(
    ("raw", "clean", "rejected", "problem"),
    [
        (["a", "b", "c"], ["a", "b"], ["c"], None),
        (["a", "a"], ["a"], ["a"], None),  # a repeated id: first kept, repeat rejected
        (["a", "b", "c"], ["a"], ["c"], "neither output"),
        (["a", "b"], ["a", "b"], ["b"], "raw rows but"),
        (["a", "b"], ["a", "x"], ["b"], "no raw row"),
        (["a", "b"], ["a", "b"], [], None),
    ],
)
def test_account_rows(raw: list, clean: list, rejected: list, problem: str | None) -> None:
    problems = account_rows(raw, clean, rejected)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems
