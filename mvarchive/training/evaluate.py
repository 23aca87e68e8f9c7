"""A trained codec's rate-distortion point measured with real bytes (and the model's estimate)."""

from __future__ import annotations

import numpy as np
import torch

from mvarchive.codecs import MultiViewCodec
from mvarchive.codecs.padding import pad_to_multiple
from mvarchive.datasets import DatasetIndex, load_group
from mvarchive.metrics import group_metrics, to_tensor, to_uint8
from mvarchive.training.loss import bits_per_view


@torch.no_grad()
def estimated_bits(codec: MultiViewCodec, views: torch.Tensor) -> float:
    """The model's estimate of the bits needed to code one group ``(K, 3, H, W)``.

    The forward pass runs on the group padded to ``codec.pad_multiple``, exactly as
    :meth:`MultiViewCodec.compress` codes it: the padded border is part of what the
    bitstream carries, so its bits are counted. Divide by the *original* pixels, as the real
    bpp does, so that the estimate and the measured bpp price the same thing (the bits the
    archive stores per pixel the user gave).
    """
    padded = pad_to_multiple(views, codec.pad_multiple)
    return float(bits_per_view(codec(padded[None])["likelihoods"]).sum())


@torch.no_grad()
def rd_point(codec: MultiViewCodec, index: DatasetIndex, max_groups: int = 8,
             storage_options: dict | None = None) -> dict[str, float]:
    """bpp from real bitstreams and from the likelihoods, PSNR and MS-SSIM over up to
    ``max_groups`` groups (the first ones, so the same groups every time).

    Groups of any size are measured: both the real coding and the estimate work on the group
    padded to the codec's ``pad_multiple``, and both bpp values are bits over the original
    (unpadded) pixels of all views (see :func:`estimated_bits`).
    """
    codec.eval()
    device = next(codec.parameters()).device
    rows = []
    estimated = 0.0
    pixels = 0
    for group in index.groups[:max_groups]:
        views = load_group(group, storage_options)  # (K, H, W, 3)
        x = to_tensor(views).to(device)
        compressed = codec.compress(x)
        rows.append(group_metrics(views, to_uint8(compressed.x_hat.cpu()), len(compressed.data)))
        estimated += estimated_bits(codec, x)
        pixels += views.shape[0] * views.shape[1] * views.shape[2]
    if not rows:
        raise ValueError(f"dataset {index.url} has no groups to evaluate")
    ms = [r["ms_ssim"] for r in rows if np.isfinite(r["ms_ssim"])]
    return {
        "groups": float(len(rows)),
        "bpp": 8.0 * sum(r["bytes"] for r in rows) / pixels,
        "bpp_estimated": estimated / pixels,
        "psnr": float(np.mean([r["psnr"] for r in rows])),
        "ms_ssim": float(np.mean(ms)) if ms else float("nan"),
    }
