"""Building blocks shared by multi-view codecs."""

from __future__ import annotations

import torch
import torch.nn as nn
from compressai.layers import ResidualBlock


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Efficient (linear) attention, Shen et al. 2021, on token-last tensors.

    ``q`` (B, d_k, Lq), ``k`` (B, d_k, Lk), ``v`` (B, d_v, Lk) -> (B, d_v, Lq). Heads are
    contiguous channel groups; queries are softmaxed over channels, keys over positions, and
    the per-head context ``K Vᵀ`` is d_k x d_v, so the cost is linear in the token count.
    """
    b = q.shape[0]
    q = q.reshape(b, heads, -1, q.shape[-1]).softmax(dim=2)
    k = k.reshape(b, heads, -1, k.shape[-1]).softmax(dim=3)
    v = v.reshape(b, heads, -1, v.shape[-1])
    context = k @ v.transpose(-1, -2)  # (b, h, d_k/h, d_v/h)
    return (context.transpose(-1, -2) @ q).reshape(b, -1, q.shape[-1])


def relative_position_index(window: int) -> torch.Tensor:
    """(w², w²) index into a ((2w-1)², heads) relative-position bias table (Swin, Liu et al.
    2021): entry (a, b) identifies the offset from token b to token a of a w x w window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)  # (2, T, T)
    return rel[0] * (2 * window - 1) + rel[1]


class EfficientCrossAttention(nn.Module):
    """Multi-head :func:`linear_attention` with 1x1 projections and no 1/sqrt(d) scaling.

    Queries come from one feature map, keys and values from another.
    """

    def __init__(self, channels: int, key_channels: int, value_channels: int, heads: int) -> None:
        super().__init__()
        if key_channels % heads or value_channels % heads:
            raise ValueError(
                f"key ({key_channels}) and value ({value_channels}) channels must divide by heads ({heads})"
            )
        self.heads = heads
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, value_channels, 1)
        self.project = nn.Conv2d(value_channels, channels, 1)

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Attention with queries, keys and values taken from three feature maps."""
        n, _, height, width = query.shape
        attended = linear_attention(
            self.query(query).flatten(2), self.key(key).flatten(2), self.value(value).flatten(2), self.heads
        )
        return self.project(attended.reshape(n, -1, height, width))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.attend(x, context, context)


class JointContextTransfer(nn.Module):
    """LDMIC's JCT module (paper §3.2, Fig. 3), shared by all K view paths.

    For each view k: f'_k = F(f_k) (two residual blocks); the inter-view context is the
    mean of f'_i over the other views; efficient cross attention (queries from f'_k,
    keys/values from that mean; Q, K with C/8 and V with C/4 channels over ``heads``);
    then f*_k = f_k + refine(cat[attention, f'_k]).
    Input and output are ``(B*K, C, h, w)`` with views contiguous per batch item.
    """

    def __init__(self, channels: int, heads: int = 2) -> None:
        super().__init__()
        self.extract = nn.Sequential(ResidualBlock(channels, channels), ResidualBlock(channels, channels))
        self.attention = EfficientCrossAttention(channels, channels // 8, channels // 4, heads)
        self.refine = nn.Sequential(ResidualBlock(2 * channels, channels), ResidualBlock(channels, channels))

    def forward(self, features: torch.Tensor, num_views: int) -> torch.Tensor:
        if num_views < 2:
            raise ValueError(f"joint context transfer needs at least 2 views, got {num_views}")
        extracted = self.extract(features)
        grouped = extracted.reshape(-1, num_views, *extracted.shape[1:])
        others = (grouped.sum(dim=1, keepdim=True) - grouped) / (num_views - 1)
        attended = self.attention(extracted, others.reshape_as(extracted))
        return features + self.refine(torch.cat([attended, extracted], dim=1))
