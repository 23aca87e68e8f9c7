"""Spatial context models for a Gaussian-conditional latent (one latent per view).

Both models share one contract so a codec picks either by configuration. ``run(quantizer,
hyper, y)`` is the model's one schedule (:mod:`.schedules`); the three entry points differ
only in the quantizer they hand it (:mod:`.quantizer`):

* ``forward(y, hyper, gc)`` -> ``(y_hat, likelihoods)`` for training: the rate uses noisy
  ``y`` (via ``gc``), ``y_hat = round(y - mu) + mu`` with a straight-through gradient.
* ``encode(y, hyper, gc)`` -> ``(symbols, y_hat, streams)``; ``decode(hyper, gc, streams)``
  -> ``(symbols, y_hat)``. Batch element ``n`` is coded into stream ``n``, so one rANS
  stream per view. Encoder and decoder run the very same tensor operations in the same order
  (through one :class:`.quantizer.RansQuantizer`), which is what makes decoding exact.

:class:`AutoregressiveGaussianContext` is the serial raster-scan model of Minnen et al. 2018
(5x5 masked convolution, mask type A); :class:`CheckerboardGaussianContext` is the two-pass
model of He et al. 2021 (anchors where row+col is odd are coded from the hyperprior alone,
then the rest with a checkerboard-masked 5x5 convolution over the decoded anchors).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.entropy_models import GaussianConditional

from .exact import exact_entropy_active
from .quantizer import Quantizer, RansQuantizer, STEQuantizer
from .schedules import checkerboard, raster


class MaskedConv2d(nn.Conv2d):
    """A k x k convolution whose taps outside a fixed mask are zero ("raster" or "checkerboard")."""

    mask: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        mask = torch.zeros(kernel_size, kernel_size)
        center = kernel_size // 2
        if mask_type == "raster":  # PixelCNN type A: strictly earlier raster positions
            mask[:center, :] = 1
            mask[center, :center] = 1
        elif mask_type == "checkerboard":  # taps at odd Manhattan distance from the centre
            rows, cols = torch.meshgrid(torch.arange(kernel_size), torch.arange(kernel_size), indexing="ij")
            mask[(rows + cols) % 2 == 1] = 1
        else:
            raise ValueError(f"mask_type must be 'raster' or 'checkerboard', got {mask_type!r}")
        self.register_buffer("mask", mask[None, None], persistent=False)

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.masked_weight(), self.bias, padding=self.padding)


def entropy_parameters_net(in_channels: int, latent_channels: int) -> nn.Sequential:
    """1x1 convs in -> 10/12 in -> 8/12 in -> 2M (LDMIC/mbt2018 entropy-parameter network)."""
    hidden1 = in_channels * 10 // 12
    hidden2 = in_channels * 8 // 12
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden1, 1),
        nn.LeakyReLU(inplace=True),
        nn.Conv2d(hidden1, hidden2, 1),
        nn.LeakyReLU(inplace=True),
        nn.Conv2d(hidden2, 2 * latent_channels, 1),
    )


class GaussianContextModel(nn.Module):
    """Context convolution + entropy-parameter network predicting (scales, means) of y."""

    mask_type = "raster"

    def __init__(self, latent_channels: int, hyper_channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.latent_channels = latent_channels
        self.kernel_size = kernel_size
        self.context = MaskedConv2d(latent_channels, 2 * latent_channels, kernel_size, self.mask_type)
        self.entropy_parameters = entropy_parameters_net(hyper_channels + 2 * latent_channels, latent_channels)

    def params(self, hyper: torch.Tensor, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scales, means = self.entropy_parameters(torch.cat([hyper, ctx], dim=1)).chunk(2, dim=1)
        return scales, means

    def run(
        self, quantizer: Quantizer, hyper: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's schedule: (y_hat, what ``quantizer`` recorded), for training and coding alike."""
        raise NotImplementedError

    def forward(
        self, y: torch.Tensor, hyper: torch.Tensor, gc: GaussianConditional
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: (y_hat, likelihoods of y)."""
        return self.run(STEQuantizer(gc), hyper, y)

    def encode(
        self, y: torch.Tensor, hyper: torch.Tensor, gc: GaussianConditional
    ) -> tuple[torch.Tensor, torch.Tensor, list[bytes]]:
        quantizer = RansQuantizer.encoding(gc, y.shape[0])
        y_hat, symbols = self.run(quantizer, hyper, y)
        return symbols, y_hat, quantizer.flush()

    def decode(
        self, hyper: torch.Tensor, gc: GaussianConditional, streams: Sequence[bytes]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        y_hat, symbols = self.run(RansQuantizer.decoding(gc, streams), hyper)
        return symbols, y_hat


class AutoregressiveGaussianContext(GaussianContextModel):
    """Serial raster-scan context: (h*w) coding steps per latent, all views in one batch."""

    mask_type = "raster"

    def run(self, quantizer, hyper, y=None):
        step = _Float64Step(self) if exact_entropy_active() and hyper.dtype == torch.float32 else None
        weight, bias = self.context.masked_weight(), self.context.bias

        def step_params(i: int, j: int, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            here = hyper[:, :, i : i + 1, j : j + 1]
            if step is not None:
                return step(window, here)
            return self.params(here, F.conv2d(window, weight, bias))

        def parallel_params(y_rounded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.params(hyper, self.context(y_rounded))

        return raster(quantizer, y, hyper, self.latent_channels, self.kernel_size, step_params, parallel_params)


class _Float64Step:
    """One raster step of :class:`AutoregressiveGaussianContext` under the float64 policy,
    without its per-operation cost.

    :class:`.exact.Float64Mode` upcasts the inputs of every convolution (the masked context
    weight, not a parameter, on every step), runs it in float64 and rounds the result to
    float32; here the weights are upcast once and the same float64 convolutions are called
    directly, each result rounded to float32 as the mode does, with the mode's dispatch
    switched off: the same ATen calls on the same values, so the same bits, for a fraction
    of the Python work of the ~3,300 steps per 832x1024 view.
    """

    def __init__(self, model: AutoregressiveGaussianContext) -> None:
        bias = model.context.bias
        self.context = (model.context.masked_weight().double(), None if bias is None else bias.double())
        self.layers: list[tuple[torch.Tensor, torch.Tensor | None] | nn.Module] = []
        for layer in model.entropy_parameters:
            if isinstance(layer, nn.Conv2d):
                self.layers.append((layer.weight.double(), None if layer.bias is None else layer.bias.double()))
            elif isinstance(layer, nn.LeakyReLU):
                self.layers.append(layer)
            else:
                raise ValueError(f"unexpected layer in the entropy-parameter network: {layer}")

    def __call__(self, window: torch.Tensor, hyper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch._C.DisableTorchFunction():
            x = torch.cat([hyper, F.conv2d(window.double(), *self.context).float()], dim=1)
            for layer in self.layers:
                x = F.conv2d(x.double(), *layer).float() if isinstance(layer, tuple) else layer(x)
        scales, means = x.chunk(2, dim=1)
        return scales, means


class CheckerboardGaussianContext(GaussianContextModel):
    """Two-pass checkerboard context: anchors from the hyperprior, then non-anchors."""

    mask_type = "checkerboard"

    def _anchor_params(self, hyper):
        zeros = hyper.new_zeros(hyper.shape[0], 2 * self.latent_channels, *hyper.shape[2:])
        return self.params(hyper, zeros)

    def run(self, quantizer, hyper, y=None):
        # Full maps on purpose: computing only each pass's positions (pointwise / conv_at, the
        # same bits) measured slower at 832x1024 end to end (see benchmarks/results/codec_speed.md).
        def anchor_params(part: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            scales, means = self._anchor_params(hyper)
            return scales[:, :, part], means[:, :, part]

        def nonanchor_params(part: torch.Tensor, anchors_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            scales, means = self.params(hyper, self.context(anchors_hat))
            return scales[:, :, part], means[:, :, part]

        return checkerboard(quantizer, y, hyper, self.latent_channels, anchor_params, nonanchor_params)

    def _context_at(self, y_hat: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
        """The masked context convolution at the positions ``part`` only: (n, 2M, positions)."""
        return conv_at(y_hat, self.context.masked_weight(), self.context.bias, part)


def conv_at(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, part: torch.Tensor) -> torch.Tensor:
    """A stride-1, 'same'-padded convolution evaluated at the positions ``part`` (an (h, w)
    bool mask) only: (n, Cout, positions).

    Columns of the unfolded input times the (Cout, Cin*k*k) weight, accumulated onto the bias
    (``addmm``): the products and their order of a full convolution's im2col + GEMM, so each
    output equals the full map's at that position bit for bit (in float64 under the codecs'
    policy; checked in tests/codecs/test_fast_paths.py), for the work of the positions asked.
    """
    if bias is None:
        raise ValueError("conv_at() evaluates convolutions with a bias")
    k = weight.shape[-1]
    columns = F.unfold(x, k, padding=k // 2)[:, :, part.reshape(-1)]
    flat = weight.reshape(weight.shape[0], -1)
    expanded = bias[:, None].expand(-1, columns.shape[-1])
    return torch.stack([torch.addmm(expanded, flat, columns[i]) for i in range(columns.shape[0])])


def pointwise(net: nn.Sequential, first: torch.Tensor, second: torch.Tensor | None) -> torch.Tensor:
    """A stack of 1x1 convolutions (and element-wise activations) on ``cat([first, second])``
    given as (n, C, positions): the entropy-parameter network on selected positions only.

    ``second=None`` stands for zeros: the first layer then uses only the weights of
    ``first``'s channels; the dropped products are exact zeros added after the others, so the
    sums are unchanged. Each position's result equals the full map's bit for bit.
    """
    x = first if second is None else torch.cat([first, second], dim=1)
    for i, layer in enumerate(net):
        if isinstance(layer, nn.Conv2d):
            if layer.kernel_size != (1, 1) or layer.groups != 1:
                raise ValueError(f"pointwise() takes 1x1 convolutions, got {layer}")
            weight = layer.weight[:, :, :, 0]
            if i == 0 and second is None and weight.shape[1] > first.shape[1]:
                weight = weight[:, : first.shape[1]]
            x = F.conv1d(x, weight, layer.bias)
        else:
            x = layer(x)
    return x


CONTEXT_MODELS: dict[str, type[GaussianContextModel]] = {
    "autoregressive": AutoregressiveGaussianContext,
    "checkerboard": CheckerboardGaussianContext,
}


def make_context_model(kind: str, latent_channels: int, hyper_channels: int) -> GaussianContextModel:
    try:
        cls = CONTEXT_MODELS[kind]
    except KeyError:
        raise ValueError(f"context must be one of {sorted(CONTEXT_MODELS)}, got {kind!r}") from None
    return cls(latent_channels, hyper_channels)
