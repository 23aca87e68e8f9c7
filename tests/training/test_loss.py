"""Training losses: MS-SSIM against a reference implementation, ECSIC's normalisation, per-view balance."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from pytorch_msssim import ms_ssim as reference_ms_ssim

from mvarchive.training import TrainConfig, train_codec_loop
from mvarchive.training.loss import RateDistortionLoss, ecsic_lambda
from mvarchive.training.msssim import ms_ssim, msssim_scales

from .odd_sizes import LAYOUT

pytestmark = pytest.mark.usefixtures("one_thread")


def _photo_pair(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    import skimage.data as skdata

    image = torch.from_numpy(skdata.astronaut()[:size, 100 : 100 + size].astype(np.float32) / 255.0)
    x = image.permute(2, 0, 1)[None]
    noisy = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    return x, noisy


def test_ms_ssim_matches_the_reference_at_five_scales():
    x, y = _photo_pair(192)
    assert msssim_scales(192, 192) == 5
    ours = ms_ssim(x, y)
    assert ours.shape == (1,) and 0.5 < float(ours) < 0.99
    assert float(ours) == pytest.approx(float(reference_ms_ssim(x, y, data_range=1.0)), abs=1e-5)
    assert float(ms_ssim(x, x)) == pytest.approx(1.0, abs=1e-6)


def test_ms_ssim_is_differentiable_and_uses_fewer_scales_on_small_crops():
    x, y = _photo_pair(64)
    assert msssim_scales(64, 64) == 3 and msssim_scales(175, 400) == 5 and msssim_scales(21, 21) == 2
    y = y.clone().requires_grad_(True)
    value = ms_ssim(x[:, None], y[:, None])  # (B, K) images
    assert value.shape == (1, 1)
    value.sum().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="21x21"):
        ms_ssim(x[..., :20, :20], x[..., :20, :20])


def _fake_output(x: torch.Tensor) -> tuple[dict, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x_hat = (x + 0.1 * torch.randn(x.shape, generator=gen)).requires_grad_(True)
    likelihoods = {"y": torch.rand(x.shape[0], x.shape[1], 8, 4, 4, generator=gen) * 0.9 + 0.05}
    return {"x_hat": x_hat, "likelihoods": likelihoods}, x_hat


def test_ecsic_normalisation_is_the_ldmic_loss_scaled():
    x = torch.rand(2, 2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    output, x_hat = _fake_output(x)
    with torch.no_grad():
        ldmic = RateDistortionLoss(650.25, "mse", "ldmic")(output, x)
        ecsic = RateDistortionLoss(650.25, "mse", "ecsic")(output, x)
    lam = ecsic_lambda(650.25)
    assert lam == pytest.approx(0.01)  # ECSIC's default λ
    mse255 = float(((x_hat.detach() - x) * 255).pow(2).mean())
    assert float(ecsic["loss"]) == pytest.approx((float(ecsic["bpp"]) + lam * mse255) / (1 + lam), rel=1e-5)
    assert float(ecsic["loss"]) == pytest.approx(float(ldmic["loss"]) / (1 + lam), rel=1e-5)
    # per-view balance: each view's bits over its own pixels, averaged over the batch
    assert ecsic["view_bpp"].shape == (2,) and float(ecsic["view_bpp"].mean()) == pytest.approx(float(ecsic["bpp"]))


def test_ms_ssim_loss_uses_the_papers_form():
    x = torch.rand(1, 2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    output, _ = _fake_output(x)
    with torch.no_grad():
        losses = RateDistortionLoss(16.0, "ms-ssim")(output, x)
    assert float(losses["loss"]) == pytest.approx(16.0 * (1 - float(losses["ms_ssim"])) + float(losses["bpp"]))


def test_training_reports_each_views_rate_and_quality(odd_data, tmp_path):
    logged: list[dict] = []
    config = TrainConfig(dataset=str(odd_data), output_dir=str(tmp_path), codec="ldmic-fast", preset="tiny",
                         steps=2, batch_size=1, crop=64, layout=LAYOUT, metric="ms-ssim", lmbda=16.0)
    result = train_codec_loop(config, on_log=lambda step, m: logged.append(m))
    final = result.final
    assert {"view0/bpp", "view1/bpp", "view0/psnr", "view1/psnr", "ms_ssim", "lr"} <= set(final)
    assert final["bpp"] == pytest.approx((final["view0/bpp"] + final["view1/bpp"]) / 2, rel=1e-5)
    assert final["loss"] == pytest.approx(16.0 * (1 - final["ms_ssim"]) + final["bpp"], rel=1e-5)
    assert result.per_view == {"view0": {"bpp": final["view0/bpp"], "psnr": final["view0/psnr"]},
                               "view1": {"bpp": final["view1/bpp"], "psnr": final["view1/psnr"]}}
    assert logged[-1] == final and all(math.isfinite(v) for v in final.values())
    with pytest.raises(ValueError, match="training metric must be one of mse, ms-ssim, got 'ssim'"):
        dataclasses.replace(config, metric="ssim")
