"""A trained codec's rate-distortion point measured with real bytes (and the model's estimate)."""

from __future__ import annotations

import numpy as np
import torch

from mvarchive.codecs import MultiViewCodec
from mvarchive.codecs.padding import pad_to_multiple
from mvarchive.datasets import DatasetIndex, load_group
from mvarchive.metrics import group_metrics, psnr, to_tensor, to_uint8
from mvarchive.training.loss import bits_per_view


@torch.no_grad()
def estimated_view_bits(codec: MultiViewCodec, views: torch.Tensor) -> torch.Tensor:
    """The model's estimate of each view's bits, (K,), for one group (see :func:`estimated_bits`)."""
    padded = pad_to_multiple(views, codec.pad_multiple)
    return bits_per_view(codec(padded[None])["likelihoods"])[0].double()


@torch.no_grad()
def estimated_bits(codec: MultiViewCodec, views: torch.Tensor) -> float:
    """The model's estimate of the bits needed to code one group ``(K, 3, H, W)``.

    The forward pass runs on the group padded to ``codec.pad_multiple``, exactly as
    :meth:`MultiViewCodec.compress` codes it: the padded border is part of what the
    bitstream carries, so its bits are counted. Divide by the *original* pixels, as the real
    bpp does, so that the estimate and the measured bpp price the same thing (the bits the
    archive stores per pixel the user gave).
    """
    return float(estimated_view_bits(codec, views).sum())


@torch.no_grad()
def rd_point(codec: MultiViewCodec, index: DatasetIndex, max_groups: int = 8,
             storage_options: dict | None = None) -> dict[str, float]:
    """bpp from real bitstreams and from the likelihoods, PSNR and MS-SSIM over up to
    ``max_groups`` groups (the first ones, so the same groups every time); ``mse`` is the
    mean squared error on [0, 1] over all pixels (the distortion of the RD cost
    ``bpp + λ·mse``), and ``view{k}/psnr``, ``view{k}/bpp_estimated`` give each view's
    balance (the real bitstream is one per group, so per-view bits are the model's estimate).

    Groups of any size are measured: both the real coding and the estimate work on the group
    padded to the codec's ``pad_multiple``, and both bpp values are bits over the original
    (unpadded) pixels of all views (see :func:`estimated_bits`).
    """
    codec.eval()
    device = next(codec.parameters()).device
    rows = []
    view_bits = np.zeros(0)  # per view, summed over groups (sized by the first group)
    view_pixels = 0
    squared_error = 0.0
    view_psnr: list[np.ndarray] = []
    for group in index.groups[:max_groups]:
        views = load_group(group, storage_options)  # (K, H, W, 3)
        x = to_tensor(views).to(device)
        compressed = codec.compress(x)
        if compressed.x_hat is None:
            raise RuntimeError(f"group {group.name}: the encoder returned no reconstruction")
        decoded = to_uint8(compressed.x_hat.cpu())
        rows.append(group_metrics(views, decoded, len(compressed.data)))
        bits = estimated_view_bits(codec, x).cpu().numpy()
        view_bits = bits if view_bits.size == 0 else view_bits + bits
        view_pixels += views.shape[1] * views.shape[2]
        errors = (views.astype(np.float64) - decoded.astype(np.float64)) ** 2
        squared_error += float(errors.sum()) / 255.0**2
        view_psnr.append(np.array([psnr(r, d) for r, d in zip(views, decoded)]))
    if not rows:
        raise ValueError(f"dataset {index.url} has no groups to evaluate")
    pixels = view_pixels * len(view_psnr[0])
    ms = [r["ms_ssim"] for r in rows if np.isfinite(r["ms_ssim"])]
    point = {
        "groups": float(len(rows)),
        "bpp": 8.0 * sum(r["bytes"] for r in rows) / pixels,
        "bpp_estimated": float(np.sum(view_bits)) / pixels,
        "psnr": float(np.mean([r["psnr"] for r in rows])),
        "ms_ssim": float(np.mean(ms)) if ms else float("nan"),
        "mse": squared_error / (3 * pixels),
    }
    for k, (bits, quality) in enumerate(zip(view_bits, np.mean(view_psnr, axis=0))):
        point[f"view{k}/bpp_estimated"] = float(bits) / view_pixels
        point[f"view{k}/psnr"] = float(quality)
    return point
