"""The cleanlab pass (assets/clean/quality.py): kNN graphs, outliers reported and dropped only when told,
near duplicates by an absolute rule on prompt and answer; and case 10 (templated rows with different
answers are all kept) through the whole clean stage."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assets.clean.embed import embed_texts
from assets.clean.pipeline import CleanSettings, clean_rows
from assets.clean.quality import approximate_knn_graph, cosine_knn_graph, find_quality_issues, knn_graph
from assets.ingest.normalize import normalize_file
from assets.params import section, settings_from
from tests.test_clean import FILLERS, TOPICS, make_row

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "examples.jsonl"


def _clustered(rows: int, centres: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(centres, dim))[rng.integers(0, centres, rows)] + 0.4 * rng.normal(
        size=(rows, dim)
    )
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def test_approximate_knn_graph_finds_the_exact_neighbours() -> None:
    vectors = _clustered(3000, 40)
    exact = cosine_knn_graph(vectors, k=10).indices.reshape(-1, 10)
    graph = approximate_knn_graph(vectors, k=10, seed=0)
    approximate = graph.indices.reshape(-1, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approximate, strict=True)])
    assert recall >= 0.95, recall
    # Datalab's layout: k neighbours per row, never the row itself, by ascending distance.
    assert graph.shape == (3000, 3000) and graph.nnz == 30000
    assert not (approximate == np.arange(3000)[:, None]).any()
    assert (np.diff(graph.data.reshape(-1, 10), axis=1) >= 0).all()
    assert np.array_equal(approximate_knn_graph(vectors, k=10, seed=0).indices, graph.indices)


def test_knn_graph_is_exact_up_to_the_limit() -> None:
    vectors = _clustered(300, 5)
    assert np.array_equal(knn_graph(vectors, k=5).indices, cosine_knn_graph(vectors, k=5).indices)
    approximate = knn_graph(vectors, k=5, exact_knn_max_rows=100)
    assert approximate.nnz == 1500


def _parts() -> list[tuple[str, str]]:
    parts = []
    for index in range(40):
        question, answer = TOPICS[index % 2]
        first, second = FILLERS[index]
        parts.append((f"{first} {second} {question}?", answer))
    parts.append(("qzx vbn", "0x7f 0x3e ~~ ^^ zzzz"))  # 40: outlier
    first, second = FILLERS[7]
    parts.append((f"{second} {first} {TOPICS[1][0]}?", TOPICS[1][1]))  # 41: row 7 with two words swapped
    # 42, 43: one template, other numbers and other answers (case 10)
    parts.append(("How many minutes are there in 2 hours?", "2 hours is 120 minutes."))
    parts.append(("How many minutes are there in 3 hours?", "3 hours is 180 minutes."))
    return parts


def _issues(parts: list[tuple[str, str]], **kwargs: Any) -> Any:
    prompts = embed_texts([prompt for prompt, _ in parts], dim=16, seed=0)
    answers = embed_texts([answer for _, answer in parts], dim=16, seed=0)
    options = {"outlier_score_threshold": 0.02, "similarity": 0.9, **kwargs}
    return find_quality_issues(parts, prompts, answers, **options)


@pytest.mark.parametrize("exact_knn_max_rows", [10_000, 0])
def test_quality_reports_outliers_and_links_by_prompt_and_answer(exact_knn_max_rows: int) -> None:
    report = _issues(_parts(), exact_knn_max_rows=exact_knn_max_rows)
    # the gibberish row, and the two template rows that are unlike the rest of this small set
    assert list(report.outliers) == [40, 42, 43]
    assert {index: near.kept_index for index, near in report.near_duplicates.items()} == {41: 7}
    near = report.near_duplicates[41]
    assert near.prompt_similarity == pytest.approx(1.0) and near.answer_similarity == pytest.approx(1.0)
    assert near.cluster_size == 2 and near.match_index == 7
    assert len(report.outlier_scores) == len(report.near_duplicate_scores) == 44


def test_quality_template_rows_are_kept_apart_by_their_numbers() -> None:
    report = _issues(_parts(), similarity=0.5)
    assert 43 not in report.near_duplicates and 42 not in report.near_duplicates
    assert report.kept_apart["numbers"] >= 1


def test_quality_near_duplicates_need_a_close_answer_too() -> None:
    parts = _parts()
    parts[41] = (parts[41][0], "Something else entirely: sort it by hand, then print it twice.")
    assert 41 not in _issues(parts).near_duplicates


def test_quality_dropped_outliers_are_never_the_kept_row() -> None:
    parts = _parts()
    parts.append(parts[40])  # 44: a copy of the outlier
    assert _issues(parts).near_duplicates[44].kept_index == 40
    dropped = _issues(parts, drop_outliers=True)
    assert 40 in dropped.outliers and 44 not in dropped.near_duplicates


def test_quality_keeps_near_duplicates_of_one_group() -> None:
    groups: list[str | None] = [None] * 44
    groups[7] = groups[41] = "thread"
    report = _issues(_parts(), groups=groups)
    assert report.near_duplicates == {} and report.kept_apart["same_group"] == 1
    with pytest.raises(ValueError, match="one group id"):
        _issues(_parts(), groups=groups[:-1])


# ---------------------------------------------------------------------------------------------- case 10

# Case 10: one template, different numbers, different correct answers (alpaca rows, as users write them).
TEMPLATE_ROWS = [
    {
        "id": f"min-{hours}",
        "created_at": f"2025-07-{day:02d}T10:00:00Z",
        "instruction": f"How many minutes are there in {hours} hours?",
        "input": "",
        "output": f"{hours} hours is {hours * 60} minutes, because each hour has 60 minutes.",
    }
    for day, hours in enumerate((2, 3, 5, 7, 9, 12, 15, 18), start=1)
]
OTHER_ROWS = [
    ("f-canada", "Name the capital of Canada.", "Ottawa is the capital of Canada."),
    ("f-hexagon", "How many sides does a hexagon have?", "A hexagon has six sides."),
    ("f-violin", "How many strings does a standard violin have?", "A standard violin has four strings."),
    ("f-gold", "What is the chemical symbol for gold?", "The symbol for gold is Au."),
    ("f-mona", "Who painted the Mona Lisa?", "Leonardo da Vinci painted it."),
    ("f-gas", "What gas do plants take in for photosynthesis?", "They take in carbon dioxide."),
]
# True copies of a template row: they must still go.
COPIES = [
    {**TEMPLATE_ROWS[2], "id": "copy-exact", "created_at": "2025-07-20T10:00:00Z"},
    {
        **TEMPLATE_ROWS[3],
        "id": "copy-near",
        "created_at": "2025-07-21T10:00:00Z",
        "instruction": "how many minutes are there in 7 hours ?",
    },
]


def _clean(path: Path) -> tuple[set[str], dict[str, tuple[str, str | None]]]:
    settings = settings_from(CleanSettings, section("clean"))
    result = clean_rows(normalize_file(path, max_chars=8000), settings)
    return {row["id"] for row in result.kept}, {
        r["id"]: (r["reason"], r["duplicate_of"]) for r in result.rejected
    }


def _write(path: Path, rows: list[dict[str, Any]], prefix: str = "") -> Path:
    path.write_text(prefix + "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("with_sample", [False, True], ids=["alone", "with-sample"])
def test_case_10_template_rows_are_all_kept_and_copies_removed(tmp_path: Path, with_sample: bool) -> None:
    others = [
        {
            "id": row_id,
            "created_at": f"2025-07-{10 + n:02d}T10:00:00Z",
            "instruction": q,
            "input": "",
            "output": a,
        }
        for n, (row_id, q, a) in enumerate(OTHER_ROWS)
    ]
    prefix = SAMPLE.read_text(encoding="utf-8") if with_sample else ""
    kept, rejected = _clean(_write(tmp_path / "input.jsonl", TEMPLATE_ROWS + others + COPIES, prefix))
    template_ids = {row["id"] for row in TEMPLATE_ROWS}
    assert template_ids <= kept, rejected
    assert {row[0] for row in OTHER_ROWS} <= kept, rejected
    assert rejected["copy-exact"] == ("duplicate_exact", "min-5")
    assert rejected["copy-near"] == ("near_duplicate", "min-7")
    if with_sample:
        # The sample's own template rows ("Convert N °C ...", arithmetic) stay too: only copies go.
        assert {reason for reason, _ in rejected.values()} <= {
            "duplicate_exact",
            "near_duplicate",
            "prefix_of_longer",
            *("malformed_json", "not_an_object", "missing_field", "wrong_type"),
            *("bad_timestamp", "oversize", "bad_role"),
        }


def test_cleanlab_alone_keeps_the_template_rows() -> None:
    """The cleanlab pass on its own (no MinHash step before it): template rows stay, copies go."""
    rows = [
        make_row(row["id"], row["instruction"], row["output"], line=n)
        for n, row in enumerate(TEMPLATE_ROWS, start=1)
    ]
    copy = TEMPLATE_ROWS[3]
    rows.append(make_row("copy-near", copy["instruction"] + " Thanks a lot!", copy["output"], line=10))
    rows += [make_row(i, q, a, line=20 + n) for n, (i, q, a) in enumerate(OTHER_ROWS)]
    settings = dataclasses.replace(
        settings_from(CleanSettings, section("clean")),
        near_dup_threshold=1.0,
        cleanlab_near_dup_similarity=0.5,
    )
    result = clean_rows(rows, settings)
    rejected = {row["id"]: (row["reason"], row["duplicate_of"]) for row in result.rejected}
    assert rejected == {"copy-near": ("cleanlab_near_duplicate", "min-7")}
