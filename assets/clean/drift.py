"""Drift over time: cleanlab Datalab's non-IID check on the rows in ``created_at`` order.

When rows are independent and identically distributed, a row's nearest neighbours in embedding space may
sit anywhere in the data; when the data drifts (topics, style or sources change over time), neighbours sit
close to each other in time order. Datalab's ``non_iid`` issue type (cleanlab >= 2.5) compares the
distribution of index distances between kNN neighbours with what random order would give, a
Kolmogorov-Smirnov statistic against a permutation test (25 seeded permutations by default), and returns
its p-value as the summary score; a p-value below 0.05 (its default ``significance_threshold``) says the
order is not IID. Datalab then flags a single row (the least IID one), so this check only reports: the
drift is a fact about the data, not a fault of any row.

The kNN graph is the one the quality pass already built, renumbered into time order (ties keep file
order); rows without a ``created_at`` are left out, and then the graph of the rest is built anew.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from scipy.sparse import csr_matrix

# cleanlab's default significance_threshold for the non_iid issue type.
SIGNIFICANCE = 0.05
# Fewer timestamped rows than this say nothing about order (the quality pass's own minimum).
MIN_ROWS = 10


@dataclass(frozen=True)
class DriftCheck:
    """The non-IID check: rows checked, Datalab's p-value (``None`` when skipped), whether it is below
    :data:`SIGNIFICANCE`, each checked row's non-IID score by row index (low = least IID), and a note."""

    rows: int
    note: str
    p_value: float | None = None
    detected: bool = False
    scores: dict[int, float] = field(default_factory=dict)


def time_order(created_at: Sequence[datetime | None]) -> list[int]:
    """Indices of the rows that have a timestamp, oldest first; ties keep their order in the file."""
    dated = [index for index, value in enumerate(created_at) if value is not None]
    return sorted(dated, key=lambda index: (created_at[index], index))


def reorder_graph(graph: csr_matrix, order: Sequence[int]) -> csr_matrix:
    """The kNN graph of the rows ``order`` (all of them, each once) renumbered so that row ``order[i]``
    becomes row ``i``: neighbours per row and distances unchanged, ascending distance kept."""
    import numpy as np
    from scipy.sparse import csr_matrix

    n = graph.shape[0]
    k = graph.nnz // n
    if len(order) != n or graph.nnz != n * k:
        raise ValueError(f"expected a permutation of {n} rows and {k} neighbours per row")
    position = np.empty(n, dtype=np.int64)
    position[np.asarray(order)] = np.arange(n)
    indices = position[graph.indices.reshape(n, k)[np.asarray(order)]]
    distances = graph.data.reshape(n, k)[np.asarray(order)]
    return csr_matrix((distances.ravel(), indices.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))


def find_drift(
    graph: csr_matrix,
    created_at: Sequence[datetime | None],
    *,
    vectors: np.ndarray,
    build_graph: Callable[[np.ndarray], csr_matrix],
) -> DriftCheck:
    """Run Datalab's non-IID check on the rows in time order (see the module docstring).

    ``graph`` is the kNN graph of all rows, in the caller's order; ``vectors`` (rows, dim) and
    ``build_graph`` are used only when some rows have no timestamp, to build the graph of the rest.
    """
    from cleanlab import Datalab

    order = time_order(created_at)
    if len(order) < MIN_ROWS:
        return DriftCheck(
            0, f"cleanlab drift check skipped: {len(order)} rows have a created_at, it needs {MIN_ROWS}"
        )
    if created_at[order[0]] == created_at[order[-1]]:
        return DriftCheck(0, f"cleanlab drift check skipped: all {len(order)} rows share one created_at")
    complete = len(order) == graph.shape[0]
    ordered = reorder_graph(graph, order) if complete else build_graph(vectors[order])
    k = ordered.nnz // ordered.shape[0]
    lab = Datalab(data={"position": list(range(len(order)))}, verbosity=0)
    printed = io.StringIO()
    # Datalab catches an issue type's error and prints it; keep it for the note instead of the console.
    with contextlib.redirect_stdout(printed):
        options = {"k": k, "significance_threshold": SIGNIFICANCE}
        lab.find_issues(knn_graph=ordered, issue_types={"non_iid": options})
    if "non_iid" not in set(lab.issue_summary["issue_type"]):
        error = next((line for line in printed.getvalue().splitlines() if "non_iid" in line), "no message")
        why = f"Datalab could not run its non-IID test on these {len(order)} rows ({error[:300]})"
        return DriftCheck(0, f"cleanlab drift check skipped: {why}")
    p_value = float(lab.get_issue_summary("non_iid")["score"].iloc[0])
    found = lab.get_issues("non_iid")
    scores = {index: float(score) for index, score in zip(order, found["non_iid_score"], strict=True)}
    detected = bool(found["is_non_iid_issue"].any())
    missing = graph.shape[0] - len(order)
    verdict = (
        f"drift detected: rows close in embedding space are close in time, p-value {p_value:.3g} < "
        f"{SIGNIFICANCE}; nothing is rejected for it"
        if detected
        else f"no drift detected (p-value {p_value:.3g} >= {SIGNIFICANCE})"
    )
    without = f"; {missing} rows without created_at left out" if missing else ""
    note = f"cleanlab drift check (non-IID, {len(order)} rows in created_at order): {verdict}{without}"
    return DriftCheck(len(order), note, p_value, detected, scores)
