"""clean_examples and rejected_examples: one pass that accounts for every raw row."""

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from assets.publishing import (
    Stopwatch,
    artifact_store,
    count_table,
    counts_by,
    dataset_metadata,
    inline_markdown,
    record_stage,
    stage_config,
    stage_policy,
    stage_settings,
    stage_value,
)
from assets.shared.text import markdown_cell
from assets.types import Dataset
from resources.dvc import DvcResource
from resources.models import ModelLoader
from resources.storage import StorageResource

CleanConfig = stage_config("clean")
FINDINGS = ("near_duplicate_clusters", "cleanlab_outliers", "special_token_text_rows")


@dg.multi_asset(
    name="clean",
    # A selection may name one output; both are always written (see record_stage).
    can_subset=True,
    specs=[
        dg.AssetSpec(
            "clean_examples",
            # The base model's tokenizer and chat template decide what can be trained on.
            deps=["raw_examples", "base_model"],
            description="Raw rows that passed validation, exact and near-duplicate removal and the "
            "cleanlab pass (near duplicates, outliers on embeddings): the training pool. Their text is "
            "cleaned of invisible and control characters (PII was replaced by typed placeholders at ingest); "
            "each row renders with the base model's chat template within train.max_seq_length tokens.",
            kinds={"parquet", "dvc"},
        ),
        dg.AssetSpec(
            "rejected_examples",
            deps=["raw_examples", "base_model"],
            description="Every raw row that was not kept, with the `stage` that rejected it, a `reason` "
            "code, a readable `detail` and, for duplicates, the id it duplicates (`duplicate_of`).",
            kinds={"parquet", "dvc"},
        ),
    ],
    group_name="data",
    **stage_policy("clean", multi_asset=True),
)
def clean(
    context: dg.AssetExecutionContext,
    config: CleanConfig,
    raw_examples: Dataset,
    base_model: Path,
    storage: StorageResource,
    dvc: DvcResource,
    models: ModelLoader,
) -> Iterator[dg.MaterializeResult]:
    from assets.clean.dedup import largest_clusters
    from assets.clean.outcome import (
        AllRowsRejectedError,
        reasons_by_count,
        rejected_share_warning,
        require_kept,
    )
    from assets.clean.pipeline import CleanSettings, clean_rows
    from assets.clean.token_checks import token_check_steps
    from assets.shared.schema import example_features, rejected_features, to_dataset

    stopwatch = Stopwatch()
    settings = stage_settings(CleanSettings, config.model_dump())
    # Rows are checked with the tokenizer and chat template training will use (train.max_seq_length).
    token_checks = token_check_steps(
        models.tokenizer(base_model), stage_value(config, "max_seq_length", int), settings.too_long_policy
    )
    result = clean_rows(raw_examples.to_list(), settings, token_check=token_checks)
    store = artifact_store(storage)
    aside = store.path("rejected_examples").with_suffix(".failed.jsonl")
    try:
        require_kept(len(result.kept), result.rejected)
    except AllRowsRejectedError as exc:
        # The last good pair stays: an empty training pool is no improvement on it, and downstream
        # stages would read it. This run's rejections go next to it, where the message points.
        _write_jsonl(aside, result.rejected)
        raise dg.Failure(
            description=f"clean: {exc}. The previous clean_examples and rejected_examples are left as "
            f"they were; every rejected row of this run, with its reason and detail, is in {aside}.",
            metadata={
                "rejected_rows_file": dg.MetadataValue.path(str(aside)),
                "drops_by_reason": count_table(reasons_by_count(result.rejected), "reason"),
                "examples_by_reason": dg.MetadataValue.md(reason_examples(result.rejected)),
            },
            allow_retries=False,
        ) from None
    warning = rejected_share_warning(len(result.kept), result.rejected)
    if warning:
        context.log.warning(f"clean: {warning}")
    trimmed = _rewrite_changes(result.step_counts, "tokens")
    kept = to_dataset(result.kept, example_features())
    rejected = to_dataset(result.rejected, rejected_features())
    store.write_datasets({"clean_examples": kept, "rejected_examples": rejected})
    # A failed run's rejections are stale once a run succeeds; rejected_examples now holds the truth.
    aside.unlink(missing_ok=True)
    outputs = {
        "clean_examples": {
            **dataset_metadata(kept),
            "raw_rows": len(raw_examples),
            "rejected_share": len(result.rejected) / max(len(raw_examples), 1),
            # Set when more than half of the rows were rejected (also logged as a warning).
            "rejection_warning": warning or "none",
            # What Datalab flagged before our thresholds decided what to reject, and anything skipped.
            "cleanlab_flags": count_table(
                [
                    (k, v)
                    for k, v in result.counts.items()
                    if k.startswith("cleanlab_") and k.endswith("_issues")
                ],
                "Datalab issue",
            ),
            # What the dedup, cleanlab and token steps found besides rejections: clusters, pairs the
            # template rules kept apart, outliers only reported, special-token text kept as text.
            "findings": count_table(
                [(k, v) for k, v in result.counts.items() if k in FINDINGS or k.startswith("cleanlab_kept")],
                "finding",
            ),
            # Rows whose category Datalab doubts (kept unless clean.cleanlab_drop_label_issues), and
            # whether the rows drift over created_at (reported only).
            "cleanlab_label_issues": dg.MetadataValue.md(label_issue_table(result.quality_scores)),
            "cleanlab_drift": next(
                (note for note in result.notes if note.startswith("cleanlab drift check")), "not run"
            ),
            "max_tokens_kept": result.counts.get("max_tokens_kept", 0),
            # Rendered lengths of the rows that reached the token check, against train.max_seq_length.
            "token_lengths": dg.MetadataValue.md(length_table(result.counts)),
            # rows over train.max_seq_length kept by dropping their earliest exchanges (trim_history)
            "too_long_policy": settings.too_long_policy,
            "trimmed_rows": trimmed.get("trimmed_rows", 0),
            "trimmed_turns": trimmed.get("trimmed_turns", 0),
            "notes": "; ".join(result.notes) or "none",
            # The cleaning steps in order: what each saw, rejected and rewrote.
            "steps": dg.MetadataValue.md(step_table(result.step_counts)),
            # What text hygiene changed, by kind (PII is redacted at ingest: raw_examples' pii_redacted).
            "hygiene_changes": dg.MetadataValue.md(hygiene_table(result.step_counts)),
            # The biggest near-duplicate clusters: the row kept and one removed, to judge the rule by eye.
            "largest_near_duplicate_clusters": inline_markdown(
                lambda chars: cluster_table(largest_clusters(result.kept, result.rejected, limit=5), chars),
                (50, 35, 20),
            ),
        },
        "rejected_examples": {
            **dataset_metadata(rejected),
            "drops_by_reason": count_table(counts_by(rejected, "reason").items(), "reason"),
            "drops_by_stage": count_table(counts_by(rejected, "stage").items(), "stage"),
            "examples_by_reason": dg.MetadataValue.md(reason_examples(result.rejected)),
        },
    }
    yield from record_stage(context, config, storage, dvc, outputs, stopwatch)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` as JSON lines, whole or not at all (a temporary file renamed over ``path``);
    timestamps as ISO-8601 text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, default=_jsonable) + "\n")
    os.replace(tmp, path)


def _jsonable(value: object) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def length_table(counts: dict[str, int], width: int = 40) -> str:
    """The token-length histogram of the token check as a markdown table with text bars."""
    buckets = [(k, v) for k, v in counts.items() if k.startswith("token_length_")]
    if not buckets:
        return "none (no row reached the token check)"
    top = max(v for _, v in buckets) or 1
    lines = ["| rendered tokens | rows | |", "|---|---|---|"]
    low = 0
    for key, value in buckets:
        if key.startswith("token_length_over_"):
            label = f"> {key.removeprefix('token_length_over_')} (too long)"
        else:
            edge = int(key.rsplit("_", 1)[1])
            label, low = f"{low + 1}-{edge}", edge
        lines.append(f"| {label} | {value} | {'█' * round(width * value / top)} |")
    return "\n".join(lines)


def step_table(step_counts: list[dict]) -> str:
    """One markdown row per cleaning step, in the order they ran."""
    lines = ["| step | stage | kind | rows in | rejected | rewritten |", "|---|---|---|---|---|---|"]
    for step in step_counts:
        cells = (
            step["step"],
            step["stage"],
            step["kind"],
            step["rows_in"],
            step["rejected"],
            step["rewritten"],
        )
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def label_issue_table(scores: list[dict], shown: int = 20) -> str:
    """The rows whose category looks wrong, lowest label quality first: id, given and suggested category."""
    flagged = sorted(
        (score for score in scores if score.get("suggested_category") is not None),
        key=lambda score: score["label_score"],
    )
    lines = ["| id | given category | suggested category | label quality |", "|---|---|---|---|"]
    for score in flagged[:shown]:
        cells = (score["id"], score["given_category"], score["suggested_category"])
        escaped = [markdown_cell(cell) for cell in cells]
        lines.append(f"| {' | '.join(escaped)} | {score['label_score']:.3f} |")
    if len(flagged) > shown:
        lines.append(f"| … and {len(flagged) - shown} more | | | |")
    return "\n".join(lines) if flagged else "none"


def _rewrite_changes(step_counts: list[dict], stage: str) -> Counter[str]:
    """The counters of the rewrite steps of one stage, summed (without ``changed_rows``)."""
    total: Counter[str] = Counter()
    for step in step_counts:
        if step["kind"] == "rewrite" and step["stage"] == stage:
            total.update({k: v for k, v in step["changes"].items() if k != "changed_rows"})
    return total


def hygiene_table(step_counts: list[dict]) -> str:
    """What text hygiene changed, by kind (characters removed, lines trimmed, messages composed)."""
    changes = _rewrite_changes(step_counts, "hygiene")
    lines = ["| kind | changes |", "|---|---|", *(f"| {k} | {v} |" for k, v in sorted(changes.items()))]
    return "\n".join(lines) if changes else "none"


def reason_examples(rejected: list[dict], per_reason: int = 3) -> str:
    """The first few rejected rows of each reason, with their id and detail, for a look without a query."""
    by_reason: dict[str, list[dict]] = {}
    for row in rejected:
        by_reason.setdefault(str(row["reason"]), []).append(row)
    lines = ["| reason | rows | id | detail |", "|---|---|---|---|"]
    for reason in sorted(by_reason):
        rows = by_reason[reason]
        for row in rows[:per_reason]:
            detail = " ".join(str(row["detail"]).split())
            detail = markdown_cell(detail if len(detail) <= 200 else detail[:199] + "…")
            row_id = markdown_cell(row["id"])
            lines.append(f"| {reason} | {len(rows)} | {row_id} | {detail} |")
    return "\n".join(lines) if by_reason else "none"


def _excerpt(row: dict | None, chars: int = 80) -> str:
    """The start of a row's turns on one line, for a markdown cell."""
    if row is None:
        return "(not found)"
    text = " ".join(" ".join(str(m["content"] or "") for m in row["messages"] or []).split())
    text = text if len(text) <= chars else text[: chars - 1] + "…"
    return markdown_cell(text)


def cluster_table(clusters: list, chars: int = 80) -> str:
    """One markdown row per near-duplicate cluster (:class:`assets.clean.dedup.ClusterSummary`): its id
    (the kept row's id, which every removed member holds in `duplicate_of`), the step that removed the
    others, its size, and excerpts of the kept row and of its first removed member."""
    lines = [
        "| cluster (kept id) | found by | rows | kept | removed, e.g. |",
        "|---|---|---|---|---|",
    ]
    for cluster in clusters:
        cluster_id = markdown_cell(cluster.cluster_id)
        removed_id = markdown_cell(cluster.removed["id"])
        removed = f"{removed_id}: {_excerpt(cluster.removed, chars)}"
        kept = _excerpt(cluster.kept, chars)
        lines.append(f"| {cluster_id} | {cluster.reason} | {cluster.size} | {kept} | {removed} |")
    return "\n".join(lines) if clusters else "none"


@dg.asset_check(
    asset="clean_examples",
    additional_ins={
        "raw_examples": dg.AssetIn("raw_examples"),
        "rejected_examples": dg.AssetIn("rejected_examples"),
    },
    blocking=True,
    description="Every raw row is in exactly one of clean_examples and rejected_examples.",
)
def row_accounting(
    clean_examples: Dataset, raw_examples: Dataset, rejected_examples: Dataset
) -> dg.AssetCheckResult:
    from assets.clean.accounting import account_rows

    problems = account_rows(raw_examples["id"], clean_examples["id"], rejected_examples["id"])
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "raw": len(raw_examples),
            "clean": len(clean_examples),
            "rejected": len(rejected_examples),
            "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
        },
    )
