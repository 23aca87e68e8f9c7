"""MLIC++'s context parts of one slice: local window attention, channel context, global inter- and
intra-slice linear attention, entropy parameters and latent residual prediction."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.layers import conv3x3

from ..entropy import (
    anchor_mask,
    exact_entropy_active,
)
from ..layers import linear_attention, relative_position_index


# --- attention helpers -----------------------------------------------------------------------
class DepthwiseConv2d(nn.Conv2d):
    """Depthwise k x k convolution ("same" padding); an ``nn.Conv2d`` with ``groups=channels``.

    While coding (:func:`..entropy.exact_entropy`), convolutions run in float64, and torch runs
    a grouped float64 convolution group by group: one call per channel, thousands per slice.
    Here it is the k² shifted products summed in float64 (each product of float32 values is
    exact in float64), rounded to float32 once: the float64 convolution's arithmetic up to the
    order of its sum, which the float32 rounding absorbs (see the exact module).
    """

    def __init__(self, channels: int, kernel: int = 3) -> None:
        super().__init__(channels, channels, kernel, padding=kernel // 2, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not exact_entropy_active() or x.dtype != torch.float32 or self.weight.dtype != torch.float32:
            return super().forward(x)
        with torch._C.DisableTorchFunction():
            k, (h, w) = self.kernel_size[0], x.shape[-2:]
            padded = F.pad(x.double(), (k // 2,) * 4)
            weight = self.weight.detach().double()
            out = torch.zeros_like(padded[..., :h, :w]) if self.bias is None else (
                self.bias.detach().double()[:, None, None].expand_as(padded[..., :h, :w]).clone()
            )
            for i in range(k):
                for j in range(k):
                    out.addcmul_(padded[..., i : i + h, j : j + w], weight[:, 0, i, j, None, None])
            return out.float()


def conv_projection(in_ch: int, out_ch: int) -> nn.Sequential:
    """1x1 conv then depthwise 3x3 (MLIC++'s q/k/v projections)."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1), DepthwiseConv2d(out_ch))


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
        out = (attn @ v).permute(0, 1, 2, 4, 3).reshape(b * length, c * taps)
        # the valid win x win convolution of a win x win window is a linear map of the window:
        # one matrix product instead of a per-window loop (float64 convolutions run batch
        # item by item while coding)
        fused = F.linear(out, self.fusion.weight.flatten(1), self.fusion.bias)
        out = self.proj(fused.reshape(b, length, 2 * c))
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
            DepthwiseConv2d(4 * slice_ch), nn.GELU(),
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
            DepthwiseConv2d(4 * slice_ch), nn.GELU(),
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
