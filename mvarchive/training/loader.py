"""Where training batches come from: in-process, or DataLoader worker processes.

``loader_workers=0`` draws each batch in the training process with one
:class:`~mvarchive.training.data.CropSampler`; its random state is saved in ``last.pt``, so a
resumed run draws exactly the crops the uninterrupted run would have.

``loader_workers=N>0`` moves decoding and cropping off the critical path: a
``torch.utils.data.DataLoader`` over :class:`CropStream` (an ``IterableDataset`` yielding whole
batches) with N worker processes, ``prefetch_factor`` batches queued per worker,
``persistent_workers`` and ``pin_memory`` on CUDA. Worker w of rank r draws from its own
generator seeded by ``(seed, rank, w, start step)``, so a run is reproducible for a given
worker count, ranks and workers never repeat each other's crops, and a resumed run draws
fresh crops. What does *not* hold with workers: the worker generators' states are not
saved, so a resumed run sees other (equally distributed) crops than an uninterrupted one, and
runs with different worker counts differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from mvarchive.datasets import DatasetIndex

from .data import CropSampler

PREFETCH_FACTOR = 4


def sampler_seed(seed: int, rank: int = 0, worker: int | None = None, start: int = 0) -> int:
    """The seed of one crop stream: ``seed`` itself for the single in-process stream of a fresh
    run (what mvarchive always used), a derived one for every other stream."""
    if rank == 0 and worker is None and start == 0:
        return seed
    key = [seed, rank, -1 if worker is None else worker, start]
    return int(np.random.SeedSequence([k & 0xFFFFFFFF for k in key]).generate_state(1)[0])


class CropStream(IterableDataset):
    """An endless stream of ``(batch, K, 3, crop, crop)`` batches, one sampler per worker."""

    def __init__(self, index: DatasetIndex, crop: int, batch_size: int, seed: int, rank: int, start: int,
                 storage_options: dict | None = None) -> None:
        super().__init__()
        self.index, self.crop, self.batch_size = index, crop, batch_size
        self.seed, self.rank, self.start = seed, rank, start
        self.storage_options = storage_options

    def __iter__(self) -> Iterator[torch.Tensor]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        sampler = CropSampler(self.index, self.crop, seed=sampler_seed(self.seed, self.rank, worker, self.start),
                              storage_options=self.storage_options)
        while True:
            yield sampler.sample(self.batch_size)


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # N workers must not each start a pool of all cores


class BatchSource:
    """Batches for the loop; :meth:`state` is what ``last.pt`` stores (None with workers)."""

    def __init__(self, index: DatasetIndex, crop: int, batch_size: int, seed: int, *, rank: int = 0,
                 workers: int = 0, start: int = 0, state: dict | None = None, pin_memory: bool = False,
                 storage_options: dict | None = None) -> None:
        self.batch_size = batch_size
        self.workers = workers
        self.sampler: CropSampler | None = None
        self._batches: Iterator[torch.Tensor] | None = None
        if workers == 0:
            self.sampler = CropSampler(index, crop, seed=sampler_seed(seed, rank, None, 0 if state else start),
                                       storage_options=storage_options)
            if state is not None:
                self.sampler.set_rng_state(state)
        else:
            stream = CropStream(index, crop, batch_size, seed, rank, start, storage_options)
            loader = DataLoader(stream, batch_size=None, num_workers=workers, prefetch_factor=PREFETCH_FACTOR,
                                persistent_workers=True, pin_memory=pin_memory, worker_init_fn=_one_thread)
            self._batches = iter(loader)

    def next(self) -> torch.Tensor:
        if self.sampler is not None:
            return self.sampler.sample(self.batch_size)
        assert self._batches is not None
        return next(self._batches)

    def close(self) -> None:
        """Stop the worker processes (if any)."""
        self._batches = None

    def state(self) -> dict[str, Any] | None:
        return self.sampler.rng_state() if self.sampler is not None else None
