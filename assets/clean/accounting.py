"""Row accounting: raw rows = clean rows + rejected rows, each raw row exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def account_rows(raw_ids: Sequence[str], clean_ids: Sequence[str], rejected_ids: Sequence[str]) -> list[str]:
    """Problems found, as sentences; empty when every raw row landed in exactly one output.

    Ids are compared as multisets because a raw file may repeat an id (the repeat is rejected as
    `duplicate_id`, so it appears once on each side).
    """
    problems = []
    if len(raw_ids) != len(clean_ids) + len(rejected_ids):
        problems.append(
            f"{len(raw_ids)} raw rows but {len(clean_ids)} clean + {len(rejected_ids)} rejected "
            f"= {len(clean_ids) + len(rejected_ids)}"
        )
    raw, out = Counter(raw_ids), Counter(clean_ids) + Counter(rejected_ids)
    lost = sorted((raw - out).elements())
    invented = sorted((out - raw).elements())
    if lost:
        problems.append(f"{len(lost)} raw rows are in neither output, e.g. {lost[:5]}")
    if invented:
        problems.append(f"{len(invented)} output rows have no raw row, e.g. {invented[:5]}")
    both = sorted(set(clean_ids) & set(rejected_ids) - {i for i, n in raw.items() if n > 1})
    if both:
        problems.append(f"{len(both)} rows are both clean and rejected, e.g. {both[:5]}")
    return problems
