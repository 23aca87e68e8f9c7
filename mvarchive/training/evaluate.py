"""A trained codec's rate-distortion point measured with real bytes (and the model's estimate)."""

from __future__ import annotations

import numpy as np
import torch

from mvarchive.codecs import MultiViewCodec
from mvarchive.datasets import DatasetIndex, load_group
from mvarchive.metrics import group_metrics, to_tensor, to_uint8
from mvarchive.training.loss import bits_per_view


@torch.no_grad()
def rd_point(codec: MultiViewCodec, index: DatasetIndex, max_groups: int = 8,
             storage_options: dict | None = None) -> dict[str, float]:
    """bpp from real bitstreams and from the likelihoods, PSNR and MS-SSIM over up to
    ``max_groups`` groups (the first ones, so the same groups every time)."""
    codec.eval()
    rows = []
    estimated_bits = 0.0
    for group in index.groups[:max_groups]:
        views = load_group(group, storage_options)
        x = to_tensor(views)
        compressed = codec.compress(x)
        rows.append(group_metrics(views, to_uint8(compressed.x_hat), len(compressed.data)))
        estimated_bits += float(bits_per_view(codec(x[None])["likelihoods"]).sum())
    pixels = sum(8.0 * r["bytes"] / r["bpp"] for r in rows)
    ms = [r["ms_ssim"] for r in rows if np.isfinite(r["ms_ssim"])]
    return {
        "groups": float(len(rows)),
        "bpp": 8.0 * sum(r["bytes"] for r in rows) / pixels,
        "bpp_estimated": estimated_bits / pixels,
        "psnr": float(np.mean([r["psnr"] for r in rows])),
        "ms_ssim": float(np.mean(ms)) if ms else float("nan"),
    }
