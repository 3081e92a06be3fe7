"""Never lose a run (assets/train/checkpoints.py): a training process killed with SIGKILL resumes from
its last complete checkpoint to the same result as a run that was never interrupted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from assets.train.checkpoints import (
    COMPLETE_MARKER,
    checkpoints,
    last_complete_checkpoint,
    mark_complete,
    run_key,
    work_dir_for,
)
from assets.train.settings import TrainSettings
from assets.train.training import train_adapter
from resources.model_loading import load_causal_lm, load_tokenizer, prepare_base_model

PROJECT_ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = {
    "method": "lora",
    "quantization": None,
    "batch_size": 4,
    "max_seq_length": 48,
    "learning_rate": 0.02,
    "max_steps": 8,
    "save_steps": 2,
    "eval_steps": 4,
    "log_every_steps": 1,
}
# The child trains like the parent and, once step 5 is logged (checkpoint-4 is complete by then),
# says so and waits to be killed.
CHILD = """
import sys, time, yaml
from pathlib import Path
sys.path.insert(0, {root!r})
from assets.train.settings import TrainSettings
from assets.train.training import train_adapter
from resources.model_loading import load_causal_lm, load_tokenizer
from tests.test_train_resume import OVERRIDES, rows, settings

def log(line):
    if line.startswith("step 5/"):
        Path({ready!r}).write_text(line)
        time.sleep(600)

base = Path({base!r})
model = load_causal_lm(base, quantization=None, dtype="float32", device="cpu")
train_adapter(model, load_tokenizer(base), rows(8), rows(4, 50), settings(), Path({out!r}),
              base_model_source="embedded", work_dir=Path({work!r}), log=log)
"""


def settings() -> TrainSettings:
    values = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["train"]
    values.pop("base_model")
    values.update(OVERRIDES)
    return TrainSettings.from_mapping(values)


def rows(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."},
            ]
        }
        for i in range(start, start + count)
    ]


def _train(base: Path, out: Path, work: Path | None, log: list[str] | None = None) -> Any:
    model = load_causal_lm(base, quantization=None, dtype="float32", device="cpu")
    return train_adapter(
        model,
        load_tokenizer(base),
        rows(8),
        rows(4, 50),
        settings(),
        out,
        base_model_source="embedded",
        work_dir=work,
        log=None if log is None else log.append,
    )


def test_checkpoints_without_a_marker_are_skipped_and_removed(tmp_path: Path) -> None:
    for step in (2, 4, 6):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    for step in (2, 4):
        mark_complete(tmp_path / f"checkpoint-{step}")
    (tmp_path / "not-a-checkpoint").mkdir()
    assert [(s, done) for s, _p, done in checkpoints(tmp_path)] == [(2, True), (4, True), (6, False)]
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-4"
    assert not (tmp_path / "checkpoint-6").exists()
    assert last_complete_checkpoint(tmp_path / "missing") is None
    assert work_dir_for(tmp_path, "abc") == tmp_path / ".cache" / "train" / "abc"


def test_the_run_key_follows_inputs_and_decisive_settings_only() -> None:
    key = run_key({"train_split": "aa"}, {"lora_r": 8, "log_every_steps": 10}, "embedded")
    assert key == run_key({"train_split": "aa"}, {"lora_r": 8, "log_every_steps": 1}, "embedded")
    assert key != run_key({"train_split": "ab"}, {"lora_r": 8, "log_every_steps": 10}, "embedded")
    assert key != run_key({"train_split": "aa"}, {"lora_r": 4, "log_every_steps": 10}, "embedded")
    assert key != run_key({"train_split": "aa"}, {"lora_r": 8, "log_every_steps": 10}, "acme/base")


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_same_final_loss(tmp_path: Path) -> None:
    base = tmp_path / "base"
    prepare_base_model("embedded", base, seed=0)
    reference = _train(base, tmp_path / "reference", None)

    work, out, ready = tmp_path / "work", tmp_path / "adapter", tmp_path / "ready"
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(CHILD).format(
            root=str(PROJECT_ROOT), ready=str(ready), base=str(base), out=str(out), work=str(work)
        )
    )
    child = subprocess.Popen([sys.executable, str(script)], cwd=PROJECT_ROOT, env={**os.environ})
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():
            assert child.poll() is None, f"the training process ended early with {child.returncode}"
            assert time.monotonic() < deadline, "the training process never reached step 5"
            time.sleep(0.2)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    assert not out.exists(), "a killed run must leave no output"
    assert [(s, done) for s, _p, done in checkpoints(work)] == [(2, True), (4, True)]
    # What a kill during the next save leaves: a checkpoint without its marker, which must not load.
    shutil.copytree(work / "checkpoint-4", work / "checkpoint-6")
    (work / "checkpoint-6" / COMPLETE_MARKER).unlink()
    (work / "checkpoint-6" / "trainer_state.json").write_text("{ truncated")

    log: list[str] = []
    resumed = _train(base, out, work, log)
    assert resumed.resumed_from_step == 4 and resumed.steps == 8
    # The first progress line (the batching and checkpointing choices are logged before it).
    started = next(line for line in log if line.startswith("training:"))
    assert started == "training: 8 optimizer steps, resuming after step 4"
    assert [h["step"] for h in resumed.loss_history] == list(range(1, 9))
    assert resumed.loss_history[-1]["loss"] == pytest.approx(reference.loss_history[-1]["loss"], rel=1e-5)
    assert resumed.eval_loss == pytest.approx(reference.eval_loss, rel=1e-5)
    assert not work.exists(), "the work directory is removed once the adapter is written"
    assert (out / "adapter_model.safetensors").is_file()
