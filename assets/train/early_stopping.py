"""Early stopping on validation loss, keeping the checkpoint of the lowest validation loss.

transformers' Trainer does the bookkeeping: with ``load_best_model_at_end`` and
``metric_for_best_model="eval_loss"`` it tracks the best evaluation (``state.best_metric``,
``state.best_global_step``), protects that checkpoint from rotation and loads it when training ends;
its ``EarlyStoppingCallback`` ends training after ``patience`` evaluations in a row whose loss is not
lower than the best by more than ``threshold``. One gap is closed here: the Trainer records a best
checkpoint only when the best evaluation falls on a save step, so an evaluation that improves on the
best also saves (:func:`best_checkpoint_saver`), and the adapter kept is always the best one evaluated.
The best so far and the patience counter are in each checkpoint's ``trainer_state.json``, so a resumed
run counts on where it was killed.
Framework-free: transformers is imported inside the functions.
"""

from __future__ import annotations

from typing import Any

from assets.shared.errors import InputError

BEST_METRIC = "eval_loss"


def require_validation(patience: int, validation_rows: int, *, scorable: bool = False) -> None:
    """Raise InputError naming ``train.early_stopping_patience`` when early stopping is on and there is
    no validation row (``scorable``: no row with an assistant token within ``train.max_seq_length``)."""
    if patience and not validation_rows:
        which = (
            "no validation row has an assistant token within train.max_seq_length"
            if scorable
            else "validation_split is empty"
        )
        raise InputError(
            f"train.early_stopping_patience is {patience}, but {which}: early stopping measures "
            "validation loss. Set train.early_stopping_patience to 0 (params.yaml), or give "
            "validation_split scorable rows."
        )


def training_arguments(patience: int) -> dict[str, Any]:
    """The TrainingArguments keywords for early stopping with ``patience`` (0: off, none). The patience
    counter is restored from the checkpoint on resume, so a kill does not reset it."""
    if patience <= 0:
        return {}
    return {
        "load_best_model_at_end": True,
        "metric_for_best_model": BEST_METRIC,
        "greater_is_better": False,
        "restore_callback_states_from_checkpoint": True,
    }


def best_checkpoint_saver() -> Any:
    """A transformers ``TrainerCallback`` that asks for a checkpoint after every evaluation whose
    validation loss is below the best so far (``state.best_metric`` is updated after callbacks run)."""
    from transformers import TrainerCallback

    class SaveBest(TrainerCallback):
        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            value = (kwargs.get("metrics") or {}).get(BEST_METRIC)
            if value is not None and (state.best_metric is None or value < state.best_metric):
                control.should_save = True

    return SaveBest()


def early_stopping_callbacks(patience: int, threshold: float) -> list[Any]:
    """The callbacks for early stopping after ``patience`` evaluations without a validation loss drop
    of more than ``threshold`` (absolute, in loss units; transformers' EarlyStoppingCallback); empty
    when ``patience`` is 0."""
    if patience <= 0:
        return []
    from transformers import EarlyStoppingCallback

    return [
        best_checkpoint_saver(),
        EarlyStoppingCallback(early_stopping_patience=patience, early_stopping_threshold=threshold),
    ]
