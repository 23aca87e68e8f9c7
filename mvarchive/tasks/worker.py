"""Per-worker resources: the torch thread budget and the device check (the loaded codecs are
kept by :mod:`mvarchive.runtime.model_cache`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from mvarchive.infra.dask_cluster import torch_threads_for_worker


def prepare_torch() -> int:
    """Give torch this worker's share of cores (not every core to every worker process)."""
    threads = torch_threads_for_worker()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (unchanged when 0): a decoder reproduces the
    encoder's pixels bit for bit only with the encoder's thread count."""
    previous = torch.get_num_threads()
    if threads > 0 and threads != previous:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def check_device(device: str) -> None:
    """Fail a task asking for CUDA on a worker without it, with one clear line (a worker that
    advertises the GPU resource but has no usable device is misconfigured)."""
    if device.strip().lower().startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"task asks for device {device!r} but this worker has no usable CUDA device "
            f"(torch {torch.__version__}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
        )
