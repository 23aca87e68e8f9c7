"""The project's one MS-SSIM (against pytorch-msssim, gradients, small images), the sampled
quality metrics and summaries over measured groups only."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from pytorch_msssim import ms_ssim as reference_ms_ssim
from skimage import data as skdata

from mvarchive.metrics import (
    MS_SSIM_MIN_SIDE,
    group_metrics,
    measured_for_quality,
    ms_ssim,
    ms_ssim_scales,
    ms_ssim_tensor,
    psnr,
    views_ms_ssim,
)
from mvarchive.reporting import table_summary
from mvarchive.storage import METRIC_COLUMNS
from mvarchive.training.msssim import ms_ssim as training_ms_ssim

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _views(height: int, width: int, noise: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping photo crops and a noisy copy of each, uint8 (K=2, H, W, 3)."""
    photo = skdata.astronaut()
    views = np.stack([photo[:height, :width], photo[20 : 20 + height, 30 : 30 + width]])
    rng = np.random.default_rng(0)
    noisy = np.clip(views.astype(np.int16) + rng.integers(-noise, noise + 1, views.shape), 0, 255).astype(np.uint8)
    return views, noisy


@pytest.mark.parametrize("size", [(161, 161), (170, 215), (194, 176)])
def test_ms_ssim_agrees_with_pytorch_msssim(size):
    """Batched float32 against pytorch-msssim (what archives stored), view by view, within 1e-4;
    161-175 px sides exercise the skipped blur at the coarsest scale, odd sides the padding."""
    views, noisy = _views(*size)
    ours = views_ms_ssim(views, noisy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pytorch-msssim warns when it skips the blur
        a = torch.from_numpy(views).permute(0, 3, 1, 2).double()
        b = torch.from_numpy(noisy).permute(0, 3, 1, 2).double()
        want = reference_ms_ssim(a, b, data_range=255.0, size_average=False).tolist()
    assert all(0.5 < w < 0.99 for w in want)
    assert ours == pytest.approx(want, abs=1e-4)
    assert ms_ssim(views[1], noisy[1]) == pytest.approx(ours[1], abs=1e-6)  # one view = one row of the batch
    assert views_ms_ssim(views, views) == pytest.approx([1.0, 1.0], abs=1e-6)


def test_small_views_are_nan_for_the_metric_and_fewer_scales_for_training():
    views, noisy = _views(MS_SSIM_MIN_SIDE - 1, 200)
    assert all(math.isnan(v) for v in views_ms_ssim(views, noisy))
    assert [ms_ssim_scales(s, 500) for s in (20, 21, 41, 81, 160, 161)] == [1, 2, 3, 4, 4, 5]
    x = torch.from_numpy(views).permute(0, 3, 1, 2).float() / 255
    with pytest.raises(ValueError, match="161x161"):
        ms_ssim_tensor(x, x)
    assert training_ms_ssim(x, x).shape == (2,)  # four scales, renormalised
    with pytest.raises(ValueError, match="21x21"):
        training_ms_ssim(x[..., :20, :20], x[..., :20, :20])


def test_training_loss_is_the_metric_and_differentiable():
    views, noisy = _views(168, 168)
    x = torch.from_numpy(views).permute(0, 3, 1, 2).float() / 255
    y = (torch.from_numpy(noisy).permute(0, 3, 1, 2).float() / 255).requires_grad_(True)
    value = training_ms_ssim(x[None], y[None])  # (B, K) groups of views
    assert value.shape == (1, 2)
    assert value.detach().flatten().tolist() == pytest.approx(views_ms_ssim(views, noisy), abs=1e-4)
    value.sum().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    # a gradient step along it raises the similarity: the gradient is the metric's
    with torch.no_grad():
        better = training_ms_ssim(x[None], (y + 1e-3 * y.grad.sign()).clamp(0, 1)[None])
    assert float(better.sum()) > float(value.detach().sum())


def test_sampled_groups_are_chosen_by_name():
    names = [f"group-{i:04d}" for i in range(2000)]
    picked = [n for n in names if measured_for_quality(n, 0.1)]
    assert 150 < len(picked) < 250  # about a tenth
    assert picked == [n for n in names if measured_for_quality(n, 0.1)]  # the same on every call
    assert set(picked) <= {n for n in names if measured_for_quality(n, 0.5)}  # a larger fraction adds groups
    assert all(measured_for_quality(n, 1.0) for n in names[:50])
    assert not any(measured_for_quality(n, 0.0) for n in names[:50])


def test_group_metrics_without_ms_ssim_keep_psnr_and_bpp():
    views, noisy = _views(176, 176)
    full = group_metrics(views, noisy, 1000)
    cheap = group_metrics(views, noisy, 1000, with_ms_ssim=False)
    assert math.isnan(cheap["ms_ssim"]) and 0.5 < full["ms_ssim"] < 1
    assert cheap["psnr"] == full["psnr"] == pytest.approx(np.mean([psnr(a, b) for a, b in zip(views, noisy)]))
    assert cheap["bpp"] == full["bpp"] == pytest.approx(8000 / (2 * 176 * 176))


def test_summaries_average_measured_groups_only():
    rows = [{"bytes": 100.0, "bpp": 0.5, "psnr": 30.0, "ms_ssim": 0.9, "encode_s": 1.0},
            {"bytes": 300.0, "bpp": 1.5, "psnr": 34.0, "ms_ssim": math.nan, "encode_s": 1.0},
            {"bytes": 200.0, "bpp": 1.0, "psnr": 32.0, "ms_ssim": 0.8, "encode_s": 1.0}]
    table = np.array([[r[c] for c in METRIC_COLUMNS] for r in rows])
    summary = table_summary(table, METRIC_COLUMNS, cameras=2)
    assert summary["ms_ssim"] == pytest.approx(0.85) and summary["ms_ssim_groups"] == 2
    assert summary["psnr"] == pytest.approx(32.0) and summary["groups"] == 3
    assert summary["bpp"] == pytest.approx(1.0)  # over all pixels: 8 * 600 bytes / 4800 pixels
    none = table_summary(table[1:2], METRIC_COLUMNS, cameras=2)
    assert math.isnan(none["ms_ssim"]) and none["ms_ssim_groups"] == 0
