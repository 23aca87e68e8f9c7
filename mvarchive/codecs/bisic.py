"""BiSIC and BiSIC-Fast: bidirectional stereo image compression (Liu et al., ECCV 2024).

Data flow (paper §3, Fig. 1; official code ``LIUZhening111/BiSIC``). The two views are
one stereo pair; every network is shared by both and treats them symmetrically::

    x_l, x_r --E-A (3-D convs)--> MutualAttention --E-B (3-D convs)--> MutualAttention --> y_l, y_r
    y --h_a (3-D convs)--> z_l, z_r          (one shared factorized prior, two z strings)
    z_hat --two parallel 3-D hyper-decoders--> h_mu (mean features), h_sigma (scale features)
    y --cross-dimensional entropy model (channel slices; per slice: channel + stereo context
        through MutualAttention, spatial + stereo context, Gaussian parameters, LRP)--> y_hat
    y_hat --MutualAttention, D-A (3-D transposed convs), MutualAttention, D-B--> x_hat_l, x_hat_r

Tensors inside the codec are ``(B*2, C, H, W)`` with the two views of a pair adjacent
(row ``2b`` = left, ``2b+1`` = right): a "3-D convolution over the view axis" is then a 2-D
convolution over ``concat[own view, other view]`` (:class:`StereoConv3d`).

Spatial context (the only difference between the two registered codecs, a child module per
slice, :data:`SPATIAL_CONTEXTS`):

* ``bisic`` (``context="autoregressive"``, :class:`RasterStereoContext`): a masked 3-D
  convolution, PixelCNN type-A mask applied identically at all three view taps, so a position
  sees the causal neighbourhood of *both* views' current slice, never either view's current
  position.
* ``bisic-fast`` (``context="checkerboard"``, :class:`CheckerboardStereoContext`): stereo
  checkerboard. Anchors ((row+col) odd, the same positions in both views) from hyperprior and
  channel context only; non-anchors add a plain 3-D convolution over the anchor-only slice of
  both views. Separate Gaussian-parameter networks for the two passes.

Coding order (both views in lock-step; streams ``[z_l, z_r, y_l, y_r]``: z of each view is one
EntropyBottleneck string, the symbols of view v go to rANS stream ``y_v``):

* ``bisic``: for slice k = 0..S-1, for row i, for column j (raster): compute the Gaussian
  parameters of position (i, j) of slice k for both views (masked 3-D convolution evaluated on
  the local (3, 5, 5) patch of the decoded slice, identical on encoder and decoder), then code
  the slice's channels at (i, j) of the left view into ``y_l`` and of the right view into
  ``y_r``. After a slice is complete, LRP refines it for both views at once.
  S·(H/16)·(W/16) sequential steps.
* ``bisic-fast``: for slice k = 0..S-1: the anchors of the slice (per view: channel-major,
  then raster over anchor positions) into ``y_v``, then the non-anchors in the same order,
  then LRP. 2·S network passes.

The entropy-parameter path (h_s, channel context, spatial context, Gaussian parameters, LRP)
runs single-threaded while coding, so encoder and decoder derive identical CDF indexes
whatever their thread counts.

Parameter counts with the paper presets are exactly the official models' (78,210,787 and
85,895,075; see :meth:`BiSIC.parameter_counts`).

Deviations from the official code (``LIUZhening111/BiSIC``) and choices:

* **View-axis padding.** The official ``nn.Conv3d`` pads the length-2 view axis with zeros, so
  the left output sees the right view through the last depth tap and the right output sees the
  left view through the first: the two directions use *different* cross-view weights and
  swapping the inputs does not swap the outputs. Here the view axis wraps around (circular
  padding), which for two views gives each output ``W_centre * own + (W_first + W_last) *
  other``: exactly swap-equivariant, as the paper's "fully symmetric bidirectional" design
  intends. Weight tensors keep the official (out, in, 3, k, k) shape, so parameter counts and
  state-dict layouts match, but the two side taps act only through their sum (fewer effective
  degrees of freedom than the official model). Transposed 3-D convolutions are treated alike.
* **Mutual attention** follows the official ``MutualAttention_master``, not the paper's
  Eq. (5)-(6): stage A attends with queries from the own view and keys/values from the other
  view (the paper's cross-query stage Psi instead takes keys and values from one view and
  queries from the other); stage B (queries and keys from the other view, values from the own
  view) equals the paper's cross-key stage Phi.
* Training feeds ``round(y)`` (straight-through) to the autoregressive spatial context, as the
  project's LDMIC does (the decoder sees ``round(y - mu) + mu``); the official code feeds noisy
  ``y``. The checkerboard variant uses the exact decoder-side anchors in training.
* Within a slice the spatial context reads the values before LRP (LRP needs the whole slice
  in the official model's order: parameters, quantize, refine); later slices' channel context
  and the synthesis read the LRP-refined values, as in the official forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import ResidualBlock

from .base import CodecIdentity, CodedStreams, MultiViewCodec, ViewRange, parameter_count
from .entropy import (
    HYPERPRIOR_MULTIPLE,
    Hyperprior,
    Quantizer,
    RansQuantizer,
    STEQuantizer,
    channel_slices,
    checkerboard,
    exact_entropy_active,
    raster,
    single_threaded,
)
from .entropy.context import conv_at, pointwise
from .entropy.exact import PromotedRows, promoted_linear
from .layers import EfficientCrossAttention
from .registry import register_codec

VIEWS = 2
ATTENTION_HEADS = 8


@dataclass(frozen=True)
class BiSICConfig:
    N: int = 192  # channels of y and of the codec transforms
    M: int = 192  # channels of z
    slices: int = 12  # channel slices of y (N // slices channels each)
    context: str = "autoregressive"  # "autoregressive" (BiSIC) or "checkerboard" (BiSIC-Fast)
    channel_attention: int = 128  # width of the channel-context mutual attention


# --- stereo 3-D convolutions ----------------------------------------------------------------
def other_view(x: torch.Tensor) -> torch.Tensor:
    """Rows ``2b`` and ``2b+1`` (left/right of pair b) swapped."""
    return x.unflatten(0, (-1, VIEWS)).flip(1).flatten(0, 1)


def with_other_view(x: torch.Tensor) -> torch.Tensor:
    """``concat[own view, other view]`` along channels: the input of a folded 3-D convolution."""
    return torch.cat([x, other_view(x)], dim=1)


def _fold_view_taps(weight: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """(…, 3, kh, kw) depth taps -> [centre tap | first + last tap] along ``channel_dim``."""
    return torch.cat([weight[:, :, 1], weight[:, :, 0] + weight[:, :, 2]], dim=channel_dim)


class StereoConv3d(nn.Conv3d):
    """A Conv3d with kernel depth 3 over the length-2 view axis, padded circularly.

    Input and output are ``(B*2, C, H, W)`` with the views of a pair adjacent. With
    wrap-around padding, view v's output is ``W[1] * x_v + (W[0] + W[2]) * x_other``, computed
    as one 2-D convolution over ``concat[x_v, x_other]``; swapping the views swaps the outputs.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 5, stride: int = 2) -> None:
        super().__init__(
            in_channels, out_channels, (3, kernel, kernel), stride=(1, stride, stride),
            padding=(1, kernel // 2, kernel // 2),
        )

    def folded_weight(self) -> torch.Tensor:
        return _fold_view_taps(self.weight, channel_dim=1)

    def forward(self, x: torch.Tensor, padding: int | None = None) -> torch.Tensor:
        pad = cast(tuple[int, ...], self.padding)[1:] if padding is None else padding
        return F.conv2d(with_other_view(x), self.folded_weight(), self.bias, self.stride[1:], pad)


class StereoConvTranspose3d(nn.ConvTranspose3d):
    """ConvTranspose3d, kernel (3, k, k), stride (1, s, s), exact ×s upsampling, circular views."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 5, stride: int = 2) -> None:
        super().__init__(
            in_channels, out_channels, (3, kernel, kernel), stride=(1, stride, stride),
            padding=(1, kernel // 2, kernel // 2), output_padding=(0, stride - 1, stride - 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        weight = _fold_view_taps(self.weight, channel_dim=0)  # (2*in, out, k, k)
        return F.conv_transpose2d(
            with_other_view(x), weight, self.bias, self.stride[1:], cast(tuple[int, ...], self.padding)[1:],
            self.output_padding[1:],
        )


class MaskedStereoConv3d(StereoConv3d):
    """Stride-1 :class:`StereoConv3d` with a PixelCNN type-A spatial mask at all three view taps."""

    mask: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 5) -> None:
        super().__init__(in_channels, out_channels, kernel, stride=1)
        mask = torch.zeros(kernel, kernel)
        mask[: kernel // 2, :] = 1
        mask[kernel // 2, : kernel // 2] = 1
        self.register_buffer("mask", mask, persistent=False)

    def folded_weight(self) -> torch.Tensor:
        return super().folded_weight() * self.mask


# --- mutual attention -----------------------------------------------------------------------
class MutualAttention(nn.Module):
    """Bidirectional mutual attention block (paper §3.1, Fig. 2; official ``MutualAttention_master``).

    For each view (the other is symmetric), with f = RB(RB(x)) and g the other view's f:
    stage A: A = Attn_A(Q=f, K=g, V=g), S_A = SelfAttn_A(A); stage B: B = Attn_B(Q=g, K=g, V=f),
    S_B = SelfAttn_B(B); out = x + Combine(concat[S_A, S_B, f]) with Combine =
    RB(3C->2C) -> RB(2C->C). Efficient attention, 8 heads, Q/K/V with C/2 channels.
    """

    def __init__(self, channels: int, heads: int = ATTENTION_HEADS) -> None:
        super().__init__()
        self.extract = nn.Sequential(ResidualBlock(channels, channels), ResidualBlock(channels, channels))
        half = channels // 2
        self.cross_a = EfficientCrossAttention(channels, half, half, heads)
        self.self_a = EfficientCrossAttention(channels, half, half, heads)
        self.cross_b = EfficientCrossAttention(channels, half, half, heads)
        self.self_b = EfficientCrossAttention(channels, half, half, heads)
        self.combine = nn.Sequential(ResidualBlock(3 * channels, 2 * channels), ResidualBlock(2 * channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.extract(x)
        g = other_view(f)
        a = self.cross_a.attend(f, g, g)
        b = self.cross_b.attend(g, g, f)
        s_a = self.self_a.attend(a, a, a)
        s_b = self.self_b.attend(b, b, b)
        return x + self.combine(torch.cat([s_a, s_b, f], dim=1))


# --- entropy model parts --------------------------------------------------------------------
def pointwise_mlp(in_channels: int, hidden: Sequence[int], out_channels: int) -> nn.Sequential:
    """1x1 convolutions in -> hidden... -> out with GELU between."""
    layers: list[nn.Module] = []
    widths = [in_channels, *hidden]
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Conv2d(a, b, 1), nn.GELU()]
    layers.append(nn.Conv2d(widths[-1], out_channels, 1))
    return nn.Sequential(*layers)


class GaussianParameters(nn.Module):
    """G_mu(concat[h_mu, cond...]) and G_sigma(concat[h_sigma, cond...]) -> (scales, means)."""

    def __init__(self, hyper_channels: int, cond_channels: int, out_channels: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.means = pointwise_mlp(hyper_channels + cond_channels, hidden, out_channels)
        self.scales = pointwise_mlp(hyper_channels + cond_channels, hidden, out_channels)

    def forward(
        self, h_mu: torch.Tensor, h_sigma: torch.Tensor, cond: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scales(torch.cat([h_sigma, *cond], dim=1)), self.means(torch.cat([h_mu, *cond], dim=1))


class SpatialContext(nn.Module):
    """Child codec of one channel slice: spatial + stereo context and Gaussian parameters.

    ``run(quantizer, h_mu, h_sigma, theta, y=None)`` -> ``(y_hat, recorded)``: the slice's
    schedule (:mod:`.entropy.schedules`) for training and coding alike. ``theta`` is the
    slice's channel context (``None`` for the first slice); ``y_hat`` is before LRP.
    """

    def __init__(self, slice_channels: int, hyper_channels: int, channel_context: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.slice_channels = slice_channels

    def run(self, quantizer, h_mu, h_sigma, theta, y=None):  # pragma: no cover - interface
        raise NotImplementedError


def _cond(*parts: torch.Tensor | None) -> list[torch.Tensor]:
    return [p for p in parts if p is not None]


class RasterStereoContext(SpatialContext):
    """BiSIC: masked 3-D convolution (type A at all view taps), serial raster scan, views in lock-step."""

    kernel = 5

    def __init__(self, slice_channels, hyper_channels, channel_context, hidden):
        super().__init__(slice_channels, hyper_channels, channel_context, hidden)
        self.context = MaskedStereoConv3d(slice_channels, 2 * slice_channels, self.kernel)
        self.params = GaussianParameters(hyper_channels, 2 * slice_channels + channel_context, slice_channels, hidden)

    def run(self, quantizer, h_mu, h_sigma, theta, y=None):
        def parallel_params(y_rounded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.params(h_mu, h_sigma, _cond(self.context(y_rounded), theta))

        # The masked convolution at one position is a matrix product with the flattened
        # (views, channels, 5, 5) causal patch; the parameter networks run on vectors.
        weight, bias = self.context.folded_weight().flatten(1), self.context.bias
        h_mu_at, h_sigma_at = h_mu.permute(2, 3, 0, 1), h_sigma.permute(2, 3, 0, 1)  # (h, w, n, C)
        theta_at = None if theta is None else theta.permute(2, 3, 0, 1)
        # Under the float64 policy the steps skip its per-operation dispatch (same bits).
        if exact_entropy_active() and h_mu.dtype == torch.float32:
            weight64, bias64 = weight.double(), None if bias is None else bias.double()
            scales_net, means_net = PromotedRows(self.params.scales), PromotedRows(self.params.means)

            def step_params(i: int, j: int, patch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                upsilon = promoted_linear(with_other_view(patch).flatten(1), weight64, bias64)
                cond = _cond(upsilon, None if theta_at is None else theta_at[i, j])
                scales = scales_net(torch.cat([h_sigma_at[i, j], *cond], dim=1))
                return scales, means_net(torch.cat([h_mu_at[i, j], *cond], dim=1))
        else:

            def step_params(i: int, j: int, patch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                upsilon = F.linear(with_other_view(patch).flatten(1), weight, bias)
                cond = _cond(upsilon, None if theta_at is None else theta_at[i, j])
                here = [t[:, :, None, None] for t in (h_mu_at[i, j], h_sigma_at[i, j], *cond)]
                return self.params(here[0], here[1], here[2:])

        return raster(quantizer, y, h_mu, self.slice_channels, self.kernel, step_params, parallel_params)


class CheckerboardStereoContext(SpatialContext):
    """BiSIC-Fast: stereo checkerboard, anchors ((row+col) odd) then non-anchors."""

    kernel = 5

    def __init__(self, slice_channels, hyper_channels, channel_context, hidden):
        super().__init__(slice_channels, hyper_channels, channel_context, hidden)
        self.context = StereoConv3d(slice_channels, 2 * slice_channels, self.kernel, stride=1)
        self.anchor_params = GaussianParameters(hyper_channels, channel_context, slice_channels, hidden)
        self.nonanchor_params = GaussianParameters(
            hyper_channels, 2 * slice_channels + channel_context, slice_channels, hidden
        )

    def run(self, quantizer, h_mu, h_sigma, theta, y=None):
        # Each pass computes its own positions only, with the full maps' float64 sums in the
        # same order (entropy.context.pointwise / conv_at), so the same bits for half the work.
        def at(params: GaussianParameters, part: torch.Tensor, cond: list[torch.Tensor]):
            scales = pointwise(params.scales, torch.cat([h_sigma[:, :, part], *cond], dim=1), None)
            return scales, pointwise(params.means, torch.cat([h_mu[:, :, part], *cond], dim=1), None)

        def theta_at(part: torch.Tensor) -> torch.Tensor | None:
            return None if theta is None else theta[:, :, part]

        def anchors(part: torch.Tensor):
            return at(self.anchor_params, part, _cond(theta_at(part)))

        def rest(part: torch.Tensor, anchors_hat: torch.Tensor):
            context = conv_at(with_other_view(anchors_hat), self.context.folded_weight(), self.context.bias, part)
            return at(self.nonanchor_params, part, _cond(context, theta_at(part)))

        return checkerboard(quantizer, y, h_mu, self.slice_channels, anchors, rest)


SPATIAL_CONTEXTS: dict[str, type[SpatialContext]] = {
    "autoregressive": RasterStereoContext,
    "checkerboard": CheckerboardStereoContext,
}


class CrossDimensionalEntropyModel(nn.Module):
    """Symmetric cross-dimensional entropy model of y (paper §3.2, Fig. 3), slice by slice.

    For slice k and view v: Theta_v = MutualAttention(g_k(y_hat_v^{<k})) (k >= 1; g_k: 1x1
    convs c·k -> 7N/6 -> N -> 2N/3 -> C_att); the spatial child gives (mu, sigma) and
    y_hat_k = round(y_k - mu) + mu; LRP: y_hat_k += 0.5 tanh(L_k(concat[h_mu, Theta, y_hat_k])).
    """

    def __init__(self, latent_channels: int, slices: int, channel_attention: int, context: str) -> None:
        super().__init__()
        n = latent_channels
        c = n // slices
        hyper = 2 * n
        self.slices = slices
        self.channel_context = nn.ModuleList(
            pointwise_mlp(c * k, (n * 7 // 6, n, n * 2 // 3), channel_attention) for k in range(1, slices)
        )
        self.channel_attention = MutualAttention(channel_attention) if slices > 1 else None
        spatial = SPATIAL_CONTEXTS[context]
        self.spatial = nn.ModuleList(
            spatial(c, hyper, channel_attention if k else 0, (2 * n, n, n // 2)) for k in range(slices)
        )
        self.lrp = nn.ModuleList(
            pointwise_mlp(hyper + (channel_attention if k else 0) + c, (2 * n, n, n // 3), c) for k in range(slices)
        )

    def _theta(self, k: int, decoded: list[torch.Tensor]) -> torch.Tensor | None:
        if k == 0 or self.channel_attention is None:
            return None
        return self.channel_attention(self.channel_context[k - 1](torch.cat(decoded, dim=1)))

    def _refine(self, k: int, y_hat: torch.Tensor, h_mu: torch.Tensor, theta: torch.Tensor | None) -> torch.Tensor:
        return y_hat + 0.5 * torch.tanh(self.lrp[k](torch.cat(_cond(h_mu, theta, y_hat), dim=1)))

    def run(self, quantizer: Quantizer, h_mu, h_sigma, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The slice loop for training and coding alike: (y_hat after LRP, what ``quantizer`` recorded)."""

        def code_slice(k: int, y_k: torch.Tensor | None, decoded: list[torch.Tensor]):
            theta = self._theta(k, decoded)
            spatial = cast(SpatialContext, self.spatial[k])
            y_hat_k, recorded = spatial.run(quantizer, h_mu, h_sigma, theta, y_k)
            return self._refine(k, y_hat_k, h_mu, theta), recorded

        return channel_slices(y, self.slices, code_slice)

    def forward(self, y, h_mu, h_sigma, gc):
        """Training: (y_hat, likelihoods of y)."""
        return self.run(STEQuantizer(gc), h_mu, h_sigma, y)

    def encode(self, y, h_mu, h_sigma, gc):
        """-> (symbols, y_hat, [y stream of each view])."""
        quantizer = RansQuantizer.encoding(gc, VIEWS)
        y_hat, symbols = self.run(quantizer, h_mu, h_sigma, y)
        return symbols, y_hat, quantizer.flush()

    def decode(self, h_mu, h_sigma, gc, streams):
        """-> (symbols, y_hat), reading view v's symbols from ``streams[v]``."""
        y_hat, symbols = self.run(RansQuantizer.decoding(gc, streams), h_mu, h_sigma)
        return symbols, y_hat


def _hyper_decoder(z_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        StereoConvTranspose3d(z_channels, z_channels), nn.LeakyReLU(inplace=True),
        StereoConvTranspose3d(z_channels, z_channels), nn.LeakyReLU(inplace=True),
        StereoConv3d(z_channels, out_channels, kernel=3, stride=1),
    )


# --- the codec ------------------------------------------------------------------------------
def _presets(context: str, slices: int, channel_attention: int, tiny_slices: int) -> dict[str, BiSICConfig]:
    return {
        "paper": BiSICConfig(192, 192, slices, context, channel_attention),
        "tiny": BiSICConfig(32, 32, tiny_slices, context, 32),
    }


class BiSIC(MultiViewCodec):
    """BiSIC / BiSIC-Fast stereo codec; see the module docstring."""

    pad_multiple = HYPERPRIOR_MULTIPLE
    views = ViewRange(2, 2)

    def __init__(self, config: BiSICConfig, identity: CodecIdentity | None = None) -> None:
        super().__init__(config, identity)
        n, m = config.N, config.M
        if config.context not in SPATIAL_CONTEXTS:
            raise ValueError(f"context must be one of {sorted(SPATIAL_CONTEXTS)}, got {config.context!r}")
        if config.slices < 1 or n % config.slices:
            raise ValueError(f"slices must divide N: N={n}, slices={config.slices}")
        for name, width in (("N", n), ("channel_attention", config.channel_attention)):
            if width % (2 * ATTENTION_HEADS):
                raise ValueError(
                    f"{name} must be a multiple of {2 * ATTENTION_HEADS} (mutual attention uses {name}/2 "
                    f"key channels over {ATTENTION_HEADS} heads), got {width}"
                )
        if m < 1:
            raise ValueError(f"M must be positive, got {m}")
        self.encoder_a = nn.Sequential(StereoConv3d(3, n), nn.GELU(), StereoConv3d(n, n))
        self.encoder_attention_a = MutualAttention(n)
        self.encoder_b = nn.Sequential(StereoConv3d(n, n), nn.GELU(), StereoConv3d(n, n))
        self.encoder_attention_b = MutualAttention(n)
        self.h_a = nn.Sequential(
            StereoConv3d(n, m, kernel=3, stride=1), nn.LeakyReLU(inplace=True),
            StereoConv3d(m, m), nn.LeakyReLU(inplace=True),
            StereoConv3d(m, m),
        )
        self.h_s_means = _hyper_decoder(m, 2 * n)
        self.h_s_scales = _hyper_decoder(m, 2 * n)
        self.entropy_bottleneck = EntropyBottleneck(m)
        self.gaussian_conditional = GaussianConditional(None)
        self.entropy_model = CrossDimensionalEntropyModel(n, config.slices, config.channel_attention, config.context)
        self.decoder_attention_a = MutualAttention(n)
        self.decoder_a = nn.Sequential(StereoConvTranspose3d(n, n), nn.GELU(), StereoConvTranspose3d(n, n))
        self.decoder_attention_b = MutualAttention(n)
        self.decoder_b = nn.Sequential(StereoConvTranspose3d(n, n), nn.GELU(), StereoConvTranspose3d(n, 3))

    # --- transforms (inputs/outputs (B*2, C, H, W), views adjacent) ---------------------
    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder_attention_b(self.encoder_b(self.encoder_attention_a(self.encoder_a(x))))

    def synthesis(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.decoder_b(self.decoder_attention_b(self.decoder_a(self.decoder_attention_a(y_hat))))

    def hyper_synthesis(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.h_s_means(z_hat), self.h_s_scales(z_hat)

    @property
    def hyperprior(self) -> Hyperprior:
        return Hyperprior(self.h_a, self.entropy_bottleneck, self.hyper_synthesis)

    # --- training -----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> dict:
        self.check_input(x)
        batch = x.shape[0]
        y = self.analysis(x.flatten(0, 1))
        (h_mu, h_sigma), z_likelihoods = self.hyperprior.forward(y)
        y_hat, y_likelihoods = self.entropy_model(y, h_mu, h_sigma, self.gaussian_conditional)
        x_hat = self.synthesis(y_hat)
        return {
            "x_hat": x_hat.unflatten(0, (batch, VIEWS)),
            "likelihoods": {
                "y": y_likelihoods.unflatten(0, (batch, VIEWS)),
                "z": z_likelihoods.unflatten(0, (batch, VIEWS)),
            },
        }

    # --- coding -------------------------------------------------------------------------
    def _encode_padded(self, x: torch.Tensor, reconstruct: bool = True) -> CodedStreams:
        self.check_views(x.shape[0])
        y = self.analysis(x)
        z = self.hyperprior.encode(y)
        with single_threaded():
            h_mu, h_sigma = z.features
            y_symbols, y_hat, y_strings = self.entropy_model.encode(y, h_mu, h_sigma, self.gaussian_conditional)
        latents = {"y": y_symbols, "z": z.symbols}
        return CodedStreams([*z.strings, *y_strings], latents, self.synthesis(y_hat) if reconstruct else None)

    def _decode_padded(self, streams, num_views, size):
        if num_views != VIEWS:
            raise ValueError(f"BiSIC codes stereo pairs, the header says {num_views} views")
        if len(streams) != 2 * VIEWS:
            raise ValueError(f"expected {2 * VIEWS} streams (z_l, z_r, y_l, y_r), found {len(streams)}")
        z = self.hyperprior.decode(streams[:VIEWS], size)
        with single_threaded():
            h_mu, h_sigma = z.features
            y_symbols, y_hat = self.entropy_model.decode(h_mu, h_sigma, self.gaussian_conditional, streams[VIEWS:])
        latents = {"y": y_symbols, "z": z.symbols}
        return CodedStreams(list(streams), latents, self.synthesis(y_hat))

    def parameter_counts(self) -> dict[str, int]:
        """Totals, encoder/decoder sides and the module breakdown of the official model."""
        em = self.entropy_model
        spatial_convs = sum(parameter_count(cast(nn.Module, s.context)) for s in em.spatial)
        hyperprior = (self.h_a, self.h_s_means, self.h_s_scales, self.entropy_bottleneck)
        transforms_enc = (self.encoder_a, self.encoder_attention_a, self.encoder_b, self.encoder_attention_b)
        transforms_dec = (self.decoder_attention_a, self.decoder_a, self.decoder_attention_b, self.decoder_b)
        return {
            "codec_convs": parameter_count(self.encoder_a, self.encoder_b, self.decoder_a, self.decoder_b),
            "codec_mutual_attention": parameter_count(
                self.encoder_attention_a, self.encoder_attention_b, self.decoder_attention_a, self.decoder_attention_b
            ),
            "hyperprior": parameter_count(*hyperprior),
            "channel_mutual_attention": parameter_count(em.channel_attention),
            "gaussian_parameters": parameter_count(*em.spatial) - spatial_convs,
            "channel_context": parameter_count(em.channel_context),
            "lrp": parameter_count(em.lrp),
            "spatial_context": spatial_convs,
            "encoder": parameter_count(*transforms_enc, *hyperprior, em),
            "decoder": parameter_count(self.h_s_means, self.h_s_scales, self.entropy_bottleneck, em, *transforms_dec),
            "total": parameter_count(self),
        }


register_codec(
    "bisic", 4, _presets("autoregressive", 12, 128, tiny_slices=4),
    "BiSIC (ECCV 2024): 3-D conv stereo codec, mutual attention, cross-dimensional autoregressive entropy model",
)(BiSIC)

register_codec(
    "bisic-fast", 5, _presets("checkerboard", 6, 256, tiny_slices=2),
    "BiSIC-Fast: BiSIC with a two-pass stereo checkerboard context (6 slices)",
)(BiSIC)
