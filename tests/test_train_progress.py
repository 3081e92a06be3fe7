"""Progress while training runs (assets/train/progress.py) and the loss curves (assets/train/plot.py)."""

from __future__ import annotations

from typing import Any

from assets.train.plot import loss_curve_png, markdown_image
from assets.train.progress import progress_callback


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _run(every_steps: int, every_seconds: float, seconds_per_step: float, steps: int = 10) -> list[str]:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    lines: list[str] = []
    clock = Clock()
    callback = progress_callback(
        lines.append, every_steps=every_steps, every_seconds=every_seconds, clock=clock
    )
    args: Any = TrainingArguments(output_dir="unused", report_to="none")
    state = TrainerState(max_steps=steps)
    control = TrainerControl()
    callback.on_train_begin(args, state, control)
    for step in range(1, steps + 1):
        clock.now += seconds_per_step
        state.global_step = step
        state.num_input_tokens_seen += 200  # 200 real tokens per step
        callback.on_log(args, state, control, logs={"loss": 3.0 - step / 10, "learning_rate": 1e-3})
        if step == 4:
            callback.on_evaluate(args, state, control, metrics={"eval_loss": 2.5})
    return lines


def test_progress_every_n_steps_with_rate_and_eta() -> None:
    lines = _run(every_steps=4, every_seconds=1e9, seconds_per_step=2.0)
    assert lines == [
        "training: 10 optimizer steps",
        "step 1/10: loss 2.9000, learning rate 0.001, 100 tokens/s, ETA 0m18s",
        "step 4/10: validation loss 2.5000",
        "step 5/10: loss 2.5000, learning rate 0.001, 100 tokens/s, ETA 0m10s",
        "step 9/10: loss 2.1000, learning rate 0.001, 100 tokens/s, ETA 0m02s",
        "step 10/10: loss 2.0000, learning rate 0.001, 100 tokens/s, ETA 0m00s",
    ]


def test_progress_every_t_seconds_when_steps_are_slow() -> None:
    lines = _run(every_steps=1000, every_seconds=60.0, seconds_per_step=25.0, steps=6)
    steps = [line.split(":")[0] for line in lines if "loss" in line and "validation" not in line]
    # Step 1 always; then whenever 60 s have passed since the last line (steps 4 and 6, 75 s and 50 s...).
    assert steps == ["step 1/6", "step 4/6", "step 6/6"]
    assert "ETA 0m50s" in lines[2]  # 2 steps left at 25 s each


def test_a_resumed_run_says_where_it_resumes_and_times_only_its_own_steps() -> None:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    lines: list[str] = []
    clock = Clock()
    callback = progress_callback(lines.append, every_steps=1, every_seconds=1e9, clock=clock)
    args: Any = TrainingArguments(output_dir="unused", report_to="none")
    state = TrainerState(max_steps=8, global_step=4)
    callback.on_train_begin(args, state, TrainerControl())
    clock.now += 3.0
    state.global_step = 5
    callback.on_log(args, state, TrainerControl(), logs={"loss": 1.0, "learning_rate": 0.0})
    assert lines == ["training: 8 optimizer steps, resuming after step 4", lines[1]]
    assert lines[1].endswith("ETA 0m09s")


def test_loss_curves_show_training_and_validation() -> None:
    png = loss_curve_png(
        [{"step": s, "loss": 3.0 - s / 10} for s in range(1, 9)],
        validation=[{"step": 4, "eval_loss": 2.7}, {"step": 8, "eval_loss": 2.5}],
        title="adapter loss",
    )
    assert png.startswith(b"\x89PNG")
    assert markdown_image(png, "curves").startswith("![curves](data:image/png;base64,iVBOR")
    assert loss_curve_png([], title="empty").startswith(b"\x89PNG")
