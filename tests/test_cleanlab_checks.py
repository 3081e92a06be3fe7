"""The cleanlab pass's label check on ``category`` (assets/clean/label_issues.py) and its drift check over
``created_at`` (assets/clean/drift.py): planted mislabeled rows are flagged and dropped only when set, a
distribution that changes over time is detected and a shuffled one is not, and the outlier and
near-duplicate verdicts do not change when rows carry categories and timestamps."""

from __future__ import annotations

import dataclasses
import itertools
import random
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from assets.clean.asset import label_issue_table
from assets.clean.drift import find_drift, reorder_graph, time_order
from assets.clean.embed import embed_texts
from assets.clean.label_issues import find_label_issues
from assets.clean.pipeline import CleanSettings, clean_rows
from assets.clean.quality import cosine_knn_graph, find_quality_issues
from tests.conftest import CLEAN_START, make_row

SETTINGS = CleanSettings(
    min_response_chars=2,
    near_dup_threshold=0.8,
    minhash_permutations=128,
    shingle_size=5,
    cleanlab_enabled=True,
    embedder="embedded",
    embedding_dim=32,
    outlier_score_threshold=0.02,
    cleanlab_near_duplicates=True,
)

# Two clear topics; every row draws its own words and tips, so no two rows are near duplicates.
TOPICS = {
    "cooking": (
        (
            "pasta",
            "rice",
            "onions",
            "salmon",
            "bread dough",
            "potatoes",
            "lentils",
            "mushrooms",
            "eggs",
            "tofu",
        ),
        ("boil", "roast", "fry", "bake", "simmer", "steam", "grill", "season", "chop", "marinate"),
        (
            "Salt the water well.",
            "Preheat the oven for ten minutes.",
            "Use a heavy pan so nothing burns.",
            "Let it rest before serving.",
            "Taste and adjust the seasoning at the end.",
            "Keep the lid on to hold the steam.",
            "Cut everything to the same size so it cooks evenly.",
            "A splash of lemon juice brightens the flavour.",
        ),
    ),
    "programming": (
        ("a Python list", "a dictionary", "a JSON file", "a SQL query", "a git branch", "a regex", "a class"),
        ("sort", "merge", "parse", "refactor", "debug", "serialize", "profile", "test", "document", "index"),
        (
            "Write a unit test first.",
            "Run the linter before you commit.",
            "Read the traceback from the bottom up.",
            "Keep the function small and give it a clear name.",
            "Check the library documentation for a built-in helper.",
            "Use type hints so the editor can help you.",
            "Profile before you optimise anything.",
            "Commit the change on its own branch.",
        ),
    ),
}
WHEN = {
    "cooking": ("for dinner", "in the oven", "on the stove", "for a party", "for lunch", "in a wok"),
    "programming": ("in Python", "in production", "in my tests", "in a notebook", "on the server", "in CI"),
}
PLANTED = (5, 17, 33, 58)  # rows given the other topic's category


def topic_rows(count: int, *, seed: int = 0, planted: tuple[int, ...] = PLANTED) -> list[dict[str, Any]]:
    """``count`` rows alternating between two topics, the rows in ``planted`` labeled with the other one.

    Each row of a topic has its own (thing, verb) pair, which its prompt and answer both name, so no two
    rows are near duplicates."""
    rng = random.Random(seed)
    pairs = {topic: list(itertools.product(things, verbs)) for topic, (things, verbs, _) in TOPICS.items()}
    for topic_pairs in pairs.values():
        rng.shuffle(topic_pairs)
    rows = []
    for index in range(count):
        topic = ("cooking", "programming")[index % 2]
        thing, verb = pairs[topic][index // 2]
        ask = "What is the best way to" if topic == "programming" else "How long should I"
        prompt = f"{ask} {verb} {thing} {rng.choice(WHEN[topic])}?"
        answer = f"To {verb} {thing}: " + " ".join(rng.sample(TOPICS[topic][2], 4))
        category = ("programming" if topic == "cooking" else "cooking") if index in planted else topic
        rows.append(make_row(f"r{index}", prompt, answer, line=index + 1, category=category))
    return rows


def _vectors(rows: list[dict[str, Any]]) -> np.ndarray:
    texts = [row["messages"][0]["content"] + "\n" + row["messages"][1]["content"] for row in rows]
    return embed_texts(texts, dim=32, seed=0)


def _clean(rows: list[dict[str, Any]], **settings: Any) -> Any:
    # MinHash dedup is raised out of the way: rows of one topic share long templates on purpose.
    return clean_rows(rows, dataclasses.replace(SETTINGS, near_dup_threshold=0.99, **settings))


# ---------------------------------------------------------------------------------------------- labels


def test_planted_mislabeled_rows_are_flagged_with_the_suggested_category() -> None:
    rows = topic_rows(80)
    check = find_label_issues(_vectors(rows), [row["category"] for row in rows])
    assert set(check.issues) == set(PLANTED), check.issues
    for index in PLANTED:
        issue = check.issues[index]
        assert issue.given == rows[index]["category"] and issue.suggested != issue.given
        assert issue.score < 0.5
    assert check.checked == 80 and len(check.scores) == 80
    assert check.health is not None and 0.9 <= check.health <= 1.0
    assert "4 of 80 rows' categories look wrong (2 categories" in check.note


def test_label_issues_are_reported_and_kept_by_default() -> None:
    rows = topic_rows(80)
    result = _clean(rows)
    assert result.rejected == []
    assert result.counts["cleanlab_label_issues"] == len(PLANTED)
    note = next(note for note in result.notes if note.startswith("cleanlab label check"))
    assert "kept, as clean.cleanlab_drop_label_issues is false" in note
    assert all(f"'r{index}'" in note for index in PLANTED)
    flagged = {s["id"]: (s["given_category"], s["suggested_category"]) for s in result.quality_scores}
    # row 5 is about programming (odd rows are) but labeled cooking
    assert flagged["r5"] == ("cooking", "programming") and flagged["r6"] == (None, None)
    assert all(score["label_score"] is not None for score in result.quality_scores)
    # what clean_examples shows in the Dagster UI
    table = label_issue_table(result.quality_scores).splitlines()
    assert table[0] == "| id | given category | suggested category | label quality |"
    assert len(table) == 2 + len(PLANTED) and any(
        line.startswith("| r5 | cooking | programming | ") for line in table
    )
    assert label_issue_table(result.quality_scores, shown=1).endswith("| … and 3 more | | | |")
    assert label_issue_table([]) == "none"


def test_label_issues_are_dropped_when_set() -> None:
    rows = topic_rows(80)
    result = _clean(rows, cleanlab_drop_label_issues=True)
    assert {row["id"]: row["reason"] for row in result.rejected} == {f"r{i}": "label_issue" for i in PLANTED}
    detail = next(row["detail"] for row in result.rejected if row["id"] == "r5")
    assert "category 'cooking' looks wrong" in detail and "suggest 'programming'" in detail
    assert len(result.kept) + len(result.rejected) == len(rows)


def test_label_check_without_planted_errors_flags_nothing() -> None:
    rows = topic_rows(80, planted=())
    assert find_label_issues(_vectors(rows), [row["category"] for row in rows]).issues == {}


@pytest.mark.parametrize(
    ("categories", "message"),
    [
        ([None] * 40, "skipped: no row has a category"),
        (["cooking"] * 40, "skipped: 40 rows carry a category, but only one category has at least 5 rows"),
        (["a", "b"] * 2 + [None] * 36, "skipped: 4 rows carry a category, but no category has at least 5"),
    ],
)
def test_label_check_is_skipped_with_a_reason(categories: list[str | None], message: str) -> None:
    check = find_label_issues(_vectors(topic_rows(40)), categories)
    assert check.checked == 0 and check.issues == {} and message in check.note, check.note


def test_label_check_leaves_out_small_categories_and_rows_without_one() -> None:
    rows = topic_rows(80)
    categories: list[str | None] = [row["category"] for row in rows]
    categories[0] = categories[2] = "rare"
    categories[4] = None
    check = find_label_issues(_vectors(rows), categories)
    assert check.checked == 77 and not {0, 2, 4} & set(check.scores)
    assert (
        "2 rows of 1 categories with fewer than 5 rows (clean.cleanlab_label_folds) not checked: 'rare'"
        in (check.note)
    )


def test_label_check_is_skipped_in_the_pipeline_when_rows_have_no_category() -> None:
    rows = topic_rows(40)
    for row in rows:
        row["category"] = None
    result = _clean(rows)
    assert "cleanlab_label_issues" not in result.counts
    assert "cleanlab label check skipped: no row has a category" in result.notes


def test_label_folds_setting_is_checked() -> None:
    with pytest.raises(ValueError, match=r"clean\.cleanlab_label_folds must be >= 2"):
        dataclasses.replace(SETTINGS, cleanlab_label_folds=1)


# ----------------------------------------------------------------------------------------------- drift


def _drifting(count: int) -> list[dict[str, Any]]:
    """Cooking rows first, then programming rows: the topic changes over time."""
    rows = topic_rows(count, planted=())
    ordered = sorted(rows, key=lambda row: (row["category"], row["id"]))
    for day, row in enumerate(ordered):
        row["created_at"] = CLEAN_START + timedelta(days=day)
    return rows


def test_a_distribution_that_changes_over_time_is_detected() -> None:
    rows = _drifting(80)
    vectors = _vectors(rows)
    graph = cosine_knn_graph(vectors, k=10)
    drift = find_drift(graph, [row["created_at"] for row in rows], vectors=vectors, build_graph=None)  # type: ignore[arg-type]
    assert drift.detected and drift.p_value is not None and drift.p_value < 0.05
    assert drift.rows == 80 and len(drift.scores) == 80
    assert "drift detected" in drift.note and "nothing is rejected" in drift.note


def test_shuffled_timestamps_show_no_drift() -> None:
    rows = _drifting(80)
    times = [row["created_at"] for row in rows]
    random.Random(1).shuffle(times)
    vectors = _vectors(rows)
    drift = find_drift(cosine_knn_graph(vectors, k=10), times, vectors=vectors, build_graph=None)  # type: ignore[arg-type]
    assert not drift.detected and drift.p_value is not None and drift.p_value >= 0.05
    assert "no drift detected" in drift.note


def test_drift_is_reported_in_the_pipeline_and_never_rejects() -> None:
    rows = _drifting(80)
    result = _clean(rows)
    assert result.rejected == [] and result.counts["cleanlab_non_iid_issues"] == 1
    assert any(note.startswith("cleanlab drift check (non-IID, 80 rows") for note in result.notes)
    assert all(score["non_iid_score"] is not None for score in result.quality_scores)


def test_drift_check_builds_its_own_graph_when_rows_lack_a_timestamp() -> None:
    rows = _drifting(60)
    times = [row["created_at"] for row in rows]
    times[3] = times[10] = None
    vectors = _vectors(rows)
    built = []

    def build(subset: np.ndarray) -> Any:
        built.append(len(subset))
        return cosine_knn_graph(subset, k=10)

    drift = find_drift(cosine_knn_graph(vectors, k=10), times, vectors=vectors, build_graph=build)
    assert built == [58] and drift.rows == 58 and 3 not in drift.scores
    assert "2 rows without created_at left out" in drift.note


@pytest.mark.parametrize(
    ("times", "message"),
    [
        ([None] * 20, "0 rows have a created_at"),
        ([CLEAN_START] * 20, "all 20 rows share one created_at"),
    ],
)
def test_drift_check_is_skipped_with_a_reason(times: list[Any], message: str) -> None:
    vectors = _vectors(topic_rows(20))
    drift = find_drift(cosine_knn_graph(vectors, k=5), times, vectors=vectors, build_graph=None)  # type: ignore[arg-type]
    assert drift.rows == 0 and drift.p_value is None and message in drift.note


def test_time_order_and_reordered_graph() -> None:
    day = timedelta(days=1)
    times = [CLEAN_START + 2 * day, None, CLEAN_START, CLEAN_START + 2 * day, CLEAN_START + day]
    assert time_order(times) == [2, 4, 0, 3]  # ties keep file order; rows without a time are left out
    vectors = _vectors(topic_rows(30))
    graph = cosine_knn_graph(vectors, k=4)
    order = list(np.random.default_rng(0).permutation(30))
    renumbered = reorder_graph(graph, order)
    direct = cosine_knn_graph(vectors[order], k=4)
    assert renumbered.shape == (30, 30) and renumbered.nnz == 120
    assert np.allclose(renumbered.toarray(), direct.toarray())
    with pytest.raises(ValueError, match="permutation of 30 rows"):
        reorder_graph(graph, order[:-1])


# ------------------------------------------------------------------------------- what did not change


def test_categories_and_timestamps_leave_outliers_and_near_duplicates_alone() -> None:
    rows = _drifting(60)
    rows.append(make_row("odd", "qzx vbn", "0x7f 0x3e ~~ ^^ zzzz", line=61, category="cooking"))
    rows.append({**rows[7], "id": "copy", "source_line": 62})
    parts = [(row["messages"][0]["content"], row["messages"][1]["content"]) for row in rows]
    prompts = embed_texts([p for p, _ in parts], dim=32, seed=0)
    answers = embed_texts([a for _, a in parts], dim=32, seed=0)
    options = {"outlier_score_threshold": 0.02, "similarity": 0.9}
    plain = find_quality_issues(parts, prompts, answers, **options)
    checked = find_quality_issues(
        parts,
        prompts,
        answers,
        categories=[row["category"] for row in rows],
        created_at=[row["created_at"] for row in rows],
        **options,
    )
    assert checked.outliers == plain.outliers
    assert min(range(62), key=plain.outlier_scores.__getitem__) == 60
    assert checked.near_duplicates == plain.near_duplicates and plain.near_duplicates[61].kept_index == 7
    assert checked.outlier_scores == plain.outlier_scores
    assert "no category column" in plain.labels.note and "no created_at column" in plain.drift.note
    assert checked.labels.checked == checked.drift.rows == 62


def test_dropped_label_issues_are_never_the_kept_row_of_a_near_duplicate() -> None:
    rows = topic_rows(80)
    prompt, answer = (message["content"] for message in rows[5]["messages"])
    rows.append(make_row("copy-of-r5", f"Please tell me: {prompt}", answer, line=81, category="cooking"))
    kept = _clean(rows)
    assert {row["id"]: row["duplicate_of"] for row in kept.rejected} == {"copy-of-r5": "r5"}
    dropped = _clean(rows, cleanlab_drop_label_issues=True)
    reasons = {row["id"]: row["reason"] for row in dropped.rejected}
    assert reasons["r5"] == "label_issue" and reasons.get("copy-of-r5") == "label_issue"


def test_drift_check_reports_a_test_datalab_cannot_run() -> None:
    # Ten rows, nine neighbours each: every order gives the same statistic, so the permutation test's
    # density estimate is singular and Datalab gives up on the issue type; the pass goes on with a note.
    vectors = _vectors(topic_rows(10))
    times = [CLEAN_START + timedelta(days=day) for day in range(10)]
    drift = find_drift(cosine_knn_graph(vectors, k=9), times, vectors=vectors, build_graph=None)  # type: ignore[arg-type]
    assert drift.rows == 0 and drift.p_value is None
    assert "Datalab could not run its non-IID test on these 10 rows (Error in non_iid" in drift.note
