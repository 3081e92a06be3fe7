"""One notion of a near duplicate (assets/shared/neardup.py) for clean and split: the settings the split
reads from clean's params entries, the LSH candidates, template rows in the split's leakage check, and the
near-duplicate clusters a person sees in clean_examples' metadata."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assets.clean.asset import cluster_table
from assets.clean.dedup import largest_clusters
from assets.clean.pipeline import CleanSettings, clean_rows
from assets.params import section, settings_from
from assets.publishing import stage_config
from assets.shared.neardup import NearDuplicateSettings, candidate_pairs, near_duplicate_pairs
from assets.split.leakage import find_leaks
from assets.split.settings import SplitSettings
from tests.conftest import make_row

CLEAN = section("clean")
NEAR = NearDuplicateSettings.from_params(CLEAN)
SETTINGS = CleanSettings(
    **{
        field.name: CLEAN[field.name]
        for field in dataclasses.fields(CleanSettings)
        if field.name in CLEAN and field.name != "cleanlab_enabled"
    },
    cleanlab_enabled=False,
)
QUESTION = "How do I export my invoices from the billing page as one PDF file for my accountant?"
ANSWER = "Open Billing, choose Invoices, select the months you need and press Export as PDF."


def test_the_split_reads_cleans_near_duplicate_settings() -> None:
    # One home: the split's Config fields are clean's params entries, with params.yaml's values.
    fields = stage_config("split").model_fields
    for name in ("near_dup_threshold", "minhash_permutations", "shingle_size"):
        assert fields[name].default == CLEAN[name]
    config = stage_config("split")()
    assert settings_from(SplitSettings, config.model_dump()).near_duplicates == NEAR


@pytest.mark.parametrize(
    ("name", "value"), [("near_dup_threshold", 0), ("near_dup_threshold", 1.5), ("shingle_size", True)]
)
def test_a_bad_near_duplicate_setting_names_the_clean_entry(name: str, value: object) -> None:
    values = {"near_dup_threshold": 0.7, "minhash_permutations": 128, "shingle_size": 5, name: value}
    with pytest.raises(ValueError, match=f"clean.{name} must be"):
        SplitSettings(**section("split"), **values)


def test_candidate_pairs_are_every_pair_sharing_a_band() -> None:
    generator = np.random.default_rng(0)
    # Few distinct values, so many rows share bands; salts split them in two families.
    signatures = generator.integers(0, 3, size=(60, 8), dtype=np.uint32)
    salts = (np.arange(60) % 2).astype(np.uint64)
    found = candidate_pairs(signatures, salts, bands=4, rows=2)
    expected = {
        (i, j)
        for i, j in itertools.combinations(range(60), 2)
        if salts[i] == salts[j]
        and any(
            (signatures[i, b * 2 : b * 2 + 2] == signatures[j, b * 2 : b * 2 + 2]).all() for b in range(4)
        )
    }
    # Buckets here hold at most 30 rows, within the window of neighbours each row is paired with.
    assert {tuple(pair) for pair in found.tolist()} == expected
    assert found.tolist() == sorted(found.tolist())
    agreeing = candidate_pairs(signatures, salts, bands=4, rows=2, min_agreement=0.75)
    assert {tuple(pair) for pair in agreeing.tolist()} == {
        pair for pair in expected if (signatures[pair[0]] == signatures[pair[1]]).mean() >= 0.75
    }


def test_pairs_report_their_jaccard_and_the_rules_that_kept_rows_apart() -> None:
    texts = [f"{QUESTION}\n{ANSWER}", f"{QUESTION.upper()}\n{ANSWER}", f"{QUESTION} Thanks!\n{ANSWER}"]
    pairs = near_duplicate_pairs(texts, NEAR)
    assert list(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True)) == [(0, 1), (0, 2), (1, 2)]
    assert pairs.jaccard[0] == 1.0 and NEAR.threshold <= pairs.jaccard[1] < 1.0
    apart = near_duplicate_pairs(texts, NEAR, groups=["g", "g", None])
    assert len(apart) == 2 and apart.kept_apart["same_group"] == 1


def _split_row(row_id: str, day: int, question: str, answer: str) -> dict[str, Any]:
    return {
        "id": row_id,
        "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
        "created_at": datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=day),
        "augmented_from": None,
        "group_id": None,
    }


def test_template_rows_in_two_splits_are_not_a_leak_but_copies_are() -> None:
    # Case 10: one template, its own answer per row; the split judges them as the dedup does.
    train = [_split_row("violin", 1, "How many strings does a violin have?", "A violin has four strings.")]
    test = [_split_row("hexagon", 3, "How many sides does a hexagon have?", "A hexagon has six sides.")]
    assert find_leaks(train, [], test, NEAR) == []
    copy = _split_row("copy", 4, "How many strings does a violin have ?", "A violin has four strings!")
    [problem] = find_leaks(train, [], [copy], NEAR)
    assert problem.startswith("near duplicates: test row 'copy' and train row 'violin'")
    assert f"clean.near_dup_threshold {NEAR.threshold}" in problem


def test_clean_records_the_cluster_on_every_removed_member_and_shows_the_largest() -> None:
    rows = [
        make_row("other", "Where do I change my password?", "Open Settings and tap Security.", line=1),
        make_row("first", QUESTION, ANSWER, line=2),
        make_row("spaced", QUESTION.replace("?", " ?"), ANSWER.upper(), line=3),
        make_row("typo", QUESTION.replace("invoices", "invoice"), ANSWER, line=4),
        make_row("pair", "Why is my printer offline?", "Reconnect it to the wireless network first.", line=5),
        make_row(
            "pair2", "Why is my printer offline ?", "Reconnect it to the wireless network first", line=6
        ),
    ]
    result = clean_rows(rows, SETTINGS)
    assert [row["id"] for row in result.kept] == ["other", "first", "pair"]
    near = {row["id"]: row["duplicate_of"] for row in result.rejected if row["reason"] == "near_duplicate"}
    # The cluster is named after its kept row, which every removed member holds in duplicate_of.
    assert near == {"spaced": "first", "typo": "first", "pair2": "pair"}
    clusters = largest_clusters(result.kept, result.rejected)
    assert [(c.cluster_id, c.size, c.removed["id"]) for c in clusters] == [
        ("first", 3, "spaced"),
        ("pair", 2, "pair2"),
    ]
    assert clusters[0].kept is not None and clusters[0].kept["id"] == "first"
    assert result.counts["near_duplicate_clusters"] == 2
    table = cluster_table(clusters)
    assert table.splitlines()[2].startswith("| first | near_duplicate | 3 | How do I export my invoices")
    assert "| spaced: How do I export" in table
    assert cluster_table([]) == "none"


def test_largest_clusters_rank_by_size_and_fall_back_to_a_rejected_kept_row() -> None:
    def rejected(row_id: str, of: str, reason: str = "near_duplicate") -> dict[str, Any]:
        row = make_row(row_id, f"q {row_id}", "a", line=1)
        return {**row, "reason": reason, "duplicate_of": of}

    kept = [make_row("a", "question a", "answer a")]
    removed = [
        rejected("b", "z"),
        rejected("a1", "a"),
        rejected("z", "y", "cleanlab_near_duplicate"),
        rejected("b2", "z"),
        rejected("x", "a", "duplicate_exact"),
    ]
    clusters = largest_clusters(kept, removed, limit=2)
    assert [(c.cluster_id, c.reason, c.size) for c in clusters] == [
        ("z", "near_duplicate", 3),
        ("a", "near_duplicate", 2),
    ]
    # "z" was kept by the MinHash step and then removed by cleanlab: its rejected row stands in.
    assert clusters[0].kept is not None and clusters[0].kept["id"] == "z"


def test_the_leakage_check_uses_the_near_duplicate_rule_the_split_ran_with(tmp_path: Path) -> None:
    import dagster as dg

    from assets.split.asset import split_leakage
    from pipelines.definitions import ASSETS
    from pipelines.io_manager import ArtifactIOManager
    from resources.dvc import DvcResource
    from resources.models import ModelLoader
    from resources.registry import ModelRegistry
    from resources.storage import StorageResource
    from tests.test_failures import example_rows, write_examples

    write_examples(tmp_path, "augmented_examples", example_rows(40))
    storage = StorageResource(root=str(tmp_path))
    result = dg.materialize(
        [*ASSETS, split_leakage],
        selection=["train_split", "validation_split", "test_split"],
        resources={
            "storage": storage,
            "io_manager": ArtifactIOManager(storage=storage),
            "dvc": DvcResource(root=str(tmp_path), enabled=False),
            # Not used by the split, but the graph's other nodes declare them.
            "models": ModelLoader(embedded_root=str(tmp_path / "models" / "embedded")),
            "registry": ModelRegistry(
                tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_location=str(tmp_path / "mlruns")
            ),
        },
        # A launchpad override of a clean entry the split reads: the check must judge by it too.
        run_config={"ops": {"split": {"config": {"near_dup_threshold": 0.9, "min_groups_per_split": 2}}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed
    rule = evaluation.metadata["near_duplicate_rule"].value
    assert rule == "character 5-gram Jaccard >= clean.near_dup_threshold 0.9, same numbers (as the split ran)"
