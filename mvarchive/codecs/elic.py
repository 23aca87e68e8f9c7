"""ELIC transforms and the single-view ELIC baseline.

ELIC (He et al., CVPR 2022) as re-implemented by Chandelier and shipped in CompressAI as
``Elic2022Chandelier``; CAMSIC (:mod:`.camsic`) borrows its transforms.

* :func:`elic_analysis` / :func:`elic_synthesis` build ELIC's g_a / g_s from module-level
  blocks (:class:`ResidualBottleneck`, :class:`AttnBlock`), so codecs that borrow them
  (CAMSIC) stay picklable. Same layers and parameter counts as CompressAI's (N=192, M=320:
  g_a 7,337,792, g_s 7,337,475).
* ``single-view-elic2022-chandelier`` (id 101) wraps CompressAI's ``Elic2022Chandelier``
  and codes every view on its own with the model's own latent codec (hyperprior + five
  unevenly sized channel groups, each coded as checkerboard anchors then non-anchors).

Coding order per view: one z stream, then the y streams of the latent codec in its own
order (group 0 anchors, group 0 non-anchors, group 1 anchors, ...): ``1 + 2·groups``
streams per view, views one after the other. The whole entropy path (h_s, channel and
spatial contexts, parameter aggregation) runs single-threaded while coding.

Latents: ``z`` holds the exact coded symbols ``round(ẑ − median)``. CompressAI's latent
codec does not hand out the Gaussian means of y, so ``y`` holds ``round(ŷ)`` of the decoded
latent (ŷ = symbol + mean); it is bit-identical on both sides because ŷ is.

Deviations: the wrapped model holds classes defined inside ``__init__`` and a
monkey-patched method (CompressAI), which plain pickling cannot handle; the codec pickles
as (config, identity, state dict) and is rebuilt on unpickling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from compressai.models import Elic2022Chandelier
from compressai.models.utils import conv, deconv

from .base import CodecIdentity, CodedStreams, parameter_count
from .entropy import Hyperprior, single_threaded
from .registry import register_codec
from .single_view import PerViewCodec

__all__ = [
    "AttnBlock",
    "ElicConfig",
    "ResidualBottleneck",
    "SingleViewElic",
    "elic_analysis",
    "elic_synthesis",
]


# --- ELIC transforms ------------------------------------------------------------------------
class ResidualBottleneck(nn.Module):
    """RBB(C): 1x1 C→C/2, ReLU, 3x3 C/2→C/2, ReLU, 1x1 C/2→C, plus the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = channels // 2
        self.body = nn.Sequential(
            nn.Conv2d(channels, mid, 1), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(mid, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualUnit(nn.Module):
    """Cheng 2020 residual unit: RBB body, plus the identity, then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = ResidualBottleneck(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.block(x))


class AttnBlock(nn.Module):
    """Simplified attention block of Cheng et al. 2020 (no non-local op): x + a·sigmoid(b)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(*(ResidualUnit(channels) for _ in range(3)))
        self.gate = nn.Sequential(*(ResidualUnit(channels) for _ in range(3)), nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.trunk(x) * torch.sigmoid(self.gate(x))


def _rbbs(channels: int, count: int = 3) -> list[nn.Module]:
    return [ResidualBottleneck(channels) for _ in range(count)]


def elic_analysis(N: int = 192, M: int = 320) -> nn.Sequential:
    """ELIC g_a: x (3, H, W) → y (M, H/16, W/16)."""
    return nn.Sequential(
        conv(3, N), *_rbbs(N),
        conv(N, N), *_rbbs(N), AttnBlock(N),
        conv(N, N), *_rbbs(N),
        conv(N, M), AttnBlock(M),
    )


def elic_synthesis(N: int = 192, M: int = 320) -> nn.Sequential:
    """ELIC g_s: ŷ (M, h, w) → x̂ (3, 16h, 16w)."""
    return nn.Sequential(
        AttnBlock(M), deconv(M, N), *_rbbs(N),
        deconv(N, N), AttnBlock(N), *_rbbs(N),
        deconv(N, N), *_rbbs(N),
        deconv(N, 3),
    )


# --- single-view baseline ---------------------------------------------------------------
@dataclass(frozen=True)
class ElicConfig:
    N: int = 192
    M: int = 320


def elic_groups(M: int) -> list[int]:
    """ELIC's uneven channel groups, scaled: M=320 gives CompressAI's [16, 16, 32, 64, 192]."""
    g = M // 20
    groups = [g, g, 2 * g, 4 * g, M - 8 * g]
    if g < 1:
        raise ValueError(f"M must be at least 20 for five channel groups, got M={M}")
    return groups


class SingleViewElic(PerViewCodec):

    def __init__(self, config: ElicConfig, identity: CodecIdentity | None = None) -> None:
        super().__init__(config, identity)
        self.groups = elic_groups(config.M)
        self.model = Elic2022Chandelier(config.N, config.M, groups=self.groups)

    # pickling: the CompressAI model holds local classes; rebuild from config + weights
    def __getstate__(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "identity": self.identity,
            "training": self.training,
            "state_dict": {k: v.detach().clone() for k, v in self.state_dict().items()},
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).__init__(self, state["config"], state["identity"])
        self.load_state_dict(state["state_dict"])
        self.train(state["training"])

    @property
    def hyperprior(self) -> Hyperprior:
        hyper = self.model.latent_codec["hyper"]
        return Hyperprior(hyper.h_a, hyper.entropy_bottleneck, hyper.h_s)

    def _shapes(self, size: tuple[int, int]) -> dict[str, Any]:
        h, w = size[0] // 16, size[1] // 16
        return {"y": [(c, h, w) for c in self.groups], "hyper": self.hyperprior.z_size(size)}

    def _encode_padded(self, x: torch.Tensor, reconstruct: bool = True) -> CodedStreams:
        lc = self.model.latent_codec
        streams: list[bytes] = []
        y_hats, z_symbols = [], []
        size = (x.shape[-2], x.shape[-1])
        for view in range(x.shape[0]):
            y = self.model.g_a(x[view : view + 1])
            with single_threaded():
                out = lc.compress(y)
            *y_strings, z_strings = out["strings"]
            z_symbols.append(self.hyperprior.decode(z_strings, size, features=False).symbols)
            streams.append(z_strings[0])
            streams.extend(s[0] for s in y_strings)
            y_hats.append(out["y_hat"])
        # CompressAI's encoder hands out ŷ channels-last, its decoder contiguous: equal values,
        # but the synthesis would pick other kernels (1 LSB apart); one layout on both sides
        y_hat = torch.cat(y_hats).contiguous()
        latents = {"y": torch.round(y_hat).int(), "z": torch.cat(z_symbols)}
        return CodedStreams(streams, latents, self.model.g_s(y_hat) if reconstruct else None)

    def _decode_padded(self, streams, num_views, size):
        per_view = 1 + 2 * len(self.groups)
        if len(streams) != per_view * num_views:
            raise ValueError(f"expected {per_view * num_views} streams for {num_views} views, found {len(streams)}")
        lc = self.model.latent_codec
        shapes = self._shapes(size)
        y_hats, z_symbols = [], []
        for view in range(num_views):
            chunk = streams[view * per_view : (view + 1) * per_view]
            with single_threaded():
                out = lc.decompress([[s] for s in chunk[1:]] + [[chunk[0]]], shapes)
            z_symbols.append(self.hyperprior.decode([chunk[0]], size, features=False).symbols)
            y_hats.append(out["y_hat"])
        y_hat = torch.cat(y_hats).contiguous()
        latents = {"y": torch.round(y_hat).int(), "z": torch.cat(z_symbols)}
        return CodedStreams(list(streams), latents, self.model.g_s(y_hat))

    def parameter_counts(self) -> dict[str, int]:
        lc = self.model.latent_codec
        entropy = parameter_count(lc)
        return {
            "g_a": parameter_count(self.model.g_a),
            "g_s": parameter_count(self.model.g_s),
            "entropy_model": entropy,
            "encoder": parameter_count(self.model.g_a) + entropy,
            "decoder": entropy - parameter_count(lc["hyper"].h_a) + parameter_count(self.model.g_s),
            "total": parameter_count(self),
        }


register_codec(
    "single-view-elic2022-chandelier", 101,
    {"paper": ElicConfig(192, 320), "tiny": ElicConfig(32, 40)},
    "Baseline: CompressAI ELIC (Chandelier re-implementation) applied to each view independently",
)(SingleViewElic)
