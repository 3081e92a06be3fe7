"""The cleaning pipeline: raw rows in, clean rows and rejected rows (each with a reason) out.

:func:`default_steps` lists the steps, built from ``CleanSettings``; :func:`assets.clean.steps.run_steps`
applies them in order, each to the rows that survived the previous ones, and does the bookkeeping. Each
step's stage is the ``stage`` column of the rows it rejects:

1. ``ingest``: rows the reader could not normalize (their ``error`` is set);
2. ``validate``: the row filters of :mod:`assets.clean.filters`, then unique ids;
3. ``dedup_exact``: normalized-text hashes;
4. ``dedup_prefix``: conversations that are the opening turns of a longer one;
5. ``dedup_near``: MinHash + LSH + true Jaccard;
6. ``cleanlab``: Datalab outliers and near duplicates on text embeddings.

The near-duplicate stages never link two rows of one group (same non-null ``group_id``); exact and prefix
duplicates are rejected whatever their groups.

Every input row ends up in exactly one of ``kept`` and ``rejected``, in file order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any

from assets.clean.dedup import (
    find_exact_duplicates,
    find_near_duplicates,
    find_prefix_duplicates,
)
from assets.clean.embed import SUPPORTED_EMBEDDERS, make_embedder
from assets.clean.filters import check_ingest_error, find_reused_ids, row_filters, validate_row
from assets.clean.quality import MIN_ROWS, find_quality_issues
from assets.clean.steps import Filtered, FilterStep, Rejection, Row, Step, each_row, run_steps
from assets.shared.groups import conversation_key
from assets.shared.text import conversation_text

# Fixed so that the same rows always give the same embeddings and therefore the same cleanlab verdicts.
EMBEDDING_SEED = 0


@dataclass(frozen=True)
class CleanSettings:
    """The ``clean`` section of params.yaml; see the comments there for what each setting does."""

    min_response_chars: int
    near_dup_threshold: float
    minhash_permutations: int
    shingle_size: int
    cleanlab_enabled: bool
    embedder: str
    embedding_dim: int
    outlier_score_threshold: float
    cleanlab_near_duplicates: bool

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            expected = {"int": int, "float": (int, float), "bool": bool, "str": str}[str(spec.type)]
            # bool is an int in Python, but "true" for a count is a typo worth reporting.
            if not isinstance(value, expected) or (spec.type in ("int", "float") and isinstance(value, bool)):
                raise ValueError(f"clean.{spec.name} must be a {spec.type}, got {value!r}")
        _require(self.min_response_chars >= 0, "min_response_chars", "must be >= 0", self.min_response_chars)
        _require(
            0 < self.near_dup_threshold <= 1,
            "near_dup_threshold",
            "must be in (0, 1]",
            self.near_dup_threshold,
        )
        _require(
            self.minhash_permutations >= 1, "minhash_permutations", "must be >= 1", self.minhash_permutations
        )
        _require(self.shingle_size >= 1, "shingle_size", "must be >= 1", self.shingle_size)
        _require(self.embedding_dim >= 1, "embedding_dim", "must be >= 1", self.embedding_dim)
        _require(
            0 <= self.outlier_score_threshold <= 1,
            "outlier_score_threshold",
            "must be in [0, 1]",
            self.outlier_score_threshold,
        )
        _require(
            self.embedder in SUPPORTED_EMBEDDERS,
            "embedder",
            f"must be one of {', '.join(SUPPORTED_EMBEDDERS)}",
            self.embedder,
        )


def _require(condition: bool, name: str, rule: str, value: object) -> None:
    if not condition:
        raise ValueError(f"clean.{name} {rule}, got {value!r}; fix it in params.yaml")


@dataclass(frozen=True)
class CleanResult:
    """Kept rows (example columns), rejected rows (raw + rejection columns), and what happened.

    ``counts`` holds ``input``, ``kept``, one entry per rejection reason and Datalab's own issue counts;
    ``quality_scores`` has one ``{id, outlier_score, near_duplicate_score}`` per row Datalab scored;
    ``notes`` explains anything skipped; ``step_counts`` has one ``{step, stage, kind, rows_in, rejected,
    rewritten, changes}`` per step, in order (see :class:`assets.clean.steps.StepsResult`).
    """

    kept: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    counts: dict[str, int]
    quality_scores: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    step_counts: list[dict[str, Any]] = field(default_factory=list)


def default_steps(settings: CleanSettings) -> list[Step]:
    """The cleaning steps in order. Cheap, exact checks run first so the costly ones see fewer rows."""
    filters = row_filters(min_response_chars=settings.min_response_chars)
    return [
        FilterStep("ingest", each_row(check_ingest_error)),
        FilterStep("validate", each_row(partial(validate_row, filters=filters))),
        FilterStep("validate", find_reused_ids, name="unique_ids"),
        FilterStep("dedup_exact", exact_duplicates),
        FilterStep("dedup_prefix", prefix_duplicates),
        FilterStep("dedup_near", partial(near_duplicates, settings=settings)),
        FilterStep("cleanlab", partial(cleanlab_pass, settings=settings)),
    ]


def clean_rows(rows: list[dict[str, Any]], settings: CleanSettings) -> CleanResult:
    """Split raw rows into clean examples and rejected rows, deterministically and in file order."""
    result = run_steps(rows, default_steps(settings))
    return CleanResult(
        result.kept, result.rejected, result.counts, result.scores, result.notes, result.step_counts
    )


def exact_duplicates(rows: Sequence[Row]) -> dict[int, Rejection]:
    """Reject every row whose normalized conversation text (NFKC, case-folded, whitespace collapsed)
    equals an earlier row's, by SHA-256 of that text; ``duplicate_of`` is the first such row."""
    found = find_exact_duplicates([conversation_key(row["messages"]) for row in rows])
    rejections = {}
    for position, first in found.items():
        kept = rows[first]
        why = f"same normalized text as row {kept['id']!r} (line {kept.get('source_line')}), which is kept"
        rejections[position] = Rejection("duplicate_exact", why, duplicate_of=kept["id"])
    return rejections


def prefix_duplicates(rows: Sequence[Row]) -> dict[int, Rejection]:
    """Reject every conversation whose normalized messages open a longer one; ``duplicate_of`` is the
    longest conversation that contains it."""
    # With the loss on assistant turns only, a conversation that continues this one already trains every
    # answer in it, in the same context: the shorter copy adds weight to those answers and nothing else.
    found = find_prefix_duplicates([row["messages"] for row in rows])
    rejections = {}
    for position, container in found.items():
        row, longer = rows[position], rows[container]
        why = (
            f"its {len(row['messages'])} messages are the first of the {len(longer['messages'])} of row "
            f"{longer['id']!r} (line {longer.get('source_line')}), which trains every answer in it"
        )
        rejections[position] = Rejection("prefix_of_longer", why, duplicate_of=longer["id"])
    return rejections


def near_duplicates(rows: Sequence[Row], *, settings: CleanSettings) -> dict[int, Rejection]:
    """Reject near duplicates: word-shingle Jaccard >= ``clean.near_dup_threshold``, found with MinHash
    and LSH (Broder, 1997) and verified exactly; ``duplicate_of`` is the kept (earliest) row of the
    cluster. Rows of one group are never linked."""
    found = find_near_duplicates(
        [conversation_key(row["messages"]) for row in rows],
        threshold=settings.near_dup_threshold,
        num_permutations=settings.minhash_permutations,
        shingle_size=settings.shingle_size,
        groups=[row.get("group_id") for row in rows],
    )
    rejections = {}
    for position, near in found.items():
        kept, match = rows[near.kept_index], rows[near.match_index]
        why = (
            f"word {settings.shingle_size}-gram Jaccard {near.jaccard:.3f} with row {match['id']!r} "
            f">= clean.near_dup_threshold {settings.near_dup_threshold}; its cluster keeps row {kept['id']!r}"
        )
        rejections[position] = Rejection("near_duplicate", why, duplicate_of=kept["id"])
    return rejections


def cleanlab_pass(rows: Sequence[Row], *, settings: CleanSettings) -> Filtered:
    """Embed the rows and run cleanlab's Datalab (kNN outlier and near-duplicate issues): reject outliers
    scoring below ``clean.outlier_score_threshold`` and, with ``clean.cleanlab_near_duplicates``, all but
    the earliest row of each near-duplicate set. Also returns one ``{id, outlier_score,
    near_duplicate_score}`` per row and Datalab's issue counts; skipped, with a note, when disabled or when
    too few rows are left for kNN."""
    if not settings.cleanlab_enabled:
        return _skipped("cleanlab pass skipped: clean.cleanlab_enabled is false")
    if len(rows) < MIN_ROWS:
        return _skipped(
            f"cleanlab pass skipped: {len(rows)} rows left, kNN scoring needs at least {MIN_ROWS}"
        )
    texts = [conversation_text(row["messages"]) for row in rows]
    embed = make_embedder(settings.embedder, dim=settings.embedding_dim, seed=EMBEDDING_SEED)
    report = find_quality_issues(
        texts,
        embed(texts),
        outlier_score_threshold=settings.outlier_score_threshold,
        reject_near_duplicates=settings.cleanlab_near_duplicates,
        groups=[row.get("group_id") for row in rows],
    )
    rejections = {}
    threshold = settings.outlier_score_threshold
    for position, score in report.outliers.items():
        why = f"cleanlab outlier score {score:.4f} < clean.outlier_score_threshold {threshold}"
        rejections[position] = Rejection("cleanlab_outlier", why)
    for position, kept_position in report.near_duplicates.items():
        kept = rows[kept_position]
        why = (
            f"cleanlab finds it a near duplicate of row {kept['id']!r} in embedding space "
            f"(near-duplicate score {report.near_duplicate_scores[position]:.4f}; 0 means identical)"
        )
        rejections[position] = Rejection("cleanlab_near_duplicate", why, duplicate_of=kept["id"])
    scores = [
        {
            "id": row["id"],
            "outlier_score": report.outlier_scores[position],
            "near_duplicate_score": report.near_duplicate_scores[position],
        }
        for position, row in enumerate(rows)
    ]
    counts = {
        "cleanlab_outlier_issues": report.outlier_issues,
        "cleanlab_near_duplicate_issues": report.near_duplicate_issues,
    }
    return Filtered(rejections, counts, scores=scores)


def _skipped(note: str) -> Filtered:
    # The asset reports a skipped pass by this count as well as by the note.
    return Filtered({}, {"cleanlab_skipped": 1}, notes=[note])
