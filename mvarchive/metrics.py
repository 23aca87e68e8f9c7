"""Image quality metrics on 8-bit RGB views, as archive users see them."""

from __future__ import annotations

import math

import numpy as np
import torch
from pytorch_msssim import ms_ssim as _ms_ssim

MS_SSIM_MIN_SIDE = 161  # five scales with an 11-tap window need more than (11 - 1) * 2**4 pixels


def to_tensor(views: np.ndarray) -> torch.Tensor:
    """(K, H, W, 3) uint8 -> (K, 3, H, W) float in [0, 1]."""
    # contiguous in (K, 3, H, W): a permuted view keeps the NHWC strides, on which oneDNN's
    # convolution backward corrupted the heap for MLIC++-style codecs (VEMIC, single-view-mlicpp)
    return torch.from_numpy(np.ascontiguousarray(views)).permute(0, 3, 1, 2).contiguous().float().div_(255.0)


def to_uint8(views: torch.Tensor) -> np.ndarray:
    """(K, 3, H, W) float in [0, 1] -> (K, H, W, 3) uint8, rounding as an image file stores it."""
    return views.clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR in dB of one 8-bit image (any shape); inf when identical."""
    mse = float(np.mean((reference.astype(np.float64) - decoded.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ms_ssim(reference: np.ndarray, decoded: np.ndarray) -> float:
    """MS-SSIM of one (H, W, 3) 8-bit image; NaN when a side is too small for five scales."""
    if min(reference.shape[:2]) < MS_SSIM_MIN_SIDE:
        return math.nan
    a = torch.from_numpy(reference).permute(2, 0, 1)[None].double()
    b = torch.from_numpy(decoded).permute(2, 0, 1)[None].double()
    return float(_ms_ssim(a, b, data_range=255.0))


def group_metrics(reference: np.ndarray, decoded: np.ndarray, total_bytes: int) -> dict[str, float]:
    """Per-group metrics over (K, H, W, 3) views: bpp over all pixels, mean per-view PSNR/MS-SSIM."""
    pixels = reference.shape[0] * reference.shape[1] * reference.shape[2]
    return {
        "bytes": float(total_bytes),
        "bpp": 8.0 * total_bytes / pixels,
        "psnr": float(np.mean([psnr(r, d) for r, d in zip(reference, decoded)])),
        "ms_ssim": float(np.mean([ms_ssim(r, d) for r, d in zip(reference, decoded)])),
    }
