"""Deterministic re-runs (assets/train/determinism.py): training runs on a fixed thread count with
deterministic algorithms, whatever the process had set, restores both afterwards, and records them; the
same inputs give the same adapter bytes, so an unchanged re-run of the whole graph reuses its registry
version and passes the gate."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from assets.shared.training_record import read_training_record
from assets.train.determinism import deterministic_training
from assets.train.training import train_adapter
from resources.model_loading import load_causal_lm, load_tokenizer
from tests.test_train import _rows, _settings


@pytest.fixture
def ambient_threads() -> Any:
    """Restores the process's thread count and deterministic mode after a test changed them."""
    import torch

    threads = torch.get_num_threads()
    mode = torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(mode)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_training_pins_its_thread_count_and_gives_the_same_bytes_whatever_the_process_had(
    base_dir: Path, tmp_path: Path, ambient_threads: None
) -> None:
    import torch

    settings = _settings(epochs=2, num_threads=2, log_every_steps=1)
    digests, seen = [], []
    for ambient in (1, 3):
        torch.set_num_threads(ambient)
        torch.use_deterministic_algorithms(False)
        out = tmp_path / f"ambient-{ambient}"
        # Progress lines ("step ...") come from inside the training loop: what torch runs with there.
        train_adapter(
            load_causal_lm(base_dir, quantization="nf4", dtype="float32", device="cpu"),
            load_tokenizer(base_dir),
            _rows(16),
            _rows(4, 100),
            settings,
            out,
            base_model_source="embedded",
            log=lambda line: (
                seen.append((torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()))
                if line.startswith("step ")
                else None
            ),
        )
        assert torch.get_num_threads() == ambient  # put back as it was
        assert not torch.are_deterministic_algorithms_enabled()
        record = read_training_record(out)
        assert record.settings["num_threads"] == 2
        assert record.reproducibility == {
            "num_threads": 2,
            "deterministic_algorithms": True,
            "deterministic_warn_only": True,
        }
        digests.append((_md5(out / "adapter_model.safetensors"), _md5(out / "training_config.json")))
    assert seen and set(seen) == {(2, True)}
    assert digests[0] == digests[1]


def test_pinning_is_undone_when_training_fails(ambient_threads: None) -> None:
    import torch

    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(False)
    with pytest.raises(RuntimeError, match="boom"), deterministic_training(1) as used:
        assert used["num_threads"] == torch.get_num_threads() == 1
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2
    assert not torch.are_deterministic_algorithms_enabled()


def test_zero_threads_keeps_torchs_choice_and_records_it(ambient_threads: None) -> None:
    import torch

    torch.set_num_threads(2)
    with deterministic_training(0) as used:
        assert used["num_threads"] == 2


@pytest.mark.parametrize("value", [-1, 1.5, True])
def test_a_bad_thread_count_names_the_setting(value: Any) -> None:
    with pytest.raises(ValueError, match="num_threads"):
        _settings(num_threads=value)


@pytest.mark.slow
def test_an_unchanged_rerun_of_the_graph_reuses_its_version_and_succeeds(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The issue's case: adapter bytes that differed between runs made the re-run a new candidate that
    tied the champion, and the run ended failed."""
    from mlflow import MlflowClient

    from pipelines.workspace import copy_project, run_in
    from resources.artifacts import dvc_md5
    from tests.test_end_to_end import OVERRIDES

    root = copy_project(tmp_path_factory.mktemp("project"), OVERRIDES)
    adapter = root / "models" / "adapter" / "adapter_model.safetensors"
    digests, exports, outputs = [], [], []
    for _ in range(2):
        result = run_in(root, [sys.executable, "-m", "pipelines.materialize", "--all"], timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
        digests.append(_md5(adapter))
        exports.append(dvc_md5(root / "models" / "merged_model"))
        outputs.append(result.stdout + result.stderr)
    assert digests[0] == digests[1]
    assert exports[0] == exports[1]
    record = json.loads((root / "models" / "registered_adapter.json").read_text())
    assert record["version"] == "1" and record["reused_existing_version"] is True
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert [str(v.version) for v in client.search_model_versions("name='finetuned-adapter'")] == ["1"]
    assert "unchanged: version 1 is already the champion" in outputs[1]
    # The export already holds version 1: it is not merged again.
    assert "merged_model: unchanged: the export already holds champion version 1" in outputs[1]
    assert "merged_model: unchanged" not in outputs[0]
