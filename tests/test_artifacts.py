"""The artifact store: DVC-compatible md5s and writes that never leave a half-written output."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from assets.shared.schema import example_features, to_dataset
from assets.stages import ARTIFACTS
from resources.artifacts import ArtifactStore, MissingArtifactError, atomic_directory, dvc_md5

UTC = dt.UTC


def _rows(n: int) -> list[dict]:
    return [
        {
            "id": f"r{i}",
            "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
            "created_at": dt.datetime(2025, 1, 1 + i, tzinfo=UTC),
        }
        for i in range(n)
    ]


def test_dataset_round_trip_is_byte_stable(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, ARTIFACTS)
    dataset = to_dataset(_rows(3), example_features())
    store.write_dataset("clean_examples", dataset)
    first = store.md5("clean_examples")
    loaded = store.read_dataset("clean_examples")
    assert loaded.features == example_features()
    assert loaded.to_list() == dataset.to_list()
    store.write_dataset("clean_examples", loaded)
    assert store.md5("clean_examples") == first


def test_missing_artifact_names_the_asset(tmp_path: Path) -> None:
    with pytest.raises(MissingArtifactError, match="materialize asset 'adapter'"):
        ArtifactStore(tmp_path, ARTIFACTS).load("adapter")


def test_failed_directory_write_keeps_the_previous_version(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, ARTIFACTS)
    with atomic_directory(store.path("adapter")) as staging:
        (staging / "weights.bin").write_bytes(b"good")
    with pytest.raises(RuntimeError), atomic_directory(store.path("adapter")) as staging:
        (staging / "weights.bin").write_bytes(b"half")
        raise RuntimeError("training crashed")
    assert (store.path("adapter") / "weights.bin").read_bytes() == b"good"
    assert [p.name for p in store.path("adapter").parent.iterdir()] == ["adapter"]


def test_failed_write_of_a_stage_keeps_every_previous_version(tmp_path: Path, monkeypatch) -> None:
    import pyarrow.parquet as pq

    store = ArtifactStore(tmp_path, ARTIFACTS)
    store.write_datasets(
        {key: to_dataset(_rows(2), example_features()) for key in ("train_split", "test_split")}
    )
    before = {key: store.md5(key) for key in ("train_split", "test_split")}
    real_write = pq.write_table
    calls = []

    def write_then_fail(table, where, **kwargs):
        calls.append(where)
        real_write(table, where, **kwargs)  # the first file is complete, then the second write fails
        if len(calls) == 2:
            raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", write_then_fail)
    new = to_dataset(_rows(3), example_features())
    with pytest.raises(OSError, match="disk full"):
        store.write_datasets({"train_split": new, "test_split": new})
    assert {key: store.md5(key) for key in ("train_split", "test_split")} == before
    assert sorted(p.name for p in store.path("train_split").parent.iterdir()) == [
        "test.parquet",
        "train.parquet",
    ]


def test_md5_matches_what_dvc_records(tmp_path: Path) -> None:
    (tmp_path / "models" / "adapter" / "sub").mkdir(parents=True)
    (tmp_path / "models" / "adapter" / "a.json").write_text('{"x": 1}\n')
    (tmp_path / "models" / "adapter" / "sub" / "b.bin").write_bytes(bytes(range(256)))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f.parquet").write_bytes(b"parquet-ish bytes")
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=tmp_path, check=True, timeout=120)
    subprocess.run(
        [*dvc, "add", "-q", "models/adapter", "data/f.parquet"], cwd=tmp_path, check=True, timeout=120
    )
    import yaml

    recorded = {
        name: yaml.safe_load((tmp_path / f"{name}.dvc").read_text())["outs"][0]["md5"]
        for name in ("models/adapter", "data/f.parquet")
    }
    assert dvc_md5(tmp_path / "models" / "adapter") == recorded["models/adapter"]
    assert dvc_md5(tmp_path / "data" / "f.parquet") == recorded["data/f.parquet"]


def test_streamed_dataset_write_reads_back_and_a_failure_keeps_the_previous_version(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, ARTIFACTS)
    features = example_features()
    rows = _rows(5)
    chunks = [to_dataset(rows[:2], features).data.table, to_dataset(rows[2:], features).data.table]
    store.write_dataset_stream("clean_examples", features.arrow_schema, iter(chunks))
    loaded = store.read_dataset("clean_examples")
    assert loaded.features == features and loaded.to_list() == to_dataset(rows, features).to_list()
    before = store.md5("clean_examples")

    def fails_midway():
        yield chunks[0]
        raise ValueError("the input ran out of valid rows")

    with pytest.raises(ValueError, match="ran out"):
        store.write_dataset_stream("clean_examples", features.arrow_schema, fails_midway())
    assert store.md5("clean_examples") == before
    assert [p.name for p in store.path("clean_examples").parent.iterdir()] == ["clean_examples.parquet"]
