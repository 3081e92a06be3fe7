"""Training progress for people watching a run: step, loss, learning rate, tokens/s and ETA, sent to a
plain ``log(str)`` callable (the asset passes Dagster's ``context.log.info``), so this stays framework-free.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def _duration(seconds: float) -> str:
    seconds = max(round(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def progress_callback(
    log: Callable[[str], None],
    *,
    every_steps: int,
    every_seconds: float,
    clock: Callable[[], float] = time.monotonic,
) -> Any:
    """A transformers ``TrainerCallback`` that reports every ``every_steps`` optimizer steps or every
    ``every_seconds`` seconds, whichever comes first, and always the first and last step; plus each
    validation loss.

    Tokens/s counts non-padding input tokens (the Trainer's ``num_input_tokens_seen`` with
    ``include_num_input_tokens_seen="non_padding"``) over wall time since the previous report; the ETA
    extrapolates the seconds per step of this process (a resumed run does not count the steps it skipped).
    """
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def __init__(self) -> None:
            self.start_time = 0.0
            self.start_step = 0
            self.last_time = 0.0
            self.last_step = 0
            self.last_tokens = 0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.start_time = self.last_time = clock()
            self.start_step = self.last_step = state.global_step
            self.last_tokens = state.num_input_tokens_seen
            resumed = f", resuming after step {state.global_step}" if state.global_step else ""
            log(f"training: {state.max_steps} optimizer steps{resumed}")

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any
        ) -> None:
            if not logs or "loss" not in logs:
                return
            now, step = clock(), state.global_step
            due = step - self.last_step >= every_steps or now - self.last_time >= every_seconds
            # The first step is always shown: it says the run is moving and how fast.
            if not (due or step == self.start_step + 1 or step >= state.max_steps):
                return
            tokens = state.num_input_tokens_seen
            elapsed = now - self.last_time
            rate = (tokens - self.last_tokens) / elapsed if elapsed > 0 else float("nan")
            done = step - self.start_step
            eta = (now - self.start_time) / done * (state.max_steps - step) if done else float("nan")
            log(
                f"step {step}/{state.max_steps}: loss {logs['loss']:.4f}, "
                f"learning rate {logs.get('learning_rate', float('nan')):.3g}, {rate:,.0f} tokens/s, "
                f"ETA {_duration(eta) if eta == eta else 'unknown'}"
            )
            self.last_time, self.last_step, self.last_tokens = now, step, tokens

        def on_evaluate(
            self, args: Any, state: Any, control: Any, metrics: dict | None = None, **kwargs: Any
        ) -> None:
            if metrics and "eval_loss" in metrics:
                log(f"step {state.global_step}/{state.max_steps}: validation loss {metrics['eval_loss']:.4f}")

    return Progress()
