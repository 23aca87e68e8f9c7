"""MLIC++ per view: the core (transforms, hyperprior, entropy model) and the ``single-view-mlicpp`` codec."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional

from ..base import CodecIdentity, CodedStreams, MultiViewCodec, ViewRange, parameter_count
from ..entropy import (
    HYPERPRIOR_MULTIPLE,
    HyperCode,
    Hyperprior,
    RansQuantizer,
    single_threaded,
)
from ..registry import register_codec
from .config import MLICPPConfig
from .entropy_model import MultiReferenceEntropyModel, ViewContextHook
from .transforms import analysis_transform, hyper_analysis, hyper_synthesis, synthesis_transform


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

    def _code_view(
        self, z: HyperCode, quantizer: RansQuantizer, y_string: bytes | None, y=None, view_context=None
    ) -> ViewCode:
        hyper = z.features
        if hyper.shape[0] != 1:
            raise ValueError(f"coding takes one view at a time, got a batch of {hyper.shape[0]}")
        with single_threaded():
            y_hat, y_symbols = self.mem.run(hyper, quantizer, y, view_context)
        if y_string is None:
            (y_string,) = quantizer.flush()
        return ViewCode(z.strings[0], y_string, y_symbols, z.symbols, y_hat, hyper.chunk(2, dim=1)[1])

    def encode_view(self, x: torch.Tensor, view_context: ViewContextHook | None = None) -> ViewCode:
        """Code one padded view (1, 3, H, W) into its z and y strings."""
        y = self.g_a(x)
        z = self.hyperprior.encode(y)
        quantizer = RansQuantizer.encoding(self.gaussian_conditional, 1)
        return self._code_view(z, quantizer, None, y=y, view_context=view_context)

    def decode_view(
        self, z_string: bytes, y_string: bytes, size: tuple[int, int], view_context: ViewContextHook | None = None
    ) -> ViewCode:
        """Decode one view of padded size ``size`` from its z and y strings."""
        z = self.hyperprior.decode([z_string], size)
        quantizer = RansQuantizer.decoding(self.gaussian_conditional, [y_string])
        return self._code_view(z, quantizer, y_string, view_context=view_context)

    def parameter_counts(self) -> dict[str, int]:
        parts = self.mem.slices
        pick = lambda name: [getattr(p, name, None) for p in parts]  # noqa: E731
        return {
            "g_a": parameter_count(self.g_a),
            "g_s": parameter_count(self.g_s),
            "h_a": parameter_count(self.h_a),
            "h_s": parameter_count(self.h_s),
            "entropy_bottleneck": parameter_count(self.entropy_bottleneck),
            "local_context": parameter_count(*pick("local")),
            "channel_context": parameter_count(*pick("channel")),
            "global_inter_context": parameter_count(*pick("inter")),
            "global_intra_context": parameter_count(*pick("intra")),
            "entropy_parameters": parameter_count(*pick("ep_anchor"), *pick("ep_nonanchor")),
            "lrp": parameter_count(*pick("lrp_anchor"), *pick("lrp_nonanchor")),
            "total": parameter_count(self),
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
