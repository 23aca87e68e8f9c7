"""Loaded codecs kept per Dask worker process, at most a few at a time.

Loading a codec (reading the checkpoint, building the model, the CDF tables) takes seconds, and
every shard of an archive run asks for the same one, so a worker keeps what it loaded, keyed by
the :class:`~mvarchive.codecs.CodecRef` (plus the device for an analysis encoder). A long-lived
worker of the service stack sees many models over time (sweeps, evaluations, new versions), so
the cache is bounded: when full, the least recently used model goes. The bound is
:data:`CAPACITY_ENV` in the worker's environment (default :data:`DEFAULT_CAPACITY`).

The cache lives on the worker object, not in this module: outside a worker (tests, the CLI in
process) every call loads, and nothing outlives its caller.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from mvarchive.codecs import MultiViewCodec

    from .checkpoints import CodecRef

CAPACITY_ENV = "MVARCHIVE_WORKER_MODELS"
DEFAULT_CAPACITY = 4
_WORKER_ATTRIBUTE = "_mvarchive_model_cache"

V = TypeVar("V")


class ModelCache(Generic[V]):
    """A least-recently-used map of at most ``capacity`` built values; thread-safe (a Dask worker
    may run tasks, and a Prefect flow inside a task, on several threads)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"a model cache holds at least one model, got capacity {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        """The value for ``key``, built (once, under the lock: two threads never load the same
        model twice) when missing; evicts the least recently used entry past ``capacity``."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            value = build()
            self._entries[key] = value
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
            return value

    def keys(self) -> list[Hashable]:
        """The cached keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def capacity_from_env() -> int:
    """The bound set for this worker (:data:`CAPACITY_ENV`), else :data:`DEFAULT_CAPACITY`."""
    text = os.environ.get(CAPACITY_ENV, "").strip()
    if not text:
        return DEFAULT_CAPACITY
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{CAPACITY_ENV} must be a whole number of models, got {text!r}") from None


def worker_model_cache() -> ModelCache[MultiViewCodec] | None:
    """The running Dask worker's cache, created on first use (None outside a worker, e.g. tests
    calling a task's ``.fn``)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    cache = worker.__dict__.get(_WORKER_ATTRIBUTE)
    if cache is None:
        cache = worker.__dict__.setdefault(_WORKER_ATTRIBUTE, ModelCache(capacity_from_env()))
    return cache


def _cached(cache: ModelCache[MultiViewCodec] | None, key: Hashable,
            build: Callable[[], MultiViewCodec]) -> MultiViewCodec:
    return build() if cache is None else cache.get(key, build)


def codec_on_worker(ref: CodecRef, device: str = "cpu") -> MultiViewCodec:
    """Load a codec once per worker process and keep it, keyed by its reference; with a
    ``device`` other than the canonical CPU, its encoder with the analysis transforms on that
    device (:meth:`MultiViewCodec.analysis_encoder`), also built once, not per shard."""
    from mvarchive.codecs.base import AnalysisPlacement

    placement = AnalysisPlacement.for_device(device)
    cache = worker_model_cache()
    codec = _cached(cache, ref, ref.load)
    if placement.canonical:
        return codec
    return _cached(cache, (ref, device), lambda: codec.analysis_encoder(placement))


def worker_codec_loader() -> Callable[[CodecRef], MultiViewCodec]:
    """A loader bound to the Dask worker running the caller (call it in the task's own thread):
    it reads and fills the same per-worker cache as :func:`codec_on_worker` from any thread, so
    code the task runs elsewhere (e.g. inside a Prefect flow) still finds the warm model. Not on
    a worker: each call loads the codec."""
    cache = worker_model_cache()
    return lambda ref: _cached(cache, ref, ref.load)
