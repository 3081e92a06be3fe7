"""The cleaning pipeline: raw rows in, clean rows and rejected rows (each with a reason) out.

Stages run in order and each sees only the rows that survived the previous ones:

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

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

from assets.clean.dedup import (
    conversation_key,
    find_exact_duplicates,
    find_near_duplicates,
    find_prefix_duplicates,
)
from assets.clean.embed import SUPPORTED_EMBEDDERS, make_embedder
from assets.clean.filters import row_filters, validate_row
from assets.clean.quality import MIN_ROWS, find_quality_issues
from assets.schema import EXAMPLE_COLUMNS, PROVENANCE_COLUMNS, REJECTION_COLUMNS, conversation_text

# Fixed so that the same rows always give the same embeddings and therefore the same cleanlab verdicts.
EMBEDDING_SEED = 0

_RAW_COLUMNS = EXAMPLE_COLUMNS + PROVENANCE_COLUMNS


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
    ``notes`` explains anything skipped.
    """

    kept: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    counts: dict[str, int]
    quality_scores: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _where(row: dict[str, Any]) -> str:
    location = f"{row.get('source_file') or '<unknown file>'} line {row.get('source_line')}"
    return f"row {row.get('id')!r} ({location})"


def _reject(
    row: dict[str, Any], stage: str, reason: str, why: str, duplicate_of: str | None = None
) -> dict[str, Any]:
    rejected = {column: row.get(column) for column in _RAW_COLUMNS}
    rejected.update(
        zip(REJECTION_COLUMNS, (stage, reason, f"{_where(row)}: {why}", duplicate_of), strict=True)
    )
    return rejected


def clean_rows(rows: list[dict[str, Any]], settings: CleanSettings) -> CleanResult:
    """Split raw rows into clean examples and rejected rows, deterministically and in file order."""
    rejected: dict[int, dict[str, Any]] = {}
    notes: list[str] = []

    filters = row_filters(min_response_chars=settings.min_response_chars)
    first_with_id: dict[str, int] = {}
    survivors: list[int] = []
    for index, row in enumerate(rows):
        error = row.get("error")
        if error is not None:
            reason = str(error).split(":", 1)[0].strip() or "ingest_error"
            rejected[index] = _reject(row, "ingest", reason, str(error))
            continue
        verdict = validate_row(row, filters)
        if verdict is not None:
            rejected[index] = _reject(row, "validate", verdict.reason, verdict.detail)
        elif row["id"] in first_with_id:
            first = rows[first_with_id[row["id"]]]
            why = f"the id is already used by the row at line {first.get('source_line')}"
            rejected[index] = _reject(row, "validate", "duplicate_id", why, duplicate_of=first["id"])
        else:
            first_with_id[row["id"]] = index
            survivors.append(index)

    texts = [conversation_key(rows[index]["messages"]) for index in survivors]
    exact = find_exact_duplicates(texts)
    for position, first in exact.items():
        kept = rows[survivors[first]]
        why = f"same normalized text as row {kept['id']!r} (line {kept.get('source_line')}), which is kept"
        rejected[survivors[position]] = _reject(
            rows[survivors[position]], "dedup_exact", "duplicate_exact", why, duplicate_of=kept["id"]
        )
    survivors = [index for position, index in enumerate(survivors) if position not in exact]

    # With the loss on assistant turns only, a conversation that continues this one already trains every
    # answer in it, in the same context: the shorter copy adds weight to those answers and nothing else.
    prefixes = find_prefix_duplicates([rows[index]["messages"] for index in survivors])
    for position, container in prefixes.items():
        row, longer = rows[survivors[position]], rows[survivors[container]]
        why = (
            f"its {len(row['messages'])} messages are the first of the {len(longer['messages'])} of row "
            f"{longer['id']!r} (line {longer.get('source_line')}), which trains every answer in it"
        )
        rejected[survivors[position]] = _reject(
            row, "dedup_prefix", "prefix_of_longer", why, duplicate_of=longer["id"]
        )
    survivors = [index for position, index in enumerate(survivors) if position not in prefixes]

    texts = [conversation_key(rows[index]["messages"]) for index in survivors]
    near = find_near_duplicates(
        texts,
        threshold=settings.near_dup_threshold,
        num_permutations=settings.minhash_permutations,
        shingle_size=settings.shingle_size,
        groups=[rows[index].get("group_id") for index in survivors],
    )
    for position, found in near.items():
        kept, match = rows[survivors[found.kept_index]], rows[survivors[found.match_index]]
        why = (
            f"word {settings.shingle_size}-gram Jaccard {found.jaccard:.3f} with row {match['id']!r} "
            f">= clean.near_dup_threshold {settings.near_dup_threshold}; its cluster keeps row {kept['id']!r}"
        )
        rejected[survivors[position]] = _reject(
            rows[survivors[position]], "dedup_near", "near_duplicate", why, duplicate_of=kept["id"]
        )
    survivors = [index for position, index in enumerate(survivors) if position not in near]

    quality_scores: list[dict[str, Any]] = []
    quality_counts: dict[str, int] = {}
    if not settings.cleanlab_enabled:
        notes.append("cleanlab pass skipped: clean.cleanlab_enabled is false")
    elif len(survivors) < MIN_ROWS:
        notes.append(
            f"cleanlab pass skipped: {len(survivors)} rows left, kNN scoring needs at least {MIN_ROWS}"
        )
    else:
        quality_scores, quality_counts = _cleanlab_stage(rows, survivors, settings, rejected)
        survivors = [index for index in survivors if index not in rejected]
    if notes:
        quality_counts["cleanlab_skipped"] = 1

    kept_rows = [{column: rows[index].get(column) for column in EXAMPLE_COLUMNS} for index in survivors]
    rejected_rows = [rejected[index] for index in sorted(rejected)]
    # Nothing is silently dropped: every input row is accounted for exactly once.
    assert len(kept_rows) + len(rejected_rows) == len(rows), "row accounting failed in clean_rows"
    assert not set(survivors) & set(rejected), "a row was both kept and rejected in clean_rows"
    counts = {"input": len(rows), "kept": len(kept_rows)}
    counts.update(sorted(Counter(row["reason"] for row in rejected_rows).items()))
    counts.update(quality_counts)
    return CleanResult(kept_rows, rejected_rows, counts, quality_scores, notes)


def _cleanlab_stage(
    rows: list[dict[str, Any]],
    survivors: list[int],
    settings: CleanSettings,
    rejected: dict[int, dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Embed the survivors, run Datalab, record rejections in ``rejected``; return scores and counts."""
    texts = [conversation_text(rows[index]["messages"]) for index in survivors]
    embed = make_embedder(settings.embedder, dim=settings.embedding_dim, seed=EMBEDDING_SEED)
    report = find_quality_issues(
        texts,
        embed(texts),
        outlier_score_threshold=settings.outlier_score_threshold,
        reject_near_duplicates=settings.cleanlab_near_duplicates,
        groups=[rows[index].get("group_id") for index in survivors],
    )
    threshold = settings.outlier_score_threshold
    for position, score in report.outliers.items():
        why = f"cleanlab outlier score {score:.4f} < clean.outlier_score_threshold {threshold}"
        rejected[survivors[position]] = _reject(
            rows[survivors[position]], "cleanlab", "cleanlab_outlier", why
        )
    for position, kept_position in report.near_duplicates.items():
        kept = rows[survivors[kept_position]]
        why = (
            f"cleanlab finds it a near duplicate of row {kept['id']!r} in embedding space "
            f"(near-duplicate score {report.near_duplicate_scores[position]:.4f}; 0 means identical)"
        )
        rejected[survivors[position]] = _reject(
            rows[survivors[position]], "cleanlab", "cleanlab_near_duplicate", why, duplicate_of=kept["id"]
        )
    scores = [
        {
            "id": rows[index]["id"],
            "outlier_score": report.outlier_scores[position],
            "near_duplicate_score": report.near_duplicate_scores[position],
        }
        for position, index in enumerate(survivors)
    ]
    counts = {
        "cleanlab_outlier_issues": report.outlier_issues,
        "cleanlab_near_duplicate_issues": report.near_duplicate_issues,
    }
    return scores, counts
