"""Differentiable MS-SSIM in torch (Wang, Simoncelli & Bovik 2003), float32, for training.

The standard form: an 11×11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03, five scales
with weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2×2 average pooling between scales,
contrast-structure terms at the first four scales and luminance·contrast·structure at the
last, ReLU on the per-scale means before the weighted product (as CompressAI's trainers
and ``pytorch_msssim`` do, so the gradient stays finite early in training).

Small crops: five scales need a side of at least 176 after padding (the window must fit at
the 1/16 scale: 11·16). Training crops are often smaller (64 in tests, 128 on CPU), so
:func:`ms_ssim` uses as many scales as fit (at least two: side ≥ 22) and renormalises the
weights of those scales to sum to one; :func:`msssim_scales` says how many. The evaluation
metric (``mvarchive.metrics.ms_ssim``) is always the full 5-scale one on whole images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW = 11
SIGMA = 1.5


def msssim_scales(height: int, width: int) -> int:
    """How many of the five scales fit an image of this size (the window fits at the coarsest)."""
    side = min(height, width)
    scales = 0
    while scales < len(WEIGHTS) and side >= WINDOW:
        scales += 1
        side //= 2
    return scales


def _window(device: torch.device) -> torch.Tensor:
    x = torch.arange(WINDOW, dtype=torch.float32, device=device) - WINDOW // 2
    g = torch.exp(-(x**2) / (2 * SIGMA**2))
    return g / g.sum()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable valid-mode Gaussian filter over (N, C, H, W), channel by channel."""
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, WINDOW), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, WINDOW, 1), groups=c)


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, g: torch.Tensor, data_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image-and-channel mean SSIM and mean contrast-structure, each (N, C)."""
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_x, mu_y = _blur(x, g), _blur(y, g)
    sxx = _blur(x * x, g) - mu_x**2
    syy = _blur(y * y, g) - mu_y**2
    sxy = _blur(x * y, g) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (luminance * cs).flatten(2).mean(-1), cs.flatten(2).mean(-1)


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """MS-SSIM of each image, shape ``x.shape[:-3]``, for images ``(..., C, H, W)``.

    Computed in float32 whatever the input dtype (bf16 autocast included). Raises
    ``ValueError`` when not even two scales fit (a side below 22 pixels).
    """
    lead = x.shape[:-3]
    x = x.reshape(-1, *x.shape[-3:]).float()
    y = y.reshape(-1, *y.shape[-3:]).float()
    scales = msssim_scales(x.shape[-2], x.shape[-1])
    if scales < 2:
        raise ValueError(f"MS-SSIM needs images of at least 22x22 pixels, got {x.shape[-2]}x{x.shape[-1]}")
    weights = torch.tensor(WEIGHTS[:scales], dtype=torch.float32, device=x.device)
    weights = weights / weights.sum()
    g = _window(x.device)
    with torch.autocast(x.device.type, enabled=False):
        values = []
        for scale in range(scales):
            ssim, cs = _ssim_terms(x, y, g, data_range)
            values.append(torch.relu(ssim if scale == scales - 1 else cs))
            if scale < scales - 1:
                pad = (0, x.shape[-1] % 2, 0, x.shape[-2] % 2)
                x = F.avg_pool2d(F.pad(x, pad, mode="replicate"), 2)
                y = F.avg_pool2d(F.pad(y, pad, mode="replicate"), 2)
        stacked = torch.stack(values, dim=-1)  # (N, C, scales)
        result = torch.prod(stacked ** weights, dim=-1).mean(dim=1)
    return result.reshape(lead)
