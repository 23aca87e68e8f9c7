"""Per-worker resources: a cache of loaded codecs and the torch thread budget."""

from __future__ import annotations

import torch

from mvarchive.codecs import CodecRef, MultiViewCodec
from mvarchive.infra.dask_cluster import torch_threads_for_worker


def prepare_torch() -> int:
    """Give torch this worker's share of cores (not every core to every worker process)."""
    threads = torch_threads_for_worker()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def codec_on_worker(ref: CodecRef) -> MultiViewCodec:
    """Load a codec once per worker process and keep it, keyed by its reference."""
    try:
        from distributed import get_worker

        holder = get_worker()
    except (ImportError, ValueError):
        return ref.load()  # not on a Dask worker (e.g. tests calling .fn directly)
    cache = holder.__dict__.setdefault("_mvarchive_codecs", {})
    if ref not in cache:
        cache[ref] = ref.load()
    return cache[ref]
