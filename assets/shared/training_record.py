"""The training record: ``training_config.json`` beside every adapter, written and read only here.

Training writes what it actually did (the resolved settings, the base model it loaded, library versions,
row and step counts); evaluation and export read it back, so they score and merge the adapter exactly as
it was trained (same quantization, same sequence length) whatever params.yaml says now. No timestamps go
in, so the same inputs give the same bytes. Framework-free.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assets.shared.errors import InputError

TRAINING_CONFIG_FILE = "training_config.json"


class TrainingRecordError(InputError):
    """An adapter directory has no readable training record."""


@dataclass(frozen=True)
class TrainingRecord:
    """What one training run did.

    ``settings`` holds every resolved ``train`` setting (see params.yaml); ``base_model`` the base it was
    trained on (``source``: the model setting as recorded by the base_model asset, ``model_type``);
    counts are rows after tokenization and optimizer steps; ``reproducibility`` the thread count and
    deterministic-algorithms mode training ran under.
    """

    settings: dict[str, Any]
    base_model: dict[str, Any]
    library_versions: dict[str, str] = field(default_factory=dict)
    train_examples: int = 0
    validation_examples: int = 0
    steps: int = 0
    trainable_params: int = 0
    total_params: int = 0
    # Asset key -> DVC md5 of what the adapter was trained from (base_model, train and validation splits).
    inputs: dict[str, str] = field(default_factory=dict)
    # The train.method (assets/train/methods/); records written before methods existed were QLoRA.
    method: str = "qlora"
    # Whether the result can be merged into the base weights. False for soft prompts (prefix, prompt,
    # p_tuning: nothing in the base changes) and for full fine-tuning (the directory is the whole model).
    mergeable: bool = True
    # How training was made reproducible (assets/train/determinism.py): ``num_threads`` (intra-op threads
    # in effect), ``deterministic_algorithms``, ``deterministic_warn_only``. Empty in older records.
    reproducibility: dict[str, Any] = field(default_factory=dict)
    # train.batching as resolved for the device (assets/train/batching.py) and the measured padding
    # efficiency (real tokens / processed tokens of the training batches); absent in older records.
    batching: str = ""
    padding_efficiency: float | None = None
    # Early stopping (train.early_stopping_patience > 0): the step whose weights were kept (lowest
    # validation loss) and the step training stopped at when that was before the end; None otherwise.
    best_step: int | None = None
    stopped_early_at_step: int | None = None

    @property
    def quantization(self) -> str | None:
        """The quantization the base was loaded with during training (``nf4``...), or None."""
        return self.settings.get("quantization")

    @property
    def max_seq_length(self) -> int:
        """Tokens per training sequence; evaluation truncates the same way."""
        return int(self.settings["max_seq_length"])

    def write(self, directory: Path) -> Path:
        """Write ``training_config.json`` into ``directory``; returns its path."""
        path = Path(directory) / TRAINING_CONFIG_FILE
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path


def stale_inputs(record: TrainingRecord, current: dict[str, str]) -> list[str]:
    """Sentences naming each input whose current md5 (asset key -> DVC md5) differs from the one the
    adapter was trained from; empty when the adapter is up to date (or predates input recording)."""
    return [
        f"{key} is now {current[key]}, the adapter was trained on {trained}"
        for key, trained in sorted(record.inputs.items())
        if key in current and current[key] != trained
    ]


def read_training_record(directory: Path) -> TrainingRecord:
    """The record in an adapter directory.

    Raises TrainingRecordError naming the file when it is missing or lacks what readers rely on
    (``settings.quantization`` and ``settings.max_seq_length``).
    """
    path = Path(directory) / TRAINING_CONFIG_FILE
    if not path.is_file():
        raise TrainingRecordError(
            f"{path} is missing, so how the adapter was trained (base quantization, sequence length) is "
            "unknown. Use an adapter directory written by the adapter asset, or re-materialize adapter."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        record = TrainingRecord(**data)
        missing = [key for key in ("quantization", "max_seq_length") if key not in record.settings]
    except (ValueError, TypeError) as exc:
        raise TrainingRecordError(
            f"{path} is not a training record ({exc}); re-materialize adapter."
        ) from None
    if missing:
        raise TrainingRecordError(
            f"{path} lacks settings {missing}; it was written by another version: re-materialize adapter."
        )
    return record
