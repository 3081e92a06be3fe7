"""Hyperparameter search over a few ``train`` settings, on the validation loss (Optuna).

Each trial trains an adapter exactly as the ``adapter`` asset does (``train_adapter``, same rows, same
seed), with params.yaml's ``train`` settings and the trial's values in their place, into a temporary
directory, and scores it by its final validation loss: the mean token cross-entropy over
validation_split's assistant tokens, lower is better. Trials are chosen by Optuna's TPE sampler (Bergstra
et al., 2011; Optuna's defaults: the first 10 trials sample at random, then TPE models the good ones),
seeded, so the same search on the same data proposes the same settings. Validation losses measured
during a trial are reported to the trial as its intermediate values.

A trial whose settings fail (a combination TrainSettings refuses, a loss that becomes NaN at a high
learning rate) is recorded as failed with its reason and the search goes on; the search fails only when
no trial completes. A trial that repeats an earlier trial's settings reuses its outcome (training is
seeded, so it would be the same) instead of training again. Nothing here writes params.yaml: adopting
the best settings is the user's step. Framework-free; the Dagster job (assets/tune/job.py) and the CLI
(pipelines/tune.py) call :func:`run_search`.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assets.shared.errors import InputError
from assets.train.settings import TrainSettings
from assets.train.training import train_adapter
from assets.train.truncation import fit_rows
from assets.tune.space import Dimension, check_against

COMPLETE, FAILED = "complete", "failed"


@dataclass(frozen=True)
class Trial:
    """One trial: its number (from 1), the values it tried, its final validation loss (None when it
    failed, with ``reason``), its state, the optimizer steps it ran and its wall time in seconds."""

    number: int
    params: dict[str, Any]
    validation_loss: float | None
    state: str
    steps: int | None
    seconds: float
    reason: str | None = None
    validation_history: list[dict[str, float]] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class SearchResult:
    """Every trial in order, the space searched, and the settings every trial started from."""

    trials: list[Trial]
    space: tuple[Dimension, ...]
    base: TrainSettings = field(repr=False)
    sampler_seed: int

    @property
    def best(self) -> Trial:
        """The completed trial with the lowest validation loss (the earliest of equals)."""
        done = [trial for trial in self.trials if trial.state == COMPLETE]
        return min(done, key=lambda trial: (trial.validation_loss, trial.number))


def format_params(params: Mapping[str, Any]) -> str:
    """``name=value`` pairs for a log line, floats to 4 significant digits."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def check_validation(
    tokenizer: Any, validation_rows: Sequence[Mapping[str, Any]], base: TrainSettings
) -> int:
    """How many validation rows have an assistant token within ``max_seq_length``: the rows the
    objective is measured on. Raises InputError when there is none (nothing to optimize)."""
    if not validation_rows:
        raise InputError(
            "validation_split is empty: the search minimizes the validation loss, so it needs validation "
            "rows. Give the validation split a share (split.validation_fraction or split.validation_start "
            "in params.yaml) and materialize split."
        )
    features, _ = fit_rows(
        tokenizer, validation_rows, max_seq_length=base.max_seq_length, rule=base.truncation
    )
    if not features:
        raise InputError(
            f"None of the {len(validation_rows)} validation_split rows has an assistant token within "
            f"train.max_seq_length ({base.max_seq_length}), so there is no validation loss to minimize: "
            "check that the validation rows have answers, or raise train.max_seq_length."
        )
    return len(features)


def run_search(
    base: TrainSettings,
    space: Sequence[Dimension],
    *,
    trials: int,
    sampler_seed: int,
    load_model: Callable[[], Any],
    tokenizer: Any,
    train_rows: Sequence[Mapping[str, Any]],
    validation_rows: Sequence[Mapping[str, Any]],
    base_model_source: str,
    inputs: Mapping[str, str] | None = None,
    log: Callable[[str], None] | None = None,
) -> SearchResult:
    """Run ``trials`` trials of ``space`` around ``base`` and return them.

    ``load_model()`` returns a fresh base model for each trial (training wraps the model it is given).
    ``train_rows`` / ``validation_rows`` are canonical examples, as the adapter asset passes them.
    ``log`` receives a line when each trial starts and ends, and the trial's training progress.

    Raises:
        InputError: for fewer than one trial, a space the base settings cannot take
            (:func:`assets.tune.space.check_against`), no validation row to measure, or when no trial
            completed (with each trial's reason).
    """
    import optuna

    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise InputError(f"trials must be a positive whole number; got {trials!r}.")
    check_against(base, space)
    scored = check_validation(tokenizer, validation_rows, base)
    say = log or (lambda _line: None)
    say(
        f"hyperparameter search: {trials} trials of {base.method} on {len(train_rows)} training rows, "
        f"validation loss over {scored} validation rows; "
        + "; ".join(f"{d.name} {d.describe()}" for d in space)
    )
    # Our own log lines say what each trial did; Optuna's would repeat them on stderr.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=sampler_seed))
    distributions = {dimension.name: dimension.distribution() for dimension in space}
    done: list[Trial] = []
    outcomes: dict[tuple[tuple[str, Any], ...], tuple[float, int, list[dict[str, float]]] | str] = {}
    for _ in range(trials):
        trial = study.ask(distributions)
        number = trial.number + 1
        params = dict(trial.params)
        say(f"trial {number}/{trials}: {format_params(params)}")
        started = time.perf_counter()
        key = tuple(sorted(params.items()))
        # Training is seeded, so settings tried before give the same loss: reuse it rather than train
        # again (TPE proposes repeats often when the space is small or mostly choices).
        repeated = key in outcomes
        outcome = (
            outcomes[key]
            if repeated
            else _train_trial(
                base,
                params,
                load_model=load_model,
                tokenizer=tokenizer,
                train_rows=train_rows,
                validation_rows=validation_rows,
                base_model_source=base_model_source,
                inputs=inputs,
                log=lambda line, n=number: say(f"trial {n}: {line}"),
            )
        )
        outcomes[key] = outcome
        if repeated:
            say(f"trial {number}/{trials} repeats the settings of an earlier trial: its result is reused")
        seconds = round(time.perf_counter() - started, 2)
        if isinstance(outcome, str):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            done.append(Trial(number, params, None, FAILED, None, seconds, reason=outcome))
            say(f"trial {number}/{trials} failed: {outcome}")
            continue
        loss, steps, history = outcome
        for entry in history:
            trial.report(entry["eval_loss"], int(entry["step"]))
        study.tell(trial, loss)
        done.append(Trial(number, params, loss, COMPLETE, steps, seconds, validation_history=history))
        best = min((t for t in done if t.state == COMPLETE), key=lambda t: (t.validation_loss, t.number))
        say(
            f"trial {number}/{trials}: validation loss {loss:.4f} after {steps} steps in {seconds:.1f} s; "
            f"best so far {best.validation_loss:.4f} (trial {best.number})"
        )
    if not any(trial.state == COMPLETE for trial in done):
        reasons = "; ".join(f"trial {t.number}: {t.reason}" for t in done)
        raise InputError(f"No trial of the hyperparameter search completed ({reasons}).")
    return SearchResult(trials=done, space=tuple(space), base=base, sampler_seed=sampler_seed)


def _train_trial(
    base: TrainSettings,
    params: Mapping[str, Any],
    *,
    load_model: Callable[[], Any],
    tokenizer: Any,
    train_rows: Sequence[Mapping[str, Any]],
    validation_rows: Sequence[Mapping[str, Any]],
    base_model_source: str,
    inputs: Mapping[str, str] | None,
    log: Callable[[str], None],
) -> tuple[float, int, list[dict[str, float]]] | str:
    """(validation loss, steps, validation history) of one trial, or the reason it failed."""
    try:
        settings = dataclasses.replace(base, **params)
    except ValueError as exc:  # a combination TrainSettings refuses (each value alone was checked)
        return str(exc)
    with tempfile.TemporaryDirectory(prefix="tuning-trial-") as scratch:
        try:
            result = train_adapter(
                load_model(),
                tokenizer,
                train_rows,
                validation_rows,
                settings,
                Path(scratch) / "adapter",
                base_model_source=base_model_source,
                inputs=inputs,
                log=log,
            )
        except InputError as exc:  # e.g. a loss that became NaN at this learning rate
            return str(exc)
    loss, steps, history = result.eval_loss, result.steps, list(result.validation_history)
    # The trained model is not needed once measured; free it before the next trial loads its own.
    del result
    gc.collect()
    if loss is None:  # check_validation makes this unreachable unless training changed its rules
        return "training measured no validation loss"
    if not math.isfinite(loss):
        # The Trainer's logged training loss hides NaN steps (logging_nan_inf_filter), so training can
        # end "fine" with a diverged model: its validation loss is what shows it.
        return f"validation loss is {loss}: training diverged; lower the learning_rate range"
    return float(loss), int(steps), history
