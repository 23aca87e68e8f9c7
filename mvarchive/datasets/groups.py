"""Load all views of one group as a single array for multi-view codecs."""

from __future__ import annotations

from typing import Any

import numpy as np

from mvarchive.datasets.errors import DatasetError
from mvarchive.datasets.images import MAX_VIEW_PIXELS, load_image
from mvarchive.datasets.layouts import GroupRef

__all__ = ["load_group"]


def load_group(
    group: GroupRef, storage_options: dict[str, Any] | None = None, max_pixels: int | None = MAX_VIEW_PIXELS
) -> np.ndarray:
    """Read every view of ``group`` into a ``(K, H, W, 3) uint8`` array, in camera order.

    Multi-view codecs need all views at one size, so a group whose views
    differ raises :class:`DatasetError` listing each camera's size instead of
    failing later inside a model.
    """
    if not group.views:
        raise DatasetError(f"group {group.name!r} has no views")
    images = [load_image(v.url, storage_options, max_pixels) for v in group.views]
    sizes = [img.shape[:2] for img in images]
    if len(set(sizes)) > 1:
        listed = ", ".join(f"{v.camera} {h}x{w}" for v, (h, w) in zip(group.views, sizes))
        raise DatasetError(f"group {group.name!r}: views differ in size: {listed}")
    return np.stack(images, axis=0)
