"""A tiny group-folders dataset whose sizes are not multiples of any codec's padding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: (group, skimage photo, height, width): 250x370 is the stereo sample's motorcycle size.
ODD_GROUPS = (("astronaut", "astronaut", 250, 370), ("coffee", "coffee", 200, 264))
LAYOUT = "group-folders"  # two groups of two views is ambiguous for layout="auto"


def make_odd_dataset(root: Path) -> Path:
    """Write ``root/<group>/{left,right}.png``: two overlapping crops (a 12-pixel baseline)
    of a scikit-image photo per group. Idempotent."""
    import skimage.data as skdata

    for group, photo, height, width in ODD_GROUPS:
        image = getattr(skdata, photo)()
        for camera, dx in (("left", 0), ("right", 12)):
            path = root / group / f"{camera}.png"
            if path.is_file():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(image[10 : 10 + height, 20 + dx : 20 + dx + width])).save(path)
    return root
