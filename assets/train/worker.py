"""One training rank: ``python -m assets.train.worker <spec.json>``, started by torchrun (see
assets/train/distributed.py, which writes the spec and reads back what rank 0 leaves).

Every rank loads the base on its own device and trains with the same
:func:`assets.train.training.train_adapter`; rank 0 prints progress lines to stdout (the launcher
forwards them to the run log) and writes ``result.json``. A problem the user must fix (bad settings or
data, a missing model) is written to ``error.json`` for the launcher to show as it is.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from assets.shared.errors import InputError
from assets.train.distributed import (
    ERROR_FILE,
    RESULT_FILE,
    WorkerSpec,
    is_main_process,
    rank,
    rank_device,
    result_to_json,
)


def _say(line: str) -> None:
    print(line, flush=True)


def _write_json(path: Path, value: object) -> None:
    # Renamed into place: the launcher never reads half a file.
    partial = path.with_name(f".{path.name}.{rank()}.tmp")
    partial.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _rows(path: str) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def train(spec: WorkerSpec) -> None:
    """Train this rank's part of the run described by ``spec``."""
    from assets.train.settings import TrainSettings
    from assets.train.training import train_adapter
    from resources.model_loading import load_causal_lm, load_tokenizer

    settings = TrainSettings.from_mapping(spec.settings)
    device = rank_device(spec.device, settings.processes)
    model = load_causal_lm(
        Path(spec.base_dir), quantization=spec.quantization, dtype=spec.dtype, device=device
    )
    result = train_adapter(
        model,
        load_tokenizer(Path(spec.base_dir)),
        _rows(spec.train_path),
        _rows(spec.validation_path),
        settings,
        Path(spec.out_dir),
        base_model_source=spec.base_model_source,
        inputs=spec.inputs,
        work_dir=Path(spec.work_dir),
        log=_say if is_main_process() else None,
    )
    if is_main_process():
        _write_json(Path(spec.run_dir) / RESULT_FILE, result_to_json(result))


def main(argv: list[str]) -> int:
    from resources.model_source import ModelSourceError

    if len(argv) != 1:
        print("usage: python -m assets.train.worker <spec.json>", file=sys.stderr)
        return 2
    spec = WorkerSpec.read(Path(argv[0]))
    try:
        train(spec)
    except (InputError, ModelSourceError) as exc:
        # Every rank meets the same problem; whichever writes first is shown (the others may be stopped).
        _write_json(Path(spec.run_dir) / ERROR_FILE, {"message": str(exc), "rank": rank()})
        print(f"rank {rank()}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # torchrun's error-file hook: a rank's traceback goes into torchrun's failure summary, which the
    # launcher quotes, instead of being buried among the other ranks' output.
    from torch.distributed.elastic.multiprocessing.errors import record

    sys.exit(record(main)(sys.argv[1:]))
