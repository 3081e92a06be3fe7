"""Reproducible training: the same inputs and settings give the same adapter bytes on any machine.

A float sum's result depends on the order of its terms, and torch splits a reduction (a matmul, a loss)
into as many parts as it has intra-op threads, a number it takes from the machine's cores by default.
So the thread count is a training setting (``train.num_threads``), pinned while training runs, and
torch's deterministic algorithms are switched on (https://pytorch.org/docs/stable/notes/randomness.html):
with both, an unchanged re-run reproduces its adapter byte for byte, and the registry reuses its
version. Both are put back afterwards, so the rest of the process is unaffected. Framework-free.

We do not use transformers' ``full_determinism`` (``enable_full_determinism``): it changes process-wide
state for good (``CUDA_LAUNCH_BLOCKING=1`` slows every later CUDA call), fails a run outright on the
first operation that has no deterministic kernel, and leaves the thread count to the machine.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

# cuBLAS is deterministic only with a fixed workspace (CUDA >= 10.2); ":4096:8" is the setting the
# PyTorch reproducibility notes give. It is read when cuBLAS starts, so it is set before training.
_CUBLAS_WORKSPACE = ("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@contextlib.contextmanager
def deterministic_training(num_threads: int) -> Iterator[dict[str, Any]]:
    """Pin torch to ``num_threads`` intra-op threads and deterministic algorithms for the ``with`` block,
    then restore the thread count, the deterministic-algorithms mode and the cuDNN flags as they were.

    ``num_threads`` 0 keeps the thread count torch chose (the machine's cores: fastest, but the bytes may
    then differ between machines). Operations without a deterministic implementation warn instead of
    failing (``warn_only``): the warning names them in the run's log.

    Yields what training ran with, for the training record: ``num_threads`` (the count in effect),
    ``deterministic_algorithms`` and ``deterministic_warn_only``.
    """
    import torch

    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0:
        raise ValueError(f"num_threads must be 0 (torch's choice) or a positive integer; got {num_threads!r}")
    cudnn = torch.backends.cudnn
    previous_threads = torch.get_num_threads()
    previous_mode = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    previous_cudnn = (cudnn.deterministic, cudnn.benchmark)
    variable, workspace = _CUBLAS_WORKSPACE
    previous_workspace = os.environ.get(variable)
    if num_threads:
        torch.set_num_threads(num_threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # cuDNN's autotuner picks the fastest kernel per run, and different kernels round differently.
    cudnn.deterministic, cudnn.benchmark = True, False
    if previous_workspace is None:
        os.environ[variable] = workspace
    try:
        yield {
            "num_threads": torch.get_num_threads(),
            "deterministic_algorithms": True,
            "deterministic_warn_only": True,
        }
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_mode[0], warn_only=previous_mode[1])
        cudnn.deterministic, cudnn.benchmark = previous_cudnn
        if previous_workspace is None:
            os.environ.pop(variable, None)
