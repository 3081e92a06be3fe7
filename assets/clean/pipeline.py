"""The cleaning pipeline: raw rows in, clean rows and rejected rows (each with a reason) out.

:func:`default_steps` lists the steps, built from ``CleanSettings``; :func:`assets.clean.steps.run_steps`
applies them in order, each to the rows that survived the previous ones, and does the bookkeeping. Each
step's stage is the ``stage`` column of the rows it rejects:

1. ``ingest``: rows the reader could not normalize (their ``error`` is set);
   ``hygiene`` (``clean.text_hygiene``): turns with no visible character, then the rewrite of
   :mod:`assets.clean.hygiene` (invisible and lone control characters, NFC, whitespace);
2. ``validate``: the row filters of :mod:`assets.clean.filters`, then unique ids, then future timestamps
   (``clean.max_future_skew_hours``, see :func:`future_reference`);
3. ``dedup_exact``: normalized-text hashes;
4. ``dedup_prefix``: conversations that are the opening turns of a longer one;
5. ``dedup_near``: character-shingle Jaccard, candidates from MinHash + LSH, verified exactly, with the
   rules of :mod:`assets.shared.neardup` that keep distinct examples of one template apart (the split
   uses the same notion and settings);
6. ``cleanlab``: Datalab outliers (reported; dropped with ``clean.cleanlab_drop_outliers``), near
   duplicates whose prompt and answer are both close in embedding space, label issues on ``category``
   (reported; dropped with ``clean.cleanlab_drop_label_issues``) and drift over ``created_at`` (reported
   only), see :mod:`assets.clean.quality`.

The near-duplicate stages never link two rows of one group (same non-null ``group_id``); exact and prefix
duplicates are rejected whatever their groups.

Every input row ends up in exactly one of ``kept`` and ``rejected``, in file order. PII is not this
stage's business: ingest redacts every text before raw_examples is written (``data.pii_redaction``), and
looks through the invisible and control characters that text hygiene removes here, so no PII surfaces.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from assets.clean.dedup import (
    ConversationParts,
    contents,
    find_exact_duplicates,
    find_near_duplicates,
    find_prefix_duplicates,
    prompt_and_answer,
)
from assets.clean.embed import SUPPORTED_EMBEDDERS, make_embedder
from assets.clean.filters import check_ingest_error, find_reused_ids, row_filters, validate_row
from assets.clean.hygiene import hygiene_rewrite, invisible_only_turns
from assets.clean.quality import MIN_ROWS, find_quality_issues
from assets.clean.steps import (
    Filtered,
    FilterStep,
    Rejection,
    RewriteStep,
    Row,
    Step,
    each_row,
    run_steps,
)
from assets.shared.groups import conversation_key
from assets.shared.timestamps import parse_cutoff

# What a null clean.reference_time means, for the error a bad value gets (see future_reference).
REFERENCE_TIME_NULL = (
    "to check created_at against the end of the current UTC day (the next midnight) plus "
    "clean.max_future_skew_hours"
)

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
    # Off unless params.yaml turns them on (it does), so code that builds settings by hand keeps the old
    # steps; keyword-only, so that fields without a default can still follow.
    text_hygiene: bool = field(default=False, kw_only=True)
    # What the token step does with a row longer than train.max_seq_length: reject, or trim_history
    # (assets/clean/token_checks.py).
    too_long_policy: str = field(default="reject", kw_only=True)
    max_future_skew_hours: int | None = field(default=None, kw_only=True)
    reference_time: str | None = field(default=None, kw_only=True)
    # The cleanlab pass: outliers are reported, and dropped only when this says so; near duplicates need
    # this cosine similarity of both their prompts and their answers (defaults as in params.yaml).
    cleanlab_drop_outliers: bool = field(default=False, kw_only=True)
    cleanlab_near_dup_similarity: float = field(default=0.9, kw_only=True)
    # Label issues on `category` are reported, and dropped only when this says so; the out-of-fold
    # probabilities behind them come from this many folds.
    cleanlab_drop_label_issues: bool = field(default=False, kw_only=True)
    cleanlab_label_folds: int = field(default=5, kw_only=True)

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            expected = {
                "int": int,
                "float": (int, float),
                "bool": bool,
                "str": str,
                "int | None": (int, type(None)),
                "str | None": (str, type(None)),
                "tuple[str, ...]": (tuple, list),
            }[str(spec.type)]
            # bool is an int in Python, but "true" for a count is a typo worth reporting.
            numeric = spec.type in ("int", "float", "int | None")
            if not isinstance(value, expected) or (numeric and isinstance(value, bool)):
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
            self.cleanlab_label_folds >= 2, "cleanlab_label_folds", "must be >= 2", self.cleanlab_label_folds
        )
        _require(
            0 < self.cleanlab_near_dup_similarity <= 1,
            "cleanlab_near_dup_similarity",
            "must be in (0, 1]",
            self.cleanlab_near_dup_similarity,
        )
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
        _require(
            self.too_long_policy in ("reject", "trim_history"),
            "too_long_policy",
            "must be reject or trim_history",
            self.too_long_policy,
        )
        skew = self.max_future_skew_hours
        _require(skew is None or skew >= 0, "max_future_skew_hours", "must be >= 0", skew)
        # an InputError names the setting and says what null does
        parse_cutoff(self.reference_time, "clean.reference_time", null_means=REFERENCE_TIME_NULL)


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


def default_steps(
    settings: CleanSettings,
    *,
    now: datetime | None = None,
    token_check: Step | Sequence[Step] | None = None,
) -> list[Step]:
    """The cleaning steps in order. Cheap, exact checks run first so the costly ones see fewer rows.

    Text hygiene runs before validation, which then rejects what it could not repair (NUL, U+FFFD);
    future timestamps go before dedup, so that a
    rejected row is never the kept copy of a duplicate. ``now`` (default: the clock) only matters for
    :func:`future_reference` when ``clean.reference_time`` is null. ``token_check`` is the base model's
    token-aware step, or steps (assets/clean/token_checks.py); they go before dedup, so that a row the
    model cannot be trained on is never the kept copy of a duplicate.
    """
    filters = row_filters(min_response_chars=settings.min_response_chars)
    hygiene: list[Step] = []
    if settings.text_hygiene:
        hygiene = [
            FilterStep("hygiene", each_row(invisible_only_turns), name="visible_text"),
            RewriteStep("hygiene", hygiene_rewrite, name="text_hygiene"),
        ]
    freshness: list[Step] = []
    if settings.max_future_skew_hours is not None:
        limit = partial(
            future_timestamps,
            reference=future_reference(settings, now),
            skew_hours=settings.max_future_skew_hours,
        )
        freshness = [FilterStep("validate", limit, name="future_timestamp")]
    return [
        FilterStep("ingest", each_row(check_ingest_error)),
        *hygiene,
        FilterStep("validate", each_row(partial(validate_row, filters=filters))),
        FilterStep("validate", find_reused_ids, name="unique_ids"),
        *freshness,
        *_as_steps(token_check),
        FilterStep("dedup_exact", exact_duplicates),
        FilterStep("dedup_prefix", prefix_duplicates),
        FilterStep("dedup_near", partial(near_duplicates, settings=settings)),
        FilterStep("cleanlab", partial(cleanlab_pass, settings=settings)),
    ]


def clean_rows(
    rows: list[dict[str, Any]], settings: CleanSettings, *, token_check: Step | Sequence[Step] | None = None
) -> CleanResult:
    """Split raw rows into clean examples and rejected rows, deterministically and in file order.
    ``token_check``: see :func:`default_steps`."""
    result = run_steps(rows, default_steps(settings, token_check=token_check))
    return CleanResult(
        result.kept, result.rejected, result.counts, result.scores, result.notes, result.step_counts
    )


def _as_steps(steps: Step | Sequence[Step] | None) -> list[Step]:
    if steps is None:
        return []
    return [steps] if isinstance(steps, FilterStep | RewriteStep) else list(steps)


def future_reference(settings: CleanSettings, now: datetime | None = None) -> datetime:
    """The time a ``created_at`` is compared with: ``clean.reference_time`` when set, else the end of the
    current UTC day (the next midnight).

    The day, not the moment: a re-run on the same input rejects the same rows all day, and only a row
    dated less than ``clean.max_future_skew_hours`` past the next midnight can change verdict from one
    day to the next. A typo'd year never does. Set ``clean.reference_time`` to the value a run reported
    to reproduce it exactly on any day.
    """
    pinned = parse_cutoff(settings.reference_time, "clean.reference_time", null_means=REFERENCE_TIME_NULL)
    if pinned is not None:
        return pinned
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    return datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)


def future_timestamps(rows: Sequence[Row], *, reference: datetime, skew_hours: int) -> Filtered:
    """Reject rows whose ``created_at`` is later than ``reference`` + ``skew_hours``: a mistyped year
    (2099) would otherwise be the newest data and decide the time split. The note names the limit."""
    limit = reference + timedelta(hours=skew_hours)
    rejections = {}
    for position, row in enumerate(rows):
        created = row["created_at"]
        if created > limit:
            why = (
                f"created_at {created.isoformat()} is later than {limit.isoformat()} (reference time "
                f"{reference.isoformat()} + clean.max_future_skew_hours {skew_hours})"
            )
            rejections[position] = Rejection("future_timestamp", why)
    note = (
        f"future timestamps: rows with created_at after {limit.isoformat()} rejected (reference time "
        f"{reference.isoformat()} + clean.max_future_skew_hours {skew_hours})"
    )
    return Filtered(rejections, notes=[note])


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


def near_duplicates(rows: Sequence[Row], *, settings: CleanSettings) -> Filtered:
    """Reject near duplicates: Jaccard of character ``clean.shingle_size``-grams at or over
    ``clean.near_dup_threshold``, with the same numbers and an answer that does not follow a changed
    question (see :mod:`assets.shared.neardup`). ``duplicate_of`` is the kept (earliest) row of the
    cluster, which names the cluster in ``detail`` too. Rows of one group are never linked. Counts:
    clusters and the pairs a rule kept apart."""
    report = find_near_duplicates(
        [contents(row["messages"]) for row in rows],
        threshold=settings.near_dup_threshold,
        num_permutations=settings.minhash_permutations,
        shingle_size=settings.shingle_size,
        groups=[row.get("group_id") for row in rows],
        parts=ConversationParts([row["messages"] for row in rows]),
    )
    rejections = {}
    for position, near in report.duplicates.items():
        kept, match = rows[near.kept_index], rows[near.match_index]
        why = (
            f"character {settings.shingle_size}-gram Jaccard {near.jaccard:.3f} with row {match['id']!r} "
            f">= clean.near_dup_threshold {settings.near_dup_threshold}, same numbers; near-duplicate "
            f"cluster {kept['id']!r} ({near.cluster_size} rows) keeps its earliest row, {kept['id']!r}"
        )
        rejections[position] = Rejection("near_duplicate", why, duplicate_of=kept["id"])
    counts = {
        "near_duplicate_clusters": report.clusters,
        **{f"near_duplicate_kept_apart_{rule}": count for rule, count in report.kept_apart.items()},
    }
    return Filtered(rejections, {name: count for name, count in counts.items() if count})


def cleanlab_pass(rows: Sequence[Row], *, settings: CleanSettings) -> Filtered:
    """Embed each row's prompt and answer and run cleanlab's Datalab on their kNN graph (see
    :mod:`assets.clean.quality`). Outliers (score below ``clean.outlier_score_threshold``) are reported in a
    note and rejected only with ``clean.cleanlab_drop_outliers``; label issues on ``category`` likewise,
    with ``clean.cleanlab_drop_label_issues``; drift over ``created_at`` is only reported. With
    ``clean.cleanlab_near_duplicates``, rows whose prompt and answer both reach
    ``clean.cleanlab_near_dup_similarity`` with an earlier kept row's are rejected. Also returns one
    ``{id, outlier_score, near_duplicate_score, label_score, given_category, suggested_category,
    non_iid_score}`` per row (``None`` where a check did not score the row) and Datalab's issue counts;
    skipped, with a note, when disabled or when too few rows are left for kNN."""
    if not settings.cleanlab_enabled:
        return _skipped("cleanlab pass skipped: clean.cleanlab_enabled is false")
    if len(rows) < MIN_ROWS:
        return _skipped(
            f"cleanlab pass skipped: {len(rows)} rows left, kNN scoring needs at least {MIN_ROWS}"
        )
    parts = [prompt_and_answer(row["messages"]) for row in rows]
    embed = make_embedder(settings.embedder, dim=settings.embedding_dim, seed=EMBEDDING_SEED)
    similarity = settings.cleanlab_near_dup_similarity
    report = find_quality_issues(
        parts,
        embed([prompt for prompt, _ in parts]),
        embed([answer for _, answer in parts]),
        outlier_score_threshold=settings.outlier_score_threshold,
        similarity=similarity,
        drop_outliers=settings.cleanlab_drop_outliers,
        groups=[row.get("group_id") for row in rows],
        categories=[row.get("category") for row in rows],
        created_at=[row.get("created_at") for row in rows],
        drop_label_issues=settings.cleanlab_drop_label_issues,
        label_folds=settings.cleanlab_label_folds,
        seed=EMBEDDING_SEED,
    )
    rejections = {}
    threshold = settings.outlier_score_threshold
    notes = []
    if settings.cleanlab_drop_outliers:
        for position, score in report.outliers.items():
            why = f"cleanlab outlier score {score:.4f} < clean.outlier_score_threshold {threshold}"
            rejections[position] = Rejection("cleanlab_outlier", why)
    elif report.outliers:
        notes.append(
            f"cleanlab: {len(report.outliers)} outliers (score < clean.outlier_score_threshold {threshold}) "
            f"kept, as clean.cleanlab_drop_outliers is false: {_some_ids(rows, report.outliers)}"
        )
    labels = report.labels
    if settings.cleanlab_drop_label_issues:
        for position, issue in labels.issues.items():
            why = (
                f"cleanlab label issue: category {issue.given!r} looks wrong (label quality "
                f"{issue.score:.3f}; the other rows suggest {issue.suggested!r}), "
                "clean.cleanlab_drop_label_issues is true"
            )
            rejections[position] = Rejection("label_issue", why)
        notes.append(labels.note)
    else:
        flagged = f"; kept, as clean.cleanlab_drop_label_issues is false: {_some_ids(rows, labels.issues)}"
        notes.append(labels.note + (flagged if labels.issues else ""))
    notes.append(report.drift.note)
    if settings.cleanlab_near_duplicates:
        for position, near in report.near_duplicates.items():
            kept, match = rows[near.kept_index], rows[near.match_index]
            why = (
                f"cleanlab: prompt and answer embeddings have cosine similarity {near.prompt_similarity:.3f} "
                f"and {near.answer_similarity:.3f} with row {match['id']!r} (both >= "
                f"clean.cleanlab_near_dup_similarity {similarity}), same numbers; near-duplicate cluster "
                f"{kept['id']!r} ({near.cluster_size} rows) keeps its earliest row, {kept['id']!r}"
            )
            rejections[position] = Rejection("cleanlab_near_duplicate", why, duplicate_of=kept["id"])
    scores = []
    for position, row in enumerate(rows):
        issue = labels.issues.get(position)
        scores.append(
            {
                "id": row["id"],
                "outlier_score": report.outlier_scores[position],
                "near_duplicate_score": report.near_duplicate_scores[position],
                "label_score": labels.scores.get(position),
                "given_category": issue.given if issue else None,
                "suggested_category": issue.suggested if issue else None,
                "non_iid_score": report.drift.scores.get(position),
            }
        )
    counts = {
        "cleanlab_outlier_issues": report.outlier_issues,
        "cleanlab_near_duplicate_issues": report.near_duplicate_issues,
        "cleanlab_outliers": len(report.outliers),
        **{f"cleanlab_kept_apart_{rule}": count for rule, count in report.kept_apart.items() if count},
        **({"cleanlab_label_issues": len(labels.issues)} if labels.checked else {}),
        **({"cleanlab_non_iid_issues": int(report.drift.detected)} if report.drift.rows else {}),
    }
    return Filtered(rejections, counts, notes=notes, scores=scores)


def _some_ids(rows: Sequence[Row], positions: Iterable[int], shown: int = 20) -> str:
    """The ids of the rows at ``positions``, the first ``shown`` of them, for a note."""
    ids = [repr(rows[position]["id"]) for position in positions]
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more


def _skipped(note: str) -> Filtered:
    # The asset reports a skipped pass by this count as well as by the note.
    return Filtered({}, {"cleanlab_skipped": 1}, notes=[note])
