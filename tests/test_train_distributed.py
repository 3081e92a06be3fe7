"""More than one process (assets/train/distributed.py, assets/train/worker.py): `train.processes` = 2
trains under torchrun with two CPU ranks (gloo DDP) to the same adapter format as one process, with
progress in the run log, steps counted for the effective batch, and a failing rank reported clearly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from assets.shared.errors import InputError
from assets.train.checkpoints import (
    COMPLETE_MARKER,
    completion_callback,
    last_complete_checkpoint,
    mark_complete,
)
from assets.train.distributed import (
    TrainingProcessError,
    check_launch,
    result_from_json,
    result_to_json,
    train_in_processes,
)
from assets.train.training import TrainResult
from assets.train.truncation import TruncationCounts
from tests.test_failures import example_rows, store_at, write_base, write_examples
from tests.test_failures import tiny_base as tiny_base  # a fixture
from tests.test_train_resume import PROJECT_ROOT, rows, settings

# Few rows and one epoch: 8 rows of 2 per rank in 2 ranks is 2 optimizer steps (4 in one process).
RUN = {
    "batch_size": 2,
    "epochs": 1,
    "max_steps": -1,
    "max_seq_length": 64,
    "eval_steps": 1,
    "save_steps": 1,
    "log_every_steps": 1,
}


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_processes_must_be_a_positive_integer(value: Any) -> None:
    with pytest.raises(ValueError, match=r"processes must be a positive integer.*got"):
        replace(settings(), processes=value)


def test_one_step_consumes_processes_times_batch_rows() -> None:
    # Each rank takes every N-th batch of batch_size rows (accelerate pads so all ranks get as many).
    base = replace(settings(), max_steps=-1, epochs=1, batch_size=2, gradient_accumulation_steps=1)
    assert [replace(base, processes=n).total_steps(8) for n in (1, 2, 3)] == [4, 2, 2]
    assert replace(base, processes=2, gradient_accumulation_steps=2).total_steps(8) == 1
    assert replace(base, processes=4, epochs=2).total_steps(7) == 2
    assert replace(base, processes=3, gradient_accumulation_steps=2).effective_batch_size == 12


def test_a_launch_this_machine_cannot_do_is_refused_before_it_starts() -> None:
    import torch

    check_launch(1, "cuda:1")
    check_launch(2, "cpu")
    with pytest.raises(InputError, match=r"train.processes = 2 .* device is 'cuda:1'.*PIPELINE_DEVICE"):
        check_launch(2, "cuda:1")
    if torch.cuda.device_count() < 64:
        with pytest.raises(InputError, match=r"train.processes = 64 needs 64 GPUs"):
            check_launch(64, "cuda")


def test_rank_0s_result_survives_the_trip_through_json() -> None:
    result = TrainResult(
        loss_history=[{"step": 1, "loss": 2.5, "epoch": 1.0}],
        validation_history=[{"step": 1, "eval_loss": 2.75}],
        eval_loss=2.75,
        train_runtime_s=1.5,
        steps=1,
        trainable_params=10,
        total_params=100,
        train_examples=8,
        validation_examples=2,
        method="qlora",
        mergeable=True,
        gradient_checkpointing=True,
        resumed_from_step=None,
        truncation=TruncationCounts(rows=8, longer_than_limit=1, answers_cut=1),
    )
    assert result_from_json(json.loads(json.dumps(result_to_json(result)))) == result


def test_only_the_main_process_marks_or_prunes_checkpoints(tmp_path: Path) -> None:
    for step in (1, 2):
        (tmp_path / f"checkpoint-{step}").mkdir()
    mark_complete(tmp_path / "checkpoint-1")
    # Another rank sees the same last complete checkpoint and leaves the incomplete one to rank 0.
    assert last_complete_checkpoint(tmp_path, prune=False) == tmp_path / "checkpoint-1"
    assert (tmp_path / "checkpoint-2").exists()
    callback = completion_callback()
    args = SimpleNamespace(output_dir=str(tmp_path))
    callback.on_save(args, SimpleNamespace(global_step=2, is_world_process_zero=False), None)
    assert not (tmp_path / "checkpoint-2" / COMPLETE_MARKER).exists()
    callback.on_save(args, SimpleNamespace(global_step=2, is_world_process_zero=True), None)
    assert (tmp_path / "checkpoint-2" / COMPLETE_MARKER).exists()


def _materialize(root: Path, tiny_base: Path, config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    from tests.test_train_asset import _materialize_with_instance

    write_base(root, tiny_base)
    write_examples(root, "train_split", example_rows(8))
    write_examples(root, "validation_split", example_rows(2))
    result, instance = _materialize_with_instance(root, config)
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = {key: value.value for key, value in event.materialization.metadata.items()}
    return metadata, [entry.user_message for entry in instance.all_logs(result.run_id)]


def _safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118


@pytest.mark.slow
def test_two_cpu_processes_train_the_same_adapter_format_as_one(tmp_path: Path, tiny_base: Path) -> None:
    """QLoRA (the default method, a 4-bit base) in two gloo DDP ranks, against one process."""
    from peft import PeftModel

    from assets.shared.training_record import read_training_record
    from resources.model_loading import load_causal_lm

    one_meta, _ = _materialize(tmp_path / "one", tiny_base, RUN)
    two_meta, messages = _materialize(tmp_path / "two", tiny_base, {**RUN, "processes": 2})

    assert (one_meta["steps"], two_meta["steps"]) == (4, 2)
    assert (two_meta["processes"], two_meta["effective_batch_size"]) == (2, 4)
    assert two_meta["method"] == "qlora" and two_meta["train_rows"] == 8
    # What a user reads in the run log while the ranks train: rank 0's progress, once.
    assert any(m.startswith("training in 2 processes: ") and "torch.distributed.run" in m for m in messages)
    progress = [m for m in messages if m.startswith("step ")]
    assert sum(m.startswith("step 2/2: loss") for m in progress) == 1, progress
    assert any(m.startswith("step 1/2: validation loss") for m in progress), progress

    one, two = store_at(tmp_path / "one").path("adapter"), store_at(tmp_path / "two").path("adapter")
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert {"adapter_config.json", "adapter_model.safetensors", "training_config.json"} <= {
        p.name for p in two.iterdir()
    }
    assert json.loads((two / "adapter_config.json").read_text()) == json.loads(
        (one / "adapter_config.json").read_text()
    )
    assert _safetensors_shapes(two / "adapter_model.safetensors") == _safetensors_shapes(
        one / "adapter_model.safetensors"
    )
    record = read_training_record(two)
    assert record.settings["processes"] == 2 and record.steps == 2
    assert [h["step"] for h in json.loads((two / "loss_history.json").read_text())] == [1, 2]
    assert [h["step"] for h in json.loads((two / "validation_history.json").read_text())] == [1, 2]
    assert not any((tmp_path / "two" / ".cache" / "train").glob("*/checkpoint-*")), "checkpoints left"
    # The adapter loads on its base like a one-process one.
    base = load_causal_lm(
        store_at(tmp_path / "two").path("base_model"), quantization="nf4", dtype="float32", device="cpu"
    )
    assert (
        PeftModel.from_pretrained(base, str(two)).peft_config["default"].base_model_name_or_path == "embedded"
    )


def _launch(
    root: Path, tiny_base: Path, train_path: Path, log: Callable[[str], None] | None = None, **changes: Any
) -> TrainResult:
    import pyarrow as pa
    import pyarrow.parquet as pq

    validation = root / "validation.parquet"
    pq.write_table(pa.Table.from_pylist(rows(2, 50)), validation)
    chosen = replace(settings(), **{"processes": 2, "max_steps": 1, **changes})
    return train_in_processes(
        chosen,
        base_dir=tiny_base,
        train_path=train_path,
        validation_path=validation,
        out_dir=root / "adapter",
        device="cpu",
        base_model_source="embedded",
        inputs={},
        work_dir=root / "work",
        log=log,
    )


@pytest.mark.slow
def test_a_rank_that_crashes_is_reported_with_its_exit_code_and_stderr(
    tmp_path: Path, tiny_base: Path
) -> None:
    with pytest.raises(TrainingProcessError) as caught:
        _launch(tmp_path, tiny_base, tmp_path / "missing.parquet")
    message = str(caught.value)
    assert "train.processes = 2 failed: torchrun exited with code 1" in message
    assert "missing.parquet" in message and "stderr" in message
    assert not (tmp_path / "adapter").exists()


@pytest.mark.slow
def test_a_problem_the_user_fixes_comes_back_as_the_ranks_own_message(
    tmp_path: Path, tiny_base: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    train = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(rows(4)), train)
    # No answer fits in 4 tokens: the same InputError a one-process run raises.
    with pytest.raises(
        InputError, match=r"No training row has an assistant token within train.max_seq_length \(4\)"
    ):
        _launch(tmp_path, tiny_base, train, max_seq_length=4, truncation="drop")
    assert not (tmp_path / "adapter").exists()


# Long enough to kill mid-run, short enough to finish after resuming; a complete checkpoint every 2 steps.
RESUMABLE = {"max_steps": 20, "save_steps": 2, "eval_steps": 20, "log_every_steps": 1}
# The run worker: trains in two ranks with rank 0's progress on its stdout.
PARENT = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.test_train_distributed import RESUMABLE, _launch
_launch(Path({work!r}), Path({base!r}), Path({train!r}), log=print, **RESUMABLE)
"""


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_a_killed_multi_process_run_stops_its_ranks_and_resumes_to_the_same_losses(
    tmp_path: Path, tiny_base: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    train = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(rows(8)), train)
    (tmp_path / "reference").mkdir()
    reference = _launch(tmp_path / "reference", tiny_base, train, **RESUMABLE)

    run = tmp_path / "run"
    run.mkdir()
    script = tmp_path / "parent.py"
    script.write_text(
        PARENT.format(root=str(PROJECT_ROOT), work=str(run), base=str(tiny_base), train=str(train))
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        for line in parent.stdout:
            if line.startswith("step 5/"):  # checkpoint-4 is complete by now
                break
        else:
            pytest.fail(f"training never reached step 5 (exit code {parent.wait()})")
        [torchrun] = _children(parent.pid)
        ranks = _children(torchrun)
        assert len(ranks) == 2
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=60)
        deadline = time.monotonic() + 120
        while any(_alive(pid) for pid in (torchrun, *ranks)):
            assert time.monotonic() < deadline, "torchrun or a rank outlived the killed run worker"
            time.sleep(0.5)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert not (run / "adapter").exists(), "a killed run must leave no output"

    resumed = _launch(run, tiny_base, train, **RESUMABLE)
    assert resumed.resumed_from_step is not None and 4 <= resumed.resumed_from_step < 20
    assert resumed.steps == reference.steps == 20
    done = resumed.resumed_from_step
    expected = [h for h in reference.loss_history if h["step"] > done]
    assert [h["step"] for h in resumed.loss_history if h["step"] > done] == [h["step"] for h in expected]
    assert [h["loss"] for h in resumed.loss_history if h["step"] > done] == pytest.approx(
        [h["loss"] for h in expected], rel=1e-5
    )
    assert resumed.eval_loss == pytest.approx(reference.eval_loss, rel=1e-5)
