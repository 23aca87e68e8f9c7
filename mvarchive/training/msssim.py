"""The training loss's MS-SSIM: the project's one implementation (:mod:`mvarchive.metrics`).

Training crops are often smaller than the metric's 161-pixel minimum (64 in tests, 128 on CPU),
and a loss cannot be NaN, so :func:`ms_ssim` uses as many scales as fit (at least two: a side of
21 or more) with their weights renormalised to sum to one; :func:`msssim_scales` says how many.
On crops of 161 pixels and more it is exactly the five-scale metric stored in archives.
"""

from __future__ import annotations

import torch

from mvarchive.metrics import MS_SSIM_WEIGHTS as WEIGHTS
from mvarchive.metrics import ms_ssim_scales as msssim_scales
from mvarchive.metrics import ms_ssim_tensor

__all__ = ["WEIGHTS", "ms_ssim", "msssim_scales"]


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """MS-SSIM of each image, shape ``x.shape[:-3]``, for images ``(..., C, H, W)``, float32
    (bf16 autocast included), over the scales that fit; ``ValueError`` under 21 pixels."""
    return ms_ssim_tensor(x, y, data_range=data_range, scales=None)
