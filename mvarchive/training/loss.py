"""Rate-distortion losses, in each paper's convention, with every view's rate and quality.

``lmbda`` is always in LDMIC's convention, so one λ means the same trade-off for every codec
and a sweep's λ list is shared (see ``architectures.md``, "Rate–distortion loss conventions"):

* ``metric="mse"``: ``λ · mean_v MSE_v + mean_v bpp_v`` with MSE on [0, 1] images
  (LDMIC, BiSIC, CAMSIC; λ ∈ {256 … 4096}). MLIC++/VEMIC write ``λ' · 255² · MSE + bpp``:
  the same loss with ``λ = 255² λ'`` (their 0.0067 … 0.0483 is 436 … 3141 here).
* ``metric="ms-ssim"``: ``λ · mean_v (1 − MS-SSIM_v) + mean_v bpp_v`` (LDMIC/CAMSIC, λ ∈ {8 … 256};
  MS-SSIM from :mod:`mvarchive.metrics`, fewer scales on crops under 161 pixels).
* ECSIC (``normalization="ecsic"``, MSE only): ``(bpp + λ_E · MSE₂₅₅) / (1 + λ_E)`` with
  ``λ_E = λ / 255²`` (:func:`ecsic_lambda`; ECSIC's default 0.01 is λ = 650 here) and bpp the
  bits of both views over both views' pixels. The minimiser is that of the LDMIC form; the
  ``1 / (1 + λ_E)`` scale is what ECSIC's gradient clipping and learning rate were tuned for.
  ECSIC published MSE models only, so ECSIC with ``metric="ms-ssim"`` uses the LDMIC form.

Every loss also returns each view's estimated bpp and PSNR (``view_bpp``, ``view_mse``,
shape (K,)), so an imbalance between views (one view starving the other of bits) shows up.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .msssim import ms_ssim  # mvarchive.metrics.ms_ssim_tensor over the scales that fit


def bits_per_view(likelihoods: dict[str, torch.Tensor]) -> torch.Tensor:
    """Estimated bits of each view, (B, K), from likelihoods shaped (B, K, ...)."""
    return sum(
        (-torch.log2(lik.float().clamp_min(1e-9))).flatten(2).sum(dim=2) for lik in likelihoods.values()
    )  # type: ignore[return-value]


def ecsic_lambda(lmbda: float) -> float:
    """ECSIC's λ (distortion on the 0–255 scale) for mvarchive's λ (distortion on [0, 1])."""
    return lmbda / 255.0**2


def loss_normalization(codec: str) -> str:
    """"ecsic" for ECSIC (its own normalised loss), "ldmic" for every other codec."""
    return "ecsic" if codec == "ecsic" else "ldmic"


class RateDistortionLoss(nn.Module):
    """The training loss of one batch; see the module docstring for the conventions."""

    def __init__(self, lmbda: float, metric: str = "mse", normalization: str = "ldmic") -> None:
        super().__init__()
        if metric not in ("mse", "ms-ssim"):
            raise ValueError(f"unknown training metric {metric!r}; known: mse, ms-ssim")
        if normalization not in ("ldmic", "ecsic"):
            raise ValueError(f"unknown loss normalization {normalization!r}; known: ldmic, ecsic")
        self.lmbda = lmbda
        self.metric = metric
        self.normalization = normalization if metric == "mse" else "ldmic"

    def forward(self, output: dict, target: torch.Tensor) -> dict[str, torch.Tensor]:
        pixels = target.shape[-2] * target.shape[-1]
        x_hat = output["x_hat"].float()
        bpp = bits_per_view(output["likelihoods"]) / pixels  # (B, K)
        mse = (x_hat - target).pow(2).flatten(2).mean(dim=2)  # (B, K)
        result = {"bpp": bpp.mean(), "mse": mse.mean(), "view_bpp": bpp.detach().mean(0),
                  "view_mse": mse.detach().mean(0)}
        if self.metric == "ms-ssim":
            similarity = ms_ssim(x_hat, target)  # (B, K)
            result["ms_ssim"] = similarity.mean()
            result["loss"] = self.lmbda * (1.0 - similarity).mean() + bpp.mean()
        elif self.normalization == "ecsic":
            lam = ecsic_lambda(self.lmbda)
            result["loss"] = (bpp.mean() + lam * 255.0**2 * mse.mean()) / (1.0 + lam)
        else:
            result["loss"] = self.lmbda * mse.mean() + bpp.mean()
        return result
