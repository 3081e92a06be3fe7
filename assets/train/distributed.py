"""Training in more than one process: data-parallel (DDP) ranks started by torchrun, and what they share.

With ``train.processes`` = N > 1 the adapter asset does not train in its own process. It writes a
:class:`WorkerSpec` (paths of the base model and split files, the resolved settings, the output and work
directories) to a JSON file and starts ``python -m torch.distributed.run --standalone --nproc_per_node N
-m assets.train.worker <spec>`` (torchrun, PyTorch's launcher). Every rank loads the base on its own
device (``cuda:<local rank>``, or the CPU with the gloo backend) and runs the same
:func:`assets.train.training.train_adapter`; transformers' Trainer wraps the model in
DistributedDataParallel and gives each rank its share of the rows. Only rank 0 (the main process) prunes
and marks checkpoints, writes the output directory and the result file; the launcher streams rank 0's
progress lines into ``log`` while it runs and reads the result back when it ends.

Framework-free (no dagster); torch is imported inside functions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assets.shared.errors import InputError

if TYPE_CHECKING:
    from assets.train.settings import TrainSettings
    from assets.train.training import TrainResult

# The code root: the worker module must be importable in every rank whatever the caller's directory.
CODE_ROOT = Path(__file__).resolve().parents[2]
WORKER_MODULE = "assets.train.worker"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
# Lines of the ranks' stderr quoted when a rank fails.
_STDERR_TAIL = 30


class TrainingProcessError(RuntimeError):
    """A training rank (or torchrun itself) ended with an error that is not a user's input problem."""


def rank() -> int:
    """This process's global rank as torchrun (or accelerate launch) sets it in ``RANK``; 0 alone."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``): the index of the GPU it trains on."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """True in a one-process run and in rank 0 of a multi-process one: the process that writes files."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank gets here; nothing in a one-process run."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def rank_device(device: str, processes: int) -> str:
    """The device one rank trains on: ``cuda`` becomes ``cuda:<local rank>`` (one GPU per process);
    ``cpu`` stays. Raises InputError for a device that cannot be shared out (``cuda:1`` with N > 1)."""
    if processes == 1 or device == "cpu":
        return device
    if device == "cuda":
        return f"cuda:{local_rank()}"
    raise InputError(
        f"train.processes = {processes} needs one device per process, but the model loader's device is "
        f"{device!r}: set PIPELINE_DEVICE to 'cuda' (each process takes cuda:<local rank>) or 'cpu'."
    )


def check_launch(processes: int, device: str) -> None:
    """Refuse, before any process starts, a multi-process run this machine cannot do.

    Raises InputError when the device names one GPU (``cuda:1``) or when there are fewer GPUs than
    processes. A 4-bit (bitsandbytes NF4) base is fine: its packed weights are frozen, so DDP only
    all-reduces the adapter's gradients (checked on the CPU with gloo, bitsandbytes 0.50.2).
    """
    if processes == 1:
        return
    rank_device(device, processes)
    if device == "cuda":
        import torch

        available = torch.cuda.device_count()
        if available < processes:
            raise InputError(
                f"train.processes = {processes} needs {processes} GPUs (one per process); this machine has "
                f"{available}. Lower train.processes, or run on a node with more GPUs."
            )


@dataclass(frozen=True)
class WorkerSpec:
    """What every rank needs to train; all paths absolute. ``settings`` is the resolved ``train``
    section without ``base_model`` (TrainSettings' fields); ``run_dir`` receives the result files."""

    base_dir: str
    quantization: str | None
    dtype: str
    device: str
    train_path: str
    validation_path: str
    settings: dict[str, Any]
    out_dir: str
    work_dir: str
    base_model_source: str
    inputs: dict[str, str]
    run_dir: str

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> WorkerSpec:
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


def _exec_tied_to_parent(parent: int, command: list[str]) -> None:
    """Become ``command`` (execv), after asking Linux for SIGTERM when ``parent`` dies (prctl
    PR_SET_PDEATHSIG, which survives exec): a run worker killed with SIGKILL then leaves no rank training
    on into the work directory a re-run resumes from (torchrun passes SIGTERM on to its ranks). Done in
    a process of its own rather than in Popen's ``preexec_fn``, which can deadlock in a threaded parent."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request was in place
        sys.exit(1)
    os.execv(command[0], command)


def launch_command(processes: int, spec_path: Path) -> list[str]:
    """torchrun on this machine (``--standalone``: a local rendezvous on a free port, so two runs on
    one node never meet), one process per rank, each running the worker module on the spec."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        WORKER_MODULE,
        str(spec_path),
    ]


def result_to_json(result: TrainResult) -> dict[str, Any]:
    """The JSON form of a TrainResult (everything but the in-memory ``model``)."""
    out = {}
    for item in fields(result):
        if item.name == "model":
            continue
        value = getattr(result, item.name)
        out[item.name] = asdict(value) if is_dataclass(value) else value
    return out


def result_from_json(values: Mapping[str, Any]) -> TrainResult:
    """A TrainResult from :func:`result_to_json` (``model`` None: the model stayed in the ranks)."""
    from assets.train import training

    declared = {item.name: item.type for item in fields(training.TrainResult)}
    rebuilt = {}
    for name, value in values.items():
        # Annotations are strings (postponed evaluation); a dataclass field names a class in training.py.
        kind = getattr(training, str(declared.get(name)), None)
        rebuilt[name] = kind(**value) if isinstance(kind, type) and is_dataclass(kind) else value
    return training.TrainResult(**rebuilt, model=None)


def train_in_processes(
    settings: TrainSettings,
    *,
    base_dir: Path,
    train_path: Path,
    validation_path: Path,
    out_dir: Path,
    device: str,
    base_model_source: str,
    inputs: Mapping[str, str],
    work_dir: Path,
    dtype: str = "float32",
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train with ``settings.processes`` ranks under torchrun and return rank 0's result; the arguments
    are those of :func:`assets.train.training.train_adapter`, with the base and the splits as paths
    (a base_model directory, Parquet files of canonical rows) that every rank loads itself.

    Rank 0's progress lines (its stdout) go to ``log`` as they come. Raises InputError with the rank's
    own message when training refused the input (the same errors as a one-process run), and
    TrainingProcessError naming the exit code and the last lines of the ranks' stderr (kept, with the
    spec, in a ``train-ranks-*`` folder of the temporary directory) for anything else. If this process
    is interrupted, the ranks are stopped before the exception goes on.
    """
    processes = settings.processes
    run_dir = Path(tempfile.mkdtemp(prefix="train-ranks-"))
    spec = WorkerSpec(
        base_dir=str(Path(base_dir).resolve()),
        quantization=settings.quantization,
        dtype=dtype,
        device=device,
        train_path=str(Path(train_path).resolve()),
        validation_path=str(Path(validation_path).resolve()),
        settings=asdict(settings),
        out_dir=str(Path(out_dir).resolve()),
        work_dir=str(Path(work_dir).resolve()),
        base_model_source=base_model_source,
        inputs=dict(inputs),
        run_dir=str(run_dir),
    )
    spec_path = run_dir / "spec.json"
    spec.write(spec_path)
    stderr_path = run_dir / "stderr.log"
    command = launch_command(processes, spec_path)
    if log is not None:
        log(f"training in {processes} processes: {' '.join(command)}")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(CODE_ROOT), os.environ.get("PYTHONPATH", "")) if p),
        # The ranks' temporary files go where this run's go (the storage resource's scratch folder).
        "TMPDIR": tempfile.gettempdir(),
        "PYTHONUNBUFFERED": "1",
    }
    with stderr_path.open("w", encoding="utf-8") as stderr:
        tied = [sys.executable, "-m", __name__, str(os.getpid()), *command]
        process = subprocess.Popen(
            tied if sys.platform.startswith("linux") else command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
            bufsize=1,
        )
        try:
            assert process.stdout is not None
            for line in process.stdout:
                line = line.rstrip("\n")
                if line and log is not None:
                    log(line)
            returncode = process.wait()
        finally:
            if process.poll() is None:
                # torchrun passes SIGTERM on to its ranks.
                process.terminate()
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    error_path = run_dir / ERROR_FILE
    if error_path.is_file():
        raise InputError(json.loads(error_path.read_text(encoding="utf-8"))["message"])
    if returncode != 0:
        tail = stderr_path.read_text(encoding="utf-8", errors="replace").splitlines()[-_STDERR_TAIL:]
        raise TrainingProcessError(
            f"Training with train.processes = {processes} failed: torchrun exited with code {returncode}. "
            f"Last lines of the ranks' stderr ({stderr_path}):\n" + "\n".join(tail)
        )
    result_path = run_dir / RESULT_FILE
    if not result_path.is_file():
        raise TrainingProcessError(
            f"Training with train.processes = {processes} ended without rank 0's result ({result_path})."
        )
    result = result_from_json(json.loads(result_path.read_text(encoding="utf-8")))
    shutil.rmtree(run_dir, ignore_errors=True)
    return result


if __name__ == "__main__":
    # python -m assets.train.distributed <parent pid> <command...>: see _exec_tied_to_parent.
    _exec_tied_to_parent(int(sys.argv[1]), sys.argv[2:])
