"""Data-quality pass with cleanlab's Datalab: outliers and near duplicates in embedding space.

Datalab scores every row from its k nearest neighbours. Outlier scores are ``exp(-d / median d)`` of the
mean neighbour distance ``d`` (low = unusual); near-duplicate sets are rows much closer to each other than
the typical nearest-neighbour distance. Datalab's own kNN search is exact and grows as n²; above
:data:`EXACT_KNN_MAX_ROWS` rows we hand it a graph built here in row blocks, which bounds memory and uses
one matrix product per block on the unit-length embeddings.

As in :mod:`assets.clean.dedup`, two rows of one group (same non-null ``group_id``: sibling answers in a
conversation tree, a thread and its follow-up) are never linked as near duplicates: they are close in
embedding space by construction, and the split keeps them together anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from assets.shared.groups import UnionFind, same_group

if TYPE_CHECKING:
    import numpy as np
    from scipy.sparse import csr_matrix

# kNN needs neighbours: with fewer rows the scores say nothing, so the pass is skipped.
MIN_ROWS = 10
# cleanlab's default neighbourhood size for both issue types.
NEIGHBOURS = 10
# Above this many rows the kNN graph is built here instead of by Datalab.
EXACT_KNN_MAX_ROWS = 5000
# Rows per block of the similarity product: 1024 x n float32 stays small for n in the millions.
_BLOCK_ROWS = 1024


@dataclass(frozen=True)
class QualityReport:
    """Datalab's findings, index-aligned with the input texts.

    ``outliers`` maps each row to reject to its outlier score; ``near_duplicates`` maps each row to reject
    to the index of the kept row of its near-duplicate set. The issue counts are Datalab's own flags,
    before our thresholds, for the asset metadata.
    """

    outlier_scores: list[float]
    near_duplicate_scores: list[float]
    outlier_issues: int
    near_duplicate_issues: int
    outliers: dict[int, float] = field(default_factory=dict)
    near_duplicates: dict[int, int] = field(default_factory=dict)


def cosine_knn_graph(embeddings: np.ndarray, *, k: int) -> csr_matrix:
    """The k-nearest-neighbour graph under cosine distance, in the CSR layout Datalab expects.

    Rows of ``embeddings`` must be unit length. Each row holds its ``k`` neighbours (itself excluded)
    sorted by ascending distance, ties broken by index so the graph is deterministic.
    """
    import numpy as np
    from scipy.sparse import csr_matrix

    n = embeddings.shape[0]
    if not 0 < k < n:
        raise ValueError(f"k must be between 1 and n - 1 = {n - 1}, got {k}")
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    indices = np.empty((n, k), dtype=np.int64)
    distances = np.empty((n, k), dtype=np.float64)
    for start in range(0, n, _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, n)
        similarity = vectors[start:stop] @ vectors.T
        similarity[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        # argpartition finds the top k cheaply; the exact order is then fixed by (distance, index).
        top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        block_distances = np.clip(1.0 - np.take_along_axis(similarity, top, axis=1), 0.0, 2.0)
        order = np.lexsort((top, block_distances), axis=1)
        indices[start:stop] = np.take_along_axis(top, order, axis=1)
        distances[start:stop] = np.take_along_axis(block_distances, order, axis=1)
    indptr = np.arange(0, n * k + 1, k)
    return csr_matrix((distances.ravel(), indices.ravel(), indptr), shape=(n, n))


def find_quality_issues(
    texts: list[str],
    embeddings: np.ndarray,
    *,
    outlier_score_threshold: float,
    reject_near_duplicates: bool,
    exact_knn_max_rows: int = EXACT_KNN_MAX_ROWS,
    groups: Sequence[str | None] | None = None,
) -> QualityReport:
    """Run Datalab's near-duplicate and outlier checks and decide which rows to reject.

    Outliers scoring below ``outlier_score_threshold`` are rejected first; near-duplicate sets are then
    formed among the remaining rows and all but the earliest member are rejected when
    ``reject_near_duplicates`` is set, so a duplicate always points at a row that is kept. ``groups`` (one
    group id or None per text) keeps rows of one group out of each other's sets; Datalab's own issue
    counts still include such pairs.
    """
    from cleanlab import Datalab

    n = len(texts)
    if embeddings.shape[0] != n:
        raise ValueError(f"got {n} texts but {embeddings.shape[0]} embeddings")
    if n < MIN_ROWS:
        raise ValueError(f"the quality pass needs at least {MIN_ROWS} rows, got {n}")
    if groups is not None and len(groups) != n:
        raise ValueError(f"got {n} texts but {len(groups)} group ids; pass one group id (or None) per text")
    k = min(NEIGHBOURS, n - 1)
    issue_types = {"near_duplicate": {"k": k}, "outlier": {"k": k}}
    lab = Datalab(data={"text": texts}, verbosity=0)
    if n > exact_knn_max_rows:
        lab.find_issues(knn_graph=cosine_knn_graph(embeddings, k=k), issue_types=issue_types)
    else:
        lab.find_issues(features=embeddings, issue_types=issue_types)
    issues = lab.get_issues()
    outlier_scores = [float(score) for score in issues["outlier_score"]]
    outliers = {index: score for index, score in enumerate(outlier_scores) if score < outlier_score_threshold}
    near_duplicates: dict[int, int] = {}
    if reject_near_duplicates:
        sets = lab.get_info("near_duplicate")["near_duplicate_sets"]
        near_duplicates = _near_duplicate_clusters(sets, excluded=set(outliers), groups=groups)
    return QualityReport(
        outlier_scores=outlier_scores,
        near_duplicate_scores=[float(score) for score in issues["near_duplicate_score"]],
        outlier_issues=int(issues["is_outlier_issue"].sum()),
        near_duplicate_issues=int(issues["is_near_duplicate_issue"].sum()),
        outliers=outliers,
        near_duplicates=near_duplicates,
    )


def _near_duplicate_clusters(
    sets: list[np.ndarray], *, excluded: set[int], groups: Sequence[str | None] | None = None
) -> dict[int, int]:
    """Merge Datalab's per-row neighbour sets into clusters; map every later member to the earliest.

    Pairs within one group are not linked, and a member of the earliest row's group is kept with it.
    """
    clusters = UnionFind(len(sets))
    for index, neighbours in enumerate(sets):
        if index in excluded:
            continue
        for neighbour in neighbours:
            other = int(neighbour)
            if other not in excluded and not same_group(groups, index, other):
                clusters.union(index, other)
    return clusters.duplicates([index for index in range(len(sets)) if index not in excluded], groups)
