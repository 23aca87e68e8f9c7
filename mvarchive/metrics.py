"""Image quality metrics on 8-bit RGB views, as archive users see them, and the project's one MS-SSIM.

MS-SSIM (Wang, Simoncelli & Bovik 2003) is implemented once, here, in float32 torch: batched
over views, differentiable (the training loss uses it), and equal to ``pytorch_msssim.ms_ssim``
within 1e-4 wherever that one is defined (an 11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03,
weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2×2 average pooling with zero padding of odd
sides, ReLU on each scale's mean before the weighted product, the blur skipped along a side
shorter than the window).

Small images, decided once: ``s`` scales need a side longer than ``10 · 2^(s-1)`` pixels
(:func:`ms_ssim_scales`; 161 for the standard five). The **metric** (archives' ``ms_ssim`` column,
``eval``, ``info``) is always the five-scale MS-SSIM and NaN for smaller views, as archives
written before had it: a value over fewer scales is a different number, and mixing the two
would make archives incomparable. The **training loss** cannot be NaN, so on crops under 161
pixels it uses the scales that fit (at least two) with their weights renormalised to sum to one.

Float32, one torch thread for the numpy entry points: equal to float64 within 1e-5 for 8-bit
images, about 20 times faster on a CPU, and small convolutions gain nothing from more threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_WINDOW = 11
MS_SSIM_SIGMA = 1.5
MS_SSIM_MIN_SIDE = 161  # five scales with an 11-tap window need more than (11 - 1) * 2**4 pixels
#: Share of an archive's groups whose MS-SSIM is measured by default (docs/performance.md).
DEFAULT_METRICS_FRACTION = 0.1


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
    diff = reference.astype(np.int32) - decoded.astype(np.int32)  # exact: squares of 8-bit differences fit
    mse = float(np.mean(np.square(diff, dtype=np.int64)))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


# --- MS-SSIM --------------------------------------------------------------------------------------


def ms_ssim_scales(height: int, width: int) -> int:
    """How many of the five scales an image of this size has (``s`` need a side > 10·2^(s-1))."""
    side = min(height, width)
    scales = 0
    while scales < len(MS_SSIM_WEIGHTS) and side > (MS_SSIM_WINDOW - 1) * 2**scales:
        scales += 1
    return scales


def _window(device: torch.device) -> torch.Tensor:
    x = torch.arange(MS_SSIM_WINDOW, dtype=torch.float32, device=device) - MS_SSIM_WINDOW // 2
    g = torch.exp(-(x**2) / (2 * MS_SSIM_SIGMA**2))
    return g / g.sum()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable valid-mode Gaussian filter of every channel of (N, C, H, W); a side shorter than
    the window is not filtered (pytorch-msssim's rule, which the five-scale minimum relies on)."""
    c = x.shape[1]
    x = x.contiguous(memory_format=torch.channels_last)  # depthwise convolutions: ~3x faster on CPU
    if x.shape[-1] >= MS_SSIM_WINDOW:
        x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, MS_SSIM_WINDOW), groups=c)
    if x.shape[-2] >= MS_SSIM_WINDOW:
        x = F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, MS_SSIM_WINDOW, 1), groups=c)
    return x


def _ssim_terms(
    x: torch.Tensor, y: torch.Tensor, g: torch.Tensor, data_range: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image-and-channel mean SSIM and mean contrast-structure, each (N, C)."""
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    c = x.shape[1]
    # the five local statistics through one grouped convolution per direction
    mu_x, mu_y, xx, yy, xy = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), g).split(c, dim=1)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    cs = (2 * (xy - mu_xy) + c2) / ((xx - mu_xx) + (yy - mu_yy) + c2)
    luminance = (2 * mu_xy + c1) / (mu_xx + mu_yy + c1)
    return (luminance * cs).flatten(2).mean(-1), cs.flatten(2).mean(-1)


def ms_ssim_tensor(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, scales: int | None = 5) -> torch.Tensor:
    """MS-SSIM of each image of ``(..., C, H, W)`` tensors, shape ``x.shape[:-3]``, float32,
    differentiable.

    ``scales=5``: the standard metric; raises ``ValueError`` for a side under 161 pixels.
    ``scales=None``: as many scales as fit (the training loss on small crops), weights
    renormalised; raises ``ValueError`` when not even two fit (a side under 21 pixels).
    """
    lead = x.shape[:-3]
    height, width = x.shape[-2], x.shape[-1]
    fit = ms_ssim_scales(height, width)
    wanted = fit if scales is None else scales
    least = 2 if scales is None else scales
    if fit < least:
        side = (MS_SSIM_WINDOW - 1) * 2 ** (least - 1) + 1
        raise ValueError(
            f"MS-SSIM over {least} scales needs images of at least {side}x{side} pixels, got {height}x{width}"
        )
    x = x.reshape(-1, *x.shape[-3:]).float()
    y = y.reshape(-1, *y.shape[-3:]).float()
    weights = torch.tensor(MS_SSIM_WEIGHTS[:wanted], dtype=torch.float32, device=x.device)
    weights = weights / weights.sum()
    g = _window(x.device)
    with torch.autocast(x.device.type, enabled=False):
        values = []
        for scale in range(wanted):
            ssim, cs = _ssim_terms(x, y, g, data_range)
            values.append(torch.relu(ssim if scale == wanted - 1 else cs))
            if scale < wanted - 1:
                padding = (x.shape[-2] % 2, x.shape[-1] % 2)
                x = F.avg_pool2d(x, kernel_size=2, padding=padding)
                y = F.avg_pool2d(y, kernel_size=2, padding=padding)
        stacked = torch.stack(values, dim=-1)  # (N, C, scales)
        result = torch.prod(stacked**weights, dim=-1).mean(dim=1)
    return result.reshape(lead)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Small convolutions gain nothing from more threads; on a busy machine two spinning
    threads made them 20 times slower."""
    threads = torch.get_num_threads()
    if threads != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads != 1:
            torch.set_num_threads(threads)


def views_ms_ssim(reference: np.ndarray, decoded: np.ndarray) -> list[float]:
    """Five-scale MS-SSIM of each view of two ``(K, H, W, 3)`` uint8 groups, in one batch;
    NaN for every view when a side is under 161 pixels."""
    if min(reference.shape[1:3]) < MS_SSIM_MIN_SIDE:
        return [math.nan] * reference.shape[0]
    a = torch.from_numpy(np.ascontiguousarray(reference)).permute(0, 3, 1, 2).float()
    b = torch.from_numpy(np.ascontiguousarray(decoded)).permute(0, 3, 1, 2).float()
    with _one_thread(), torch.no_grad():
        values = ms_ssim_tensor(a, b, data_range=255.0)
    return [float(v) for v in values.double().clamp(max=1.0)]


def ms_ssim(reference: np.ndarray, decoded: np.ndarray) -> float:
    """MS-SSIM of one (H, W, 3) 8-bit image; NaN when a side is too small for five scales."""
    return views_ms_ssim(reference[None], decoded[None])[0]


# --- per-group metrics ------------------------------------------------------------------------------


def measured_for_quality(name: str, fraction: float) -> bool:
    """Whether the group ``name`` gets the costly quality metric (MS-SSIM) at this sampled
    ``fraction``: decided by a hash of the name, so a rerun or a resumed run picks the same groups
    and the choice does not depend on shard boundaries. 1.0 measures every group, 0.0 none."""
    if fraction >= 1.0:
        return True
    if fraction <= 0.0:
        return False
    value = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") / 2.0**64
    return value < fraction


def group_metrics(reference: np.ndarray, decoded: np.ndarray, total_bytes: int,
                  with_ms_ssim: bool = True) -> dict[str, float]:
    """Per-group metrics over (K, H, W, 3) views: bpp over all pixels, mean per-view PSNR and
    MS-SSIM (NaN when not measured: ``with_ms_ssim=False`` or views too small)."""
    pixels = reference.shape[0] * reference.shape[1] * reference.shape[2]
    ms = views_ms_ssim(reference, decoded) if with_ms_ssim else [math.nan]
    return {
        "bytes": float(total_bytes),
        "bpp": 8.0 * total_bytes / pixels,
        "psnr": float(np.mean([psnr(r, d) for r, d in zip(reference, decoded)])),
        "ms_ssim": float(np.mean(ms)),
    }
