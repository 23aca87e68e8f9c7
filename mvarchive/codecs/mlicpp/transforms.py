"""MLIC++'s transforms: analysis, synthesis and hyperprior networks (residual blocks, GDN, sub-pixel upsampling)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.layers import GDN, conv3x3, subpel_conv3x3


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
