"""Replicate-padding to the multiple a codec needs, and cropping back."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """Smallest size >= (height, width) divisible by ``multiple``."""
    return (-(-height // multiple) * multiple, -(-width // multiple) * multiple)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the last two dims at the bottom/right by edge replication.

    Replication (not zeros) keeps the padded border smooth, so it costs few bits.
    """
    height, width = x.shape[-2:]
    target_h, target_w = padded_size(height, width, multiple)
    if (target_h, target_w) == (height, width):
        return x
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    flat = F.pad(flat, (0, target_w - width, 0, target_h - height), mode="replicate")
    return flat.reshape(*lead, *flat.shape[-3:])


def crop_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`."""
    return x[..., :height, :width]
