"""MLIC++ (Jiang & Wang, ICML 2023 NCW workshop): multi-reference entropy model, per view.

A single-view codec built from composable parts that VEMIC (:mod:`.vemic`) reuses unchanged:

* :class:`MLICPPCore` — transforms (``g_a``, ``g_s``), hyperprior (``h_a``, ``h_s``, factorized
  prior for z, Gaussian conditional for y) and the entropy model ``mem``.
* :class:`MultiReferenceEntropyModel` — 10 channel slices, each coded as checkerboard anchors
  then non-anchors, one :class:`SliceContextModel` per slice. ``run(hyper, quantizer, y,
  view_context)`` is the *one* slice loop used for training (noisy rate + STE rounding) and for
  coding (rANS encode or decode), composed of the shared schedules (``channel_slices`` over
  ``checkerboard``, :mod:`.entropy.schedules`): the quantizer decides what happens to each
  half-slice (:mod:`.entropy.quantizer`), so encoder, decoder and training cannot drift
  apart. ``view_context`` is an optional hook that returns extra features for the first
  layer of the entropy-parameter networks (VEMIC plugs its cross-view attention in here).
* :class:`SingleViewMLICPP` — the ``single-view-mlicpp`` codec: the core applied to each view.

Data flow per view (official code ``JiangWeibeta/MLIC``, ``MLIC++/models/mlicpp.py``)::

    x -> g_a -> y (M, /16) -> h_a -> z (N, /64) -> EB -> z^ -> h_s -> hyper (2M = scales | means)
    for slice s = 0..S-1 (c = M/S channels):
        anchors ((row+col) odd):   EP_a(hyper [, inter(y^<s), channel(y^<s)])        -> (sigma, mu)
        y^_a = round(y - mu) + mu;  y^_a += LRP_a(hyper means, y^<s, y^_a)   (anchors only)
        non-anchors:               EP_n(local(y^_a) [, intra(y^{s-1}, y^_a), inter, channel], hyper)
        y^_s = y^_a + round(y - mu) + mu;  y^_s += LRP_n(hyper means, y^<s, y^_s)  (non-anchors)
    x^ = g_s(y^)

Parts (widths at N=192, M=320, S=10, c=32; hidden widths scale with M so tiny presets stay tiny):

* local spatial context: 5x5-window softmax attention around every position over the slice's
  decoded anchors (LayerNorm, q/k/v Linear c->3c, 2 heads, relative position bias, checkerboard
  mask -100), attended window fused by a 5x5 conv c->2c, Linear 2c->2c, + MLP residual;
* channel context (s >= 1): 3x3 convs sc -> 0.6M -> 0.4M -> 4c, GELU;
* global inter-slice context (s >= 1): efficient (linear) attention over y^<s, one head per
  previous slice (head width c), q/k/v = 1x1 then depthwise 3x3, 5x5 reprojection -> 3c,
  out = 1x1(3c -> 2c) + MLP;
* global intra-slice context (s >= 1): efficient attention with queries = previous slice at
  non-anchors, keys = previous slice at anchors, values = current slice's anchors, 2 heads;
* entropy parameters: 1x1 convs in -> M -> 0.8M -> 0.4M -> 2c, GELU; output (scales, means);
* latent residual prediction: 3x3 convs (M + (s+1)c) -> 0.7M -> 0.4M -> c, GELU, 0.5 tanh.

Coding: per view one z stream then one y stream (streams ``[z_0, y_0, z_1, y_1, ...]``); in the
y stream, per slice, the anchors (channel-major, positions in raster order) then the
non-anchors; symbols are ``round(y - mu)``. Every view is coded with batch size 1 and the
whole entropy-parameter path (h_s, contexts, EP, LRP) runs under ``single_threaded()``, so the
decoder derives the same CDF indexes on any machine.

Deviations from the public code: heads are contiguous channel groups (the official local
context interleaves them); the global inter-slice context uses ``s`` heads of width ``c``
(official: ``32s // 32``, identical at c = 32); hidden widths are written as fractions of M
(identical at M = 320). Parameter count at the paper preset: 83,501,408 as in the official
model (see :meth:`SingleViewMLICPP.parameter_counts`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN, conv3x3, subpel_conv3x3

from .base import CodecIdentity, CodedStreams, MultiViewCodec, ViewRange
from .entropy import (
    HYPERPRIOR_MULTIPLE,
    CdfTables,
    HyperCode,
    Hyperprior,
    Quantizer,
    RansQuantizer,
    STEQuantizer,
    SymbolCoder,
    anchor_mask,
    channel_slices,
    checkerboard,
    single_threaded,
)
from .layers import linear_attention, relative_position_index
from .registry import register_codec


@dataclass(frozen=True)
class MLICPPConfig:
    N: int = 192  # channels of the transforms and of z
    M: int = 320  # channels of y
    slices: int = 10  # channel slices of y (M / slices channels each)
    window: int = 5  # local-context window
    local_heads: int = 2
    intra_heads: int = 2


# --- transforms ------------------------------------------------------------------------------
class ResidualBlock(nn.Module):
    """RB(a->b): 3x3, GELU, 3x3, GELU, + identity (1x1 when a != b)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.skip is None else self.skip(x)
        return F.gelu(self.conv2(F.gelu(self.conv1(x)))) + identity


class ResidualBlockDown(nn.Module):
    """RBS(a->b): 3x3 stride 2, GELU, 3x3, GDN, + 1x1 stride-2 skip."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch, stride=2)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.gdn = GDN(out_ch)
        self.skip = nn.Conv2d(in_ch, out_ch, 1, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gdn(self.conv2(F.gelu(self.conv1(x)))) + self.skip(x)


class ResidualBlockUp(nn.Module):
    """RBU(a->b): subpel(a->b, 2), GELU, 3x3, IGDN, + subpel(a->b, 2) skip."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.subpel = subpel_conv3x3(in_ch, out_ch, 2)
        self.conv = conv3x3(out_ch, out_ch)
        self.igdn = GDN(out_ch, inverse=True)
        self.upsample = subpel_conv3x3(in_ch, out_ch, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.igdn(self.conv(F.gelu(self.subpel(x)))) + self.upsample(x)


def analysis_transform(n: int, m: int) -> nn.Sequential:
    return nn.Sequential(
        ResidualBlockDown(3, n), ResidualBlock(n, n),
        ResidualBlockDown(n, n), ResidualBlock(n, n),
        ResidualBlockDown(n, n), ResidualBlock(n, n),
        conv3x3(n, m, stride=2),
    )


def synthesis_transform(n: int, m: int) -> nn.Sequential:
    return nn.Sequential(
        ResidualBlock(m, m), ResidualBlockUp(m, n),
        ResidualBlock(n, n), ResidualBlockUp(n, n),
        ResidualBlock(n, n), ResidualBlockUp(n, n),
        ResidualBlock(n, n), subpel_conv3x3(n, 3, 2),
    )


def hyper_analysis(n: int, m: int) -> nn.Sequential:
    return nn.Sequential(
        conv3x3(m, n), nn.GELU(), conv3x3(n, n), nn.GELU(),
        conv3x3(n, n, stride=2), nn.GELU(), conv3x3(n, n), nn.GELU(),
        conv3x3(n, n, stride=2),
    )


def hyper_synthesis(n: int, m: int) -> nn.Sequential:
    """z^ -> 2M features, split as (scales, means)."""
    return nn.Sequential(
        conv3x3(n, m), nn.GELU(), subpel_conv3x3(m, m, 2), nn.GELU(),
        conv3x3(m, m * 3 // 2), nn.GELU(), subpel_conv3x3(m * 3 // 2, m * 3 // 2, 2), nn.GELU(),
        conv3x3(m * 3 // 2, 2 * m),
    )


# --- attention helpers -----------------------------------------------------------------------
def conv_projection(in_ch: int, out_ch: int) -> nn.Sequential:
    """1x1 conv then depthwise 3x3 (MLIC++'s q/k/v projections)."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1), nn.Conv2d(out_ch, out_ch, 3, padding=1, groups=out_ch))


# --- contexts --------------------------------------------------------------------------------
class LocalWindowContext(nn.Module):
    """Local spatial context: windowed softmax attention over a slice's decoded anchors.

    Input: the slice with anchors filled and zeros elsewhere, (B, c, H, W); output (B, 2c, H, W).
    For each position the 5x5 window around it attends to itself (keys/queries restricted to
    anchors by a -100 mask), and the attended window is fused by a valid 5x5 conv.
    """

    position_index: torch.Tensor

    def __init__(self, channels: int, window: int = 5, heads: int = 2, mlp_ratio: int = 2) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"local context: slice channels ({channels}) must divide by heads ({heads})")
        self.channels, self.window, self.heads = channels, window, heads
        self.scale = (channels // heads) ** -0.5
        self.norm1 = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.position_bias = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.position_bias, std=0.02)
        self.fusion = nn.Conv2d(channels, 2 * channels, window)
        self.proj = nn.Linear(2 * channels, 2 * channels)
        self.norm2 = nn.LayerNorm(2 * channels)
        self.mlp = nn.Sequential(
            nn.Linear(2 * channels, 2 * channels * mlp_ratio), nn.GELU(),
            nn.Linear(2 * channels * mlp_ratio, 2 * channels),
        )
        self.register_buffer("position_index", relative_position_index(window), persistent=False)

    def forward(self, anchors: torch.Tensor) -> torch.Tensor:
        b, c, h, w = anchors.shape
        win, heads = self.window, self.heads
        taps, length = win * win, h * w
        x = self.norm1(anchors.flatten(2).transpose(1, 2))  # (b, L, c)
        qkv = self.qkv(x).transpose(1, 2).reshape(b, 3 * c, h, w)
        windows = F.unfold(qkv, win, padding=win // 2)  # (b, 3c*T, L)
        windows = windows.reshape(b, 3, heads, c // heads, taps, length).permute(1, 0, 5, 2, 4, 3)
        q, k, v = windows[0], windows[1], windows[2]  # (b, L, heads, T, d)
        attn = (q * self.scale) @ k.transpose(-1, -2)  # (b, L, heads, T, T)
        bias = self.position_bias[self.position_index.reshape(-1)].reshape(taps, taps, heads).permute(2, 0, 1)
        is_anchor = anchor_mask(h, w, device=anchors.device).to(anchors.dtype)[None, None]
        inside = F.unfold(is_anchor, win, padding=win // 2)[0].transpose(0, 1)  # (L, T)
        mask = torch.where(inside[:, :, None] * inside[:, None, :] > 0, 0.0, -100.0).to(anchors.dtype)
        attn = (attn + bias[None, None] + mask[None, :, None]).softmax(dim=-1)
        out = (attn @ v).permute(0, 1, 2, 4, 3).reshape(b * length, c, win, win)
        out = self.proj(self.fusion(out).reshape(b, length, 2 * c))
        out = out + self.mlp(self.norm2(out))
        return out.transpose(1, 2).reshape(b, 2 * c, h, w)


class ChannelContext(nn.Sequential):
    """3x3 convs over the previous slices: sc -> 0.6M -> 0.4M -> 4c, GELU."""

    def __init__(self, in_ch: int, out_ch: int, hidden: tuple[int, int]) -> None:
        super().__init__(
            conv3x3(in_ch, hidden[0]), nn.GELU(), conv3x3(hidden[0], hidden[1]), nn.GELU(), conv3x3(hidden[1], out_ch)
        )


class GlobalInterContext(nn.Module):
    """Global inter-slice context: linear attention over all previous slices."""

    def __init__(self, in_ch: int, slice_ch: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = conv_projection(in_ch, in_ch)
        self.key = conv_projection(in_ch, in_ch)
        self.value = conv_projection(in_ch, in_ch)
        self.reprojection = nn.Conv2d(in_ch, 3 * slice_ch, 5, padding=2)
        self.skip = nn.Conv2d(3 * slice_ch, 2 * slice_ch, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(3 * slice_ch, 4 * slice_ch, 1), nn.GELU(),
            nn.Conv2d(4 * slice_ch, 4 * slice_ch, 3, padding=1, groups=4 * slice_ch), nn.GELU(),
            nn.Conv2d(4 * slice_ch, 2 * slice_ch, 1),
        )

    def forward(self, previous: torch.Tensor) -> torch.Tensor:
        shape = previous.shape
        flat = lambda t: t.flatten(2)  # noqa: E731
        attended = linear_attention(
            flat(self.query(previous)), flat(self.key(previous)), flat(self.value(previous)), self.heads
        )
        attention = self.reprojection(attended.reshape(shape))
        return self.skip(attention) + self.mlp(attention)


class GlobalIntraContext(nn.Module):
    """Global intra-slice context: anchor<->non-anchor similarity of the previous slice,
    applied to the current slice's anchors (linear attention, output at non-anchors)."""

    def __init__(self, slice_ch: int, heads: int) -> None:
        super().__init__()
        if slice_ch % heads:
            raise ValueError(f"intra context: slice channels ({slice_ch}) must divide by heads ({heads})")
        self.heads = heads
        self.query = conv_projection(slice_ch, slice_ch)
        self.key = conv_projection(slice_ch, slice_ch)
        self.value = conv_projection(slice_ch, slice_ch)
        self.reprojection = nn.Conv2d(slice_ch, 2 * slice_ch, 5, padding=2)
        self.mlp = nn.Sequential(
            nn.Conv2d(2 * slice_ch, 4 * slice_ch, 1), nn.GELU(),
            nn.Conv2d(4 * slice_ch, 4 * slice_ch, 3, padding=1, groups=4 * slice_ch), nn.GELU(),
            nn.Conv2d(4 * slice_ch, 2 * slice_ch, 1),
        )

    def forward(self, previous_slice: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        b, c, h, w = anchors.shape
        is_anchor = anchor_mask(h, w, device=anchors.device)
        a_idx = is_anchor.flatten().nonzero().squeeze(1)
        n_idx = (~is_anchor).flatten().nonzero().squeeze(1)
        mask = is_anchor.to(anchors.dtype)
        q = self.query(previous_slice * (1 - mask)).flatten(2)[:, :, n_idx]
        k = self.key(previous_slice * mask).flatten(2)[:, :, a_idx]
        v = self.value(anchors).flatten(2)[:, :, a_idx]
        attended = anchors.new_zeros(b, c, h * w)
        attended[:, :, n_idx] = linear_attention(q, k, v, self.heads)
        attention = self.reprojection(attended.reshape(b, c, h, w))
        return attention + self.mlp(attention)


class EntropyParameters(nn.Module):
    """1x1 convs in -> h1 -> h2 -> h3 -> 2c (GELU); output (scales, means).

    ``extra`` is added after the first layer: a linear term that is exactly a concatenation of
    more input channels (VEMIC's view context enters here)."""

    def __init__(self, in_ch: int, out_ch: int, hidden: tuple[int, int, int]) -> None:
        super().__init__()
        self.hidden_channels = hidden[0]
        self.layers = nn.Sequential(
            nn.Conv2d(in_ch, hidden[0], 1), nn.GELU(),
            nn.Conv2d(hidden[0], hidden[1], 1), nn.GELU(),
            nn.Conv2d(hidden[1], hidden[2], 1), nn.GELU(),
            nn.Conv2d(hidden[2], out_ch, 1),
        )

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.layers[0](x)
        if extra is not None:
            h = h + extra
        scales, means = self.layers[1:](h).chunk(2, dim=1)
        return scales, means


class LatentResidualPrediction(nn.Module):
    """0.5 * tanh(3x3 convs in -> 0.7M -> 0.4M -> c): corrects the rounding residual."""

    def __init__(self, in_ch: int, out_ch: int, hidden: tuple[int, int]) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            conv3x3(in_ch, hidden[0]), nn.GELU(), conv3x3(hidden[0], hidden[1]), nn.GELU(), conv3x3(hidden[1], out_ch)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.tanh(self.layers(x))


class SliceContextModel(nn.Module):
    """Everything that predicts one slice: contexts, entropy parameters, LRP."""

    def __init__(self, index: int, config: MLICPPConfig) -> None:
        super().__init__()
        m, c = config.M, config.M // config.slices
        prev = index * c
        ep_hidden = (m, m * 4 // 5, m * 2 // 5)
        self.index = index
        self.local = LocalWindowContext(c, config.window, config.local_heads)
        if index:
            self.channel = ChannelContext(prev, 4 * c, (m * 3 // 5, m * 2 // 5))
            self.inter = GlobalInterContext(prev, c, heads=index)
            self.intra = GlobalIntraContext(c, config.intra_heads)
        ctx_a = 6 * c if index else 0  # inter (2c) + channel (4c)
        ctx_n = 10 * c if index else 2 * c  # local (2c) [+ intra (2c) + inter + channel]
        self.ep_anchor = EntropyParameters(2 * m + ctx_a, 2 * c, ep_hidden)
        self.ep_nonanchor = EntropyParameters(2 * m + ctx_n, 2 * c, ep_hidden)
        self.lrp_anchor = LatentResidualPrediction(m + prev + c, c, (m * 7 // 10, m * 2 // 5))
        self.lrp_nonanchor = LatentResidualPrediction(m + prev + c, c, (m * 7 // 10, m * 2 // 5))


# A view-context hook: (slice index, hyper means, y^<s of this view or None)
#   -> (extra for the anchor EP, extra for the non-anchor EP), both added after EP's first layer.
ViewContextHook = Callable[[int, torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]


class MultiReferenceEntropyModel(nn.Module):
    """MLIC++'s entropy model for y: channel slices x checkerboard, multi-reference contexts."""

    def __init__(self, config: MLICPPConfig) -> None:
        super().__init__()
        self.latent_channels = config.M
        self.slice_channels = config.M // config.slices
        self.slices = nn.ModuleList(SliceContextModel(i, config) for i in range(config.slices))

    def run(
        self, hyper: torch.Tensor, quantizer: Quantizer, y: torch.Tensor | None = None,
        view_context: ViewContextHook | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The slice loop for training and coding alike: (y^ (B, M, h, w), what ``quantizer`` recorded)."""
        hyper_means = hyper.chunk(2, dim=1)[1]
        anchors = anchor_mask(hyper.shape[-2], hyper.shape[-1], device=hyper.device)

        def code_slice(s: int, y_s: torch.Tensor | None, decoded: list[torch.Tensor]):
            part = cast(SliceContextModel, self.slices[s])
            previous = torch.cat(decoded, dim=1) if decoded else None
            extra_a = extra_n = None
            if view_context is not None:
                extra_a, extra_n = view_context(s, hyper_means, previous)
            shared = [] if previous is None else [part.inter(previous), part.channel(previous)]

            def anchor_params(positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                scales, means = part.ep_anchor(torch.cat([*shared, hyper], dim=1), extra_a)
                return scales[:, :, positions], means[:, :, positions]

            def refine_anchors(y_anchor: torch.Tensor) -> torch.Tensor:
                return y_anchor + part.lrp_anchor(torch.cat([hyper_means, *decoded, y_anchor], dim=1)) * anchors

            def nonanchor_params(positions: torch.Tensor, y_anchor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                local = [part.local(y_anchor)]
                if previous is not None:
                    local.append(part.intra(decoded[-1], y_anchor))
                scales, means = part.ep_nonanchor(torch.cat([*local, *shared, hyper], dim=1), extra_n)
                return scales[:, :, positions], means[:, :, positions]

            y_slice, recorded = checkerboard(
                quantizer, y_s, hyper, self.slice_channels, anchor_params, nonanchor_params, refine_anchors
            )
            y_slice = y_slice + part.lrp_nonanchor(torch.cat([hyper_means, *decoded, y_slice], dim=1)) * ~anchors
            return y_slice, recorded

        return channel_slices(y, len(self.slices), code_slice)

    def forward(self, y, hyper, gc, view_context=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: (y^, likelihoods of y)."""
        return self.run(hyper, STEQuantizer(gc), y, view_context)


class ViewCode(NamedTuple):
    """One coded (or decoded) view."""

    z_string: bytes
    y_string: bytes
    y_symbols: torch.Tensor  # (1, M, h, w) int32
    z_symbols: torch.Tensor  # (1, N, h/4, w/4) int32
    y_hat: torch.Tensor  # (1, M, h, w)
    hyper_means: torch.Tensor  # (1, M, h, w)


class MLICPPCore(nn.Module):
    """Transforms + hyperprior + multi-reference entropy model of one view."""

    def __init__(self, config: MLICPPConfig) -> None:
        super().__init__()
        n, m, s = config.N, config.M, config.slices
        if s < 1 or m % s:
            raise ValueError(f"M ({m}) must split into `slices` ({s}) equal slices")
        c = m // s
        if c % config.local_heads or c % config.intra_heads:
            raise ValueError(
                f"slice channels M/slices = {c} must divide by local_heads ({config.local_heads}) "
                f"and intra_heads ({config.intra_heads})"
            )
        self.slice_channels = c
        self.g_a = analysis_transform(n, m)
        self.g_s = synthesis_transform(n, m)
        self.h_a = hyper_analysis(n, m)
        self.h_s = hyper_synthesis(n, m)
        self.entropy_bottleneck = EntropyBottleneck(n)
        self.gaussian_conditional = GaussianConditional(None)
        self.mem = MultiReferenceEntropyModel(config)

    @property
    def hyperprior(self) -> Hyperprior:
        return Hyperprior(self.h_a, self.entropy_bottleneck, self.h_s)

    def hyper_forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: (hyper features from STE-rounded z, likelihoods of z)."""
        return self.hyperprior.forward(y)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training on a batch of independent views: (x^, y likelihoods, z likelihoods)."""
        y = self.g_a(x)
        hyper, z_likelihoods = self.hyper_forward(y)
        y_hat, y_likelihoods = self.mem(y, hyper, self.gaussian_conditional)
        return self.g_s(y_hat), y_likelihoods, z_likelihoods

    def _code_view(self, z: HyperCode, coder: SymbolCoder, y=None, view_context=None) -> ViewCode:
        hyper = z.features
        if hyper.shape[0] != 1:
            raise ValueError(f"coding takes one view at a time, got a batch of {hyper.shape[0]}")
        with single_threaded():
            y_hat, y_symbols = self.mem.run(hyper, RansQuantizer(self.gaussian_conditional, coder), y, view_context)
        (y_string,) = coder.flush() if y is not None else coder.streams
        return ViewCode(z.strings[0], y_string, y_symbols, z.symbols, y_hat, hyper.chunk(2, dim=1)[1])

    def encode_view(self, x: torch.Tensor, view_context: ViewContextHook | None = None) -> ViewCode:
        """Code one padded view (1, 3, H, W) into its z and y strings."""
        y = self.g_a(x)
        z = self.hyperprior.encode(y)
        coder = SymbolCoder(CdfTables.of(self.gaussian_conditional), 1)
        return self._code_view(z, coder, y=y, view_context=view_context)

    def decode_view(
        self, z_string: bytes, y_string: bytes, size: tuple[int, int], view_context: ViewContextHook | None = None
    ) -> ViewCode:
        """Decode one view of padded size ``size`` from its z and y strings."""
        z = self.hyperprior.decode([z_string], size)
        coder = SymbolCoder.reading(CdfTables.of(self.gaussian_conditional), [y_string])
        return self._code_view(z, coder, view_context=view_context)

    def parameter_counts(self) -> dict[str, int]:
        def count(*modules: nn.Module | None) -> int:
            return sum(p.numel() for module in modules if module is not None for p in module.parameters())

        parts = self.mem.slices
        pick = lambda name: [getattr(p, name, None) for p in parts]  # noqa: E731
        return {
            "g_a": count(self.g_a),
            "g_s": count(self.g_s),
            "h_a": count(self.h_a),
            "h_s": count(self.h_s),
            "entropy_bottleneck": count(self.entropy_bottleneck),
            "local_context": count(*pick("local")),
            "channel_context": count(*pick("channel")),
            "global_inter_context": count(*pick("inter")),
            "global_intra_context": count(*pick("intra")),
            "entropy_parameters": count(*pick("ep_anchor"), *pick("ep_nonanchor")),
            "lrp": count(*pick("lrp_anchor"), *pick("lrp_nonanchor")),
            "total": count(self),
        }


def split_streams(streams: tuple[bytes, ...] | list[bytes], num_views: int) -> list[tuple[bytes, bytes]]:
    """``[z_0, y_0, z_1, y_1, ...]`` -> per view (z string, y string)."""
    if len(streams) != 2 * num_views:
        raise ValueError(f"expected {2 * num_views} streams for {num_views} views, found {len(streams)}")
    return [(streams[2 * v], streams[2 * v + 1]) for v in range(num_views)]


def collect(codes: list[ViewCode], streams: list[bytes], x_hat: torch.Tensor | None) -> CodedStreams:
    latents = {
        "y": torch.cat([c.y_symbols for c in codes]),
        "z": torch.cat([c.z_symbols for c in codes]),
    }
    return CodedStreams(streams, latents, x_hat)


class SingleViewMLICPP(MultiViewCodec):
    """``single-view-mlicpp``: MLIC++ applied to every view on its own (see the module doc)."""

    pad_multiple = HYPERPRIOR_MULTIPLE
    views = ViewRange(1)

    def __init__(self, config: MLICPPConfig, identity: CodecIdentity | None = None) -> None:
        super().__init__(config, identity)
        self.base = MLICPPCore(config)

    def forward(self, x: torch.Tensor) -> dict:
        self.check_input(x)
        batch, num_views = x.shape[:2]
        x_hat, y_lik, z_lik = self.base(x.flatten(0, 1))
        unflat = lambda t: t.reshape(batch, num_views, *t.shape[1:])  # noqa: E731
        return {"x_hat": unflat(x_hat), "likelihoods": {"y": unflat(y_lik), "z": unflat(z_lik)}}

    def _encode_padded(self, x: torch.Tensor, reconstruct: bool = True) -> CodedStreams:
        codes, streams, images = [], [], []
        for v in range(x.shape[0]):
            code = self.base.encode_view(x[v : v + 1])
            streams += [code.z_string, code.y_string]
            codes.append(code)
            if reconstruct:
                images.append(self.base.g_s(code.y_hat))
        return collect(codes, streams, torch.cat(images) if reconstruct else None)

    def _decode_padded(self, streams, num_views, size):
        codes, images = [], []
        for z_string, y_string in split_streams(streams, num_views):
            code = self.base.decode_view(z_string, y_string, size)
            codes.append(code)
            images.append(self.base.g_s(code.y_hat))
        return collect(codes, list(streams), torch.cat(images))

    def parameter_counts(self) -> dict[str, int]:
        """Per part, as the official model's breakdown (g_a 4.40 M, ..., LRP 25.90 M), and total."""
        return self.base.parameter_counts()


MLICPP_PRESETS = {
    "paper": MLICPPConfig(N=192, M=320, slices=10),
    "tiny": MLICPPConfig(N=32, M=32, slices=4),
}

register_codec(
    "single-view-mlicpp", 102, MLICPP_PRESETS,
    "Baseline: MLIC++ (multi-reference entropy model, checkerboard within 10 channel slices) per view",
)(SingleViewMLICPP)
