"""Random crops aligned across the views of a group, for training multi-view codecs."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mvarchive.datasets import DatasetIndex, load_group
from mvarchive.metrics import to_tensor


class CropSampler:
    """Draws batches of (B, K, 3, crop, crop) from a dataset.

    The same window is cut from every view of a group (the views overlap, so aligned crops
    keep the inter-view correlation the codec must learn), with the same random flips.
    Decoded groups are cached in memory up to ``cache_groups``.
    """

    def __init__(self, index: DatasetIndex, crop: int, seed: int = 0, storage_options: dict | None = None,
                 cache_groups: int = 256, flips: bool = True) -> None:
        if not index.groups:
            raise ValueError(f"dataset {index.url} has no groups to train on")
        self.index = index
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        self.storage_options = storage_options or {}
        self.cache_groups = cache_groups
        self.flips = flips
        self._cache: dict[int, np.ndarray] = {}

    def rng_state(self) -> dict[str, Any]:
        """The random state as plain data (nested dicts of str/int), loadable with
        ``torch.load(weights_only=True)`` unlike the ``Generator`` object itself."""
        return dict(self.rng.bit_generator.state)

    def set_rng_state(self, state: dict) -> None:
        """Continue exactly where the sampler that produced ``state`` left off."""
        name = state.get("bit_generator") if isinstance(state, dict) else None
        generator = getattr(np.random, str(name), None) if name else None
        if generator is None or not isinstance(generator, type) or not issubclass(generator, np.random.BitGenerator):
            raise ValueError(f"not a numpy bit generator state: {state!r:.200}")
        bit_generator = generator()
        bit_generator.state = state
        self.rng = np.random.Generator(bit_generator)

    def _group(self, i: int) -> np.ndarray:
        if i not in self._cache:
            views = load_group(self.index.groups[i], self.storage_options)
            if min(views.shape[1:3]) < self.crop:
                raise ValueError(
                    f"group {self.index.groups[i].name!r} is {views.shape[1]}x{views.shape[2]}, "
                    f"smaller than the training crop {self.crop}"
                )
            if len(self._cache) >= self.cache_groups:
                self._cache.pop(next(iter(self._cache)))
            self._cache[i] = views
        return self._cache[i]

    def sample(self, batch_size: int) -> torch.Tensor:
        crops = []
        for _ in range(batch_size):
            views = self._group(int(self.rng.integers(len(self.index.groups))))
            top = int(self.rng.integers(views.shape[1] - self.crop + 1))
            left = int(self.rng.integers(views.shape[2] - self.crop + 1))
            crop = views[:, top : top + self.crop, left : left + self.crop]
            if self.flips and self.rng.random() < 0.5:
                crop = crop[:, :, ::-1]
            if self.flips and self.rng.random() < 0.5:
                crop = crop[:, ::-1]
            crops.append(to_tensor(np.ascontiguousarray(crop)))
        return torch.stack(crops)
