"""Data-quality pass with cleanlab's Datalab: outliers, and near duplicates by an absolute rule.

Each row's prompt and answer are embedded separately (unit length); the row's vector is their
concatenation divided by sqrt(2), so its cosine similarity with another row is the mean of the two parts'.
The k-nearest-neighbour graph of those vectors is built here and handed to Datalab precomputed: exact (in
row blocks, one matrix product each) up to :data:`EXACT_KNN_MAX_ROWS` rows, approximate above, with an
inverted-file index (k-means lists, each row searched in its :data:`PROBES` nearest lists; Jégou, Douze &
Schmid, 2011), so the pass grows as n^1.5 rather than n².

- Outliers: Datalab's outlier score, ``exp(-d / median d)`` of the mean neighbour distance ``d`` (low =
  unusual). Rows scoring below ``outlier_score_threshold`` are outliers; the caller reports them and drops
  them only when told to.
- Near duplicates: not Datalab's near-duplicate sets, whose distance threshold is relative to the data
  (on instruction data it collapses template rows that differ only in their numbers, with different,
  correct answers). A graph edge links two rows when the cosine similarity of their prompts AND of their
  answers both reach an absolute ``similarity``, and :mod:`assets.clean.dedup`'s rules do not keep them
  apart: the same numbers in the same order, and no word changed in both the prompt and the answer (the
  answer follows the question). Clusters are connected components; the earliest row of each is kept.
  Datalab's own near-duplicate count is still reported beside ours.

- Label issues (:mod:`assets.clean.label_issues`): when rows carry a ``category``, Datalab's label issues
  from out-of-fold probabilities of a logistic regression on the same vectors (confident learning).
- Drift (:mod:`assets.clean.drift`): Datalab's non-IID check on the same graph, renumbered into
  ``created_at`` order; reported only.

As in :mod:`assets.clean.dedup`, two rows of one group (same non-null ``group_id``) are never linked.
Each phase's duration is logged (logger ``assets.clean.quality``, records carry ``phase`` and ``seconds``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from assets.clean.dedup import answer_follows_question, numbers
from assets.clean.drift import DriftCheck, find_drift
from assets.clean.label_issues import FOLDS, LabelCheck, find_label_issues
from assets.shared.groups import UnionFind, same_group

if TYPE_CHECKING:
    import numpy as np
    from scipy.sparse import csr_matrix

# kNN needs neighbours: with fewer rows the scores say nothing, so the pass is skipped.
MIN_ROWS = 10
# cleanlab's default neighbourhood size for both issue types.
NEIGHBOURS = 10
# Up to this many rows the kNN graph is exact; above, approximate (inverted lists).
EXACT_KNN_MAX_ROWS = 10_000
# Inverted lists searched per row: with sqrt(n) lists, a row is compared with about PROBES * sqrt(n) rows.
PROBES = 8
# Rows per block of the exact similarity product: 1024 x n float32 stays small for n in the millions.
_BLOCK_ROWS = 1024
# Lloyd iterations of the k-means that builds the inverted lists, and the rows it is fitted on.
_KMEANS_ITERATIONS = 10
_KMEANS_SAMPLE = 50_000

_log = logging.getLogger(__name__)


@contextmanager
def _phase(name: str) -> Iterator[None]:
    """Log how long one phase of the pass took (``extra``: ``phase``, ``seconds``, ``cpu_seconds``)."""
    start, cpu = time.perf_counter(), time.process_time()
    yield
    timing = {"phase": name, "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}
    _log.info("cleanlab pass: %s took %.2f s", name, timing["seconds"], extra=timing)


@dataclass(frozen=True)
class QualityDuplicate:
    """A row linked to an earlier kept row: the kept row, its closest linked row, their similarities."""

    kept_index: int
    match_index: int
    prompt_similarity: float
    answer_similarity: float
    cluster_size: int


@dataclass(frozen=True)
class QualityReport:
    """Datalab's scores and our findings, index-aligned with the input rows.

    ``outliers`` maps every row scoring below the threshold to its score; ``near_duplicates`` maps each
    row to drop to its :class:`QualityDuplicate`. ``outlier_issues`` and ``near_duplicate_issues`` are
    Datalab's own flags, ``kept_apart`` the graph edges at or over the similarity that a rule kept apart.
    ``labels`` and ``drift`` are the label and non-IID checks (skipped, with their note saying why, when
    the rows carry no categories or timestamps to check).
    """

    outlier_scores: list[float]
    near_duplicate_scores: list[float]
    outlier_issues: int
    near_duplicate_issues: int
    outliers: dict[int, float] = field(default_factory=dict)
    near_duplicates: dict[int, QualityDuplicate] = field(default_factory=dict)
    kept_apart: dict[str, int] = field(default_factory=dict)
    labels: LabelCheck = field(default_factory=lambda: LabelCheck(0, "cleanlab label check not run"))
    drift: DriftCheck = field(default_factory=lambda: DriftCheck(0, "cleanlab drift check not run"))


def _graph(indices: np.ndarray, distances: np.ndarray) -> csr_matrix:
    """The CSR layout Datalab expects: k neighbours per row, by ascending distance, ties by index."""
    import numpy as np
    from scipy.sparse import csr_matrix

    n, k = indices.shape
    order = np.lexsort((indices, distances), axis=1)
    indices = np.take_along_axis(indices, order, axis=1)
    distances = np.take_along_axis(distances, order, axis=1)
    indptr = np.arange(0, n * k + 1, k)
    return csr_matrix((distances.ravel(), indices.ravel(), indptr), shape=(n, n))


def _top_k(similarity: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar candidates of each row of a (rows x m) similarity block, unordered."""
    import numpy as np

    top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    return np.take_along_axis(candidates, top, axis=1), np.take_along_axis(similarity, top, axis=1)


def cosine_knn_graph(embeddings: np.ndarray, *, k: int) -> csr_matrix:
    """The exact k-nearest-neighbour graph under cosine distance. Rows of ``embeddings`` must be unit
    length; each row holds its ``k`` neighbours (itself excluded), ties broken by index."""
    import numpy as np

    n = embeddings.shape[0]
    if not 0 < k < n:
        raise ValueError(f"k must be between 1 and n - 1 = {n - 1}, got {k}")
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    indices = np.empty((n, k), dtype=np.int64)
    similarities = np.empty((n, k), dtype=np.float32)
    everyone = np.arange(n)
    for start in range(0, n, _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, n)
        similarity = vectors[start:stop] @ vectors.T
        similarity[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        candidates = np.broadcast_to(everyone, similarity.shape)
        indices[start:stop], similarities[start:stop] = _top_k(similarity, candidates, k)
    return _graph(indices, np.clip(1.0 - similarities.astype(np.float64), 0.0, 2.0))


def _kmeans(vectors: np.ndarray, lists: int, seed: int) -> np.ndarray:
    """Spherical k-means (Lloyd) on a seeded sample: unit-length centroids, shape (lists, dim)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sample = vectors[np.sort(rng.choice(len(vectors), min(len(vectors), _KMEANS_SAMPLE), replace=False))]
    centroids = sample[np.sort(rng.choice(len(sample), lists, replace=False))].copy()
    for _ in range(_KMEANS_ITERATIONS):
        nearest = np.argmax(sample @ centroids.T, axis=1)
        for cluster in range(lists):
            members = sample[nearest == cluster]
            if len(members):
                centroids[cluster] = members.sum(axis=0)
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return centroids


def approximate_knn_graph(embeddings: np.ndarray, *, k: int, seed: int = 0) -> csr_matrix:
    """An approximate k-nearest-neighbour graph (inverted file): rows are put in sqrt(n) k-means lists
    and each row is compared with the members of its :data:`PROBES` nearest lists. A row that finds
    fewer than ``k`` neighbours there is searched exactly. Deterministic for a given ``seed``."""
    import numpy as np

    n = embeddings.shape[0]
    if not 0 < k < n:
        raise ValueError(f"k must be between 1 and n - 1 = {n - 1}, got {k}")
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    lists = max(1, math.isqrt(n))
    centroids = _kmeans(vectors, lists, seed)
    probes = min(PROBES, lists)
    nearest_lists = np.empty((n, probes), dtype=np.int64)
    for start in range(0, n, _BLOCK_ROWS):
        scores = vectors[start : start + _BLOCK_ROWS] @ centroids.T
        nearest_lists[start : start + _BLOCK_ROWS] = np.argsort(-scores, axis=1, kind="stable")[:, :probes]
    home = nearest_lists[:, 0]
    members_of = np.split(np.argsort(home, kind="stable"), np.cumsum(np.bincount(home, minlength=lists))[:-1])
    best = np.full((n, k), -1, dtype=np.int64)
    best_similarity = np.full((n, k), -np.inf, dtype=np.float32)
    for cluster, members in enumerate(members_of):
        queries = np.flatnonzero((nearest_lists == cluster).any(axis=1))
        if not len(members) or not len(queries):
            continue
        for start in range(0, len(queries), _BLOCK_ROWS):
            block = queries[start : start + _BLOCK_ROWS]
            similarity = vectors[block] @ vectors[members].T
            similarity[block[:, None] == members[None, :]] = -np.inf
            merged = np.concatenate((best_similarity[block], similarity), axis=1)
            candidates = np.concatenate((best[block], np.broadcast_to(members, similarity.shape)), axis=1)
            best[block], best_similarity[block] = _top_k(merged, candidates, k)
    short = np.flatnonzero((best < 0).any(axis=1))
    for start in range(0, len(short), _BLOCK_ROWS):
        block = short[start : start + _BLOCK_ROWS]
        similarity = vectors[block] @ vectors.T
        similarity[np.arange(len(block)), block] = -np.inf
        best[block], best_similarity[block] = _top_k(
            similarity, np.broadcast_to(np.arange(n), similarity.shape), k
        )
    return _graph(best, np.clip(1.0 - best_similarity.astype(np.float64), 0.0, 2.0))


def knn_graph(embeddings: np.ndarray, *, k: int, exact_knn_max_rows: int = EXACT_KNN_MAX_ROWS) -> csr_matrix:
    """The exact graph for up to ``exact_knn_max_rows`` rows, the approximate one above."""
    if embeddings.shape[0] <= exact_knn_max_rows:
        return cosine_knn_graph(embeddings, k=k)
    return approximate_knn_graph(embeddings, k=k)


def find_quality_issues(
    parts: Sequence[tuple[str, str]],
    prompt_embeddings: np.ndarray,
    answer_embeddings: np.ndarray,
    *,
    outlier_score_threshold: float,
    similarity: float,
    drop_outliers: bool = False,
    exact_knn_max_rows: int = EXACT_KNN_MAX_ROWS,
    groups: Sequence[str | None] | None = None,
    categories: Sequence[str | None] | None = None,
    created_at: Sequence[datetime | None] | None = None,
    drop_label_issues: bool = False,
    label_folds: int = FOLDS,
    seed: int = 0,
) -> QualityReport:
    """Score every row with Datalab (outliers, and its own near-duplicate flags for the report), link
    near duplicates by the absolute rule of the module docstring, and check ``categories`` (label issues)
    and the order of ``created_at`` (drift) when given.

    ``parts`` are the rows' (prompt, answer) texts and the embeddings their unit-length vectors, shape
    (rows, dim) each. Rows that will be dropped (outliers with ``drop_outliers``, label issues with
    ``drop_label_issues``) are left out of the near-duplicate clusters, so that a duplicate always points at
    a row that is kept. The kNN graph is built once and given to every Datalab check. ``seed`` fixes the
    folds of the label classifier. Raises ``ValueError`` when a per-row sequence has the wrong length or
    there are fewer than :data:`MIN_ROWS` rows.
    """
    import numpy as np
    from cleanlab import Datalab

    n = len(parts)
    for name, array in (("prompt", prompt_embeddings), ("answer", answer_embeddings)):
        if array.shape[0] != n:
            raise ValueError(f"got {n} rows but {array.shape[0]} {name} embeddings")
    if n < MIN_ROWS:
        raise ValueError(f"the quality pass needs at least {MIN_ROWS} rows, got {n}")
    per_row = (("group id", "group ids", groups), ("category", "categories", categories))
    for one, many, values in (*per_row, ("created_at", "created_at values", created_at)):
        if values is not None and len(values) != n:
            raise ValueError(f"got {n} rows but {len(values)} {many}; pass one {one} (or None) per row")
    vectors = np.hstack((prompt_embeddings, answer_embeddings)) / math.sqrt(2)
    k = min(NEIGHBOURS, n - 1)
    with _phase("knn_graph"):
        graph = knn_graph(vectors, k=k, exact_knn_max_rows=exact_knn_max_rows)
    with _phase("datalab"):
        lab = Datalab(data={"text": ["\n".join(pair) for pair in parts]}, verbosity=0)
        lab.find_issues(knn_graph=graph, issue_types={"near_duplicate": {"k": k}, "outlier": {"k": k}})
        issues = lab.get_issues()
    outlier_scores = [float(score) for score in issues["outlier_score"]]
    outliers = {index: score for index, score in enumerate(outlier_scores) if score < outlier_score_threshold}
    labels = LabelCheck(0, "cleanlab label check skipped: the rows carry no category column")
    if categories is not None:
        with _phase("label_issues"):
            labels = find_label_issues(vectors, categories, folds=label_folds, seed=seed)
    drift = DriftCheck(0, "cleanlab drift check skipped: the rows carry no created_at column")
    if created_at is not None:
        with _phase("drift"):
            drift = find_drift(
                graph,
                created_at,
                vectors=vectors,
                build_graph=lambda subset: knn_graph(
                    subset, k=min(NEIGHBOURS, len(subset) - 1), exact_knn_max_rows=exact_knn_max_rows
                ),
            )
    excluded = set(outliers) if drop_outliers else set()
    if drop_label_issues:
        excluded |= set(labels.issues)
    with _phase("near_duplicates"):
        near_duplicates, kept_apart = _near_duplicates(
            graph,
            parts,
            prompt_embeddings,
            answer_embeddings,
            similarity=similarity,
            excluded=excluded,
            groups=groups,
        )
    return QualityReport(
        outlier_scores=outlier_scores,
        near_duplicate_scores=[float(score) for score in issues["near_duplicate_score"]],
        outlier_issues=int(issues["is_outlier_issue"].sum()),
        near_duplicate_issues=int(issues["is_near_duplicate_issue"].sum()),
        outliers=outliers,
        near_duplicates=near_duplicates,
        kept_apart=kept_apart,
        labels=labels,
        drift=drift,
    )


def _near_duplicates(
    graph: csr_matrix,
    parts: Sequence[tuple[str, str]],
    prompt_embeddings: np.ndarray,
    answer_embeddings: np.ndarray,
    *,
    similarity: float,
    excluded: set[int],
    groups: Sequence[str | None] | None,
) -> tuple[dict[int, QualityDuplicate], dict[str, int]]:
    """Link the graph's edges that pass the absolute rule; map every later cluster member to the earliest."""
    import numpy as np

    coo = graph.tocoo()
    left, right = np.minimum(coo.row, coo.col), np.maximum(coo.row, coo.col)
    edges = np.unique(np.stack((left, right), axis=1), axis=0)
    prompt_similarity = np.einsum("ij,ij->i", prompt_embeddings[edges[:, 0]], prompt_embeddings[edges[:, 1]])
    answer_similarity = np.einsum("ij,ij->i", answer_embeddings[edges[:, 0]], answer_embeddings[edges[:, 1]])
    close = (prompt_similarity >= similarity) & (answer_similarity >= similarity)
    kept_apart = {"same_group": 0, "numbers": 0, "answer_follows_question": 0}
    clusters = UnionFind(len(parts))
    # (mean similarity, -index, prompt, answer) of each row's best link: closer, then earlier, wins.
    best: dict[int, tuple[float, int, float, float]] = {}
    for (i, j), p_sim, a_sim in zip(
        edges[close].tolist(),
        prompt_similarity[close].tolist(),
        answer_similarity[close].tolist(),
        strict=True,
    ):
        if i in excluded or j in excluded:
            continue
        if same_group(groups, i, j):
            kept_apart["same_group"] += 1
            continue
        if numbers("\n".join(parts[i])) != numbers("\n".join(parts[j])):
            kept_apart["numbers"] += 1
            continue
        if answer_follows_question(parts[i], parts[j]):
            kept_apart["answer_follows_question"] += 1
            continue
        clusters.union(i, j)
        for index, other in ((i, j), (j, i)):
            candidate = ((p_sim + a_sim) / 2, -other, p_sim, a_sim)
            if index not in best or candidate[:2] > best[index][:2]:
                best[index] = candidate
    sizes: dict[int, int] = {}
    for index in best:
        sizes[clusters.find(index)] = sizes.get(clusters.find(index), 0) + 1
    found = {}
    for index, root in clusters.duplicates(sorted(best), groups).items():
        _, negative_match, p_sim, a_sim = best[index]
        found[index] = QualityDuplicate(root, -negative_match, p_sim, a_sim, sizes[root])
    return found, kept_apart
