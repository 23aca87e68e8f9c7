"""Rate-distortion loss: lambda * mean-over-views MSE + mean-over-views bpp (LDMIC's form)."""

from __future__ import annotations

import torch
import torch.nn as nn


def bits_per_view(likelihoods: dict[str, torch.Tensor]) -> torch.Tensor:
    """Estimated bits of each view, (B, K), from likelihoods shaped (B, K, ...)."""
    return sum(
        (-torch.log2(lik.clamp_min(1e-9))).flatten(2).sum(dim=2) for lik in likelihoods.values()
    )  # type: ignore[return-value]


class RateDistortionLoss(nn.Module):
    """MSE on [0, 1] images, as in LDMIC's training code (lambda in {256, ..., 4096})."""

    def __init__(self, lmbda: float) -> None:
        super().__init__()
        self.lmbda = lmbda

    def forward(self, output: dict, target: torch.Tensor) -> dict[str, torch.Tensor]:
        pixels = target.shape[-2] * target.shape[-1]
        bpp = bits_per_view(output["likelihoods"]) / pixels  # (B, K)
        mse = (output["x_hat"] - target).pow(2).flatten(2).mean(dim=2)  # (B, K)
        loss = self.lmbda * mse.mean() + bpp.mean()
        return {"loss": loss, "bpp": bpp.mean(), "mse": mse.mean()}
