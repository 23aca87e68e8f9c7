"""Per-worker resources: a cache of loaded codecs and the torch thread budget."""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator

import torch

from mvarchive.codecs import CodecRef, MultiViewCodec
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


def _worker_cache() -> dict | None:
    """The running Dask worker's codec cache (None outside a worker, e.g. tests calling ``.fn``)."""
    try:
        from distributed import get_worker

        holder = get_worker()
    except (ImportError, ValueError):
        return None
    return holder.__dict__.setdefault("_mvarchive_codecs", {})


def _cached(cache: dict | None, key: object, build: Callable[[], MultiViewCodec]) -> MultiViewCodec:
    if cache is None:
        return build()
    if key not in cache:
        cache[key] = build()
    return cache[key]


def codec_on_worker(ref: CodecRef, device: str = "cpu") -> MultiViewCodec:
    """Load a codec once per worker process and keep it, keyed by its reference; with a
    ``device`` other than the canonical CPU, its encoder with the analysis transforms on that
    device (:meth:`MultiViewCodec.analysis_encoder`), also built once, not per shard."""
    from mvarchive.codecs.base import AnalysisPlacement

    placement = AnalysisPlacement.for_device(device)
    cache = _worker_cache()
    codec = _cached(cache, ref, ref.load)
    if placement.canonical:
        return codec
    return _cached(cache, (ref, device), lambda: codec.analysis_encoder(placement))


def worker_codec_loader() -> Callable[[CodecRef], MultiViewCodec]:
    """A loader bound to the Dask worker running the caller (call it in the task's own thread):
    it reads and fills the same per-worker cache as :func:`codec_on_worker` from any thread, so
    code the task runs elsewhere (e.g. inside a Prefect flow) still finds the warm model. Not on
    a worker: each call loads the codec."""
    cache = _worker_cache()
    return lambda ref: _cached(cache, ref, ref.load)
