"""The training curves an adapter directory carries (``loss_history.json``, ``validation_history.json``):
read back as step-indexed series, and drawn as a PNG. Framework-free.

Training writes the histories (assets/train/training.py); the adapter's Dagster page draws them, and the
registry logs them as the MLflow run's step metrics, so the curves a person sees in either UI are the same
numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from assets.shared.errors import InputError

# The file names training writes (assets/train/training.py holds the same names; a test keeps them equal).
LOSS_HISTORY_FILE = "loss_history.json"
VALIDATION_HISTORY_FILE = "validation_history.json"
# transformers Trainer log keys -> our metric names; any other numeric key keeps its own name.
_TRAIN_NAMES = {"loss": "loss", "num_input_tokens_seen": "tokens_seen"}
_VALIDATION_PREFIX = "eval_"


def read_histories(directory: Path) -> tuple[list[dict], list[dict]]:
    """(training history, validation history) of an adapter directory: lists of ``{"step": int, ...}``
    entries (``loss``, ``epoch`` and whatever else training recorded; ``eval_loss`` for validation).
    A missing file is an empty list (adapters written before histories existed). Raises InputError
    naming the file when one is not a JSON list of objects with a ``step``."""
    histories = []
    for name in (LOSS_HISTORY_FILE, VALIDATION_HISTORY_FILE):
        path = Path(directory) / name
        if not path.is_file():
            histories.append([])
            continue
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InputError(f"{path} is not JSON ({exc}); re-materialize adapter.") from None
        if not isinstance(entries, list) or not all(isinstance(e, dict) and "step" in e for e in entries):
            raise InputError(f"{path} is not a list of {{'step': ...}} entries; re-materialize adapter.")
        histories.append(entries)
    return histories[0], histories[1]


def step_series(train: list[dict], validation: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """Every numeric, finite value of the histories as a series ``name -> [(step, value), ...]`` in step
    order: ``train/loss``, ``train/epoch`` (and ``train/learning_rate``, ``train/grad_norm``,
    ``train/tokens_seen`` when recorded) from the training history, ``validation/loss`` (from
    ``eval_loss``) and any other ``eval_*`` value from the validation history."""
    series: dict[str, list[tuple[int, float]]] = {}
    for prefix, entries in (("train", train), ("validation", validation)):
        for entry in sorted(entries, key=lambda e: e["step"]):
            for key, value in entry.items():
                if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                if not math.isfinite(value):
                    continue
                if prefix == "train":
                    name = _TRAIN_NAMES.get(key, key)
                else:
                    name = key.removeprefix(_VALIDATION_PREFIX)
                series.setdefault(f"{prefix}/{name}", []).append((int(entry["step"]), float(value)))
    return series


def loss_curve_png(history: list[dict], *, title: str, validation: list[dict] | None = None) -> bytes:
    """Plot ``loss`` against ``step`` for every training history entry that has both, and ``eval_loss``
    against ``step`` for the validation entries, on one axis (matplotlib, PNG bytes)."""
    import io

    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.2), dpi=100)
    train = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    if train:
        axes.plot(*zip(*train, strict=True), marker="o", markersize=2, linewidth=1, label="training")
    evals = [(h["step"], h["eval_loss"]) for h in validation or [] if "eval_loss" in h and "step" in h]
    if evals:
        axes.plot(*zip(*evals, strict=True), marker="s", markersize=4, linewidth=1.5, label="validation")
    if train or evals:
        axes.legend()
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss (mean token cross-entropy)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
