"""LDMIC: learning-based distributed multi-view image coding (Zhang et al., ICLR 2023).

Data flow (paper §3, Fig. 2; official code ``Xinjie-Q/LDMIC``): every view is
encoded *independently* by the same network: x_k -> g_a -> y_k -> h_a -> z_k. z_k is coded
with a factorized prior, its hyper-decoding h_s gives the prior parameters of y_k, refined by
a spatial context model (autoregressive raster scan for ``ldmic``, two-pass checkerboard for
``ldmic-fast``). The *joint* decoder reconstructs all views together: the synthesis transform
carries two joint context transfer (JCT) modules, before the 1st and the 3rd transposed conv,
that let each view attend to the mean of the other views' features. Any K >= 2 works.

Coding order: per view k (in view order), one z stream then one y stream; streams are
``[z_0, y_0, z_1, y_1, ...]``. For ``ldmic`` the y stream holds all channels of each latent
position in raster order; for ``ldmic-fast`` it holds the anchors ((row+col) odd, all
channels) then the non-anchors.

The entropy-parameter path (h_s, context, entropy parameters) runs single-threaded in float64
while coding (``exact_entropy``), so encoder and decoder derive identical CDF indexes whatever
their thread counts.

Deviations: training feeds ``round(y)`` to the autoregressive context (the decoder sees
``round(y - mu) + mu``), as CompressAI's mbt2018 trains it; the official code uses noisy y.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from compressai.models.utils import conv, deconv

from .base import CodecIdentity, CodedStreams, MultiViewCodec, ViewRange, parameter_count
from .entropy import (
    HYPERPRIOR_MULTIPLE,
    Hyperprior,
    hyper_analysis,
    hyper_synthesis,
    make_context_model,
    single_threaded,
)
from .layers import JointContextTransfer
from .registry import register_codec


@dataclass(frozen=True)
class LDMICConfig:
    N: int = 192  # channels of the transforms and of z
    M: int = 192  # channels of y
    context: str = "autoregressive"  # or "checkerboard" (LDMIC-fast)
    attention_heads: int = 2


def _presets(context: str) -> dict[str, LDMICConfig]:
    return {
        "paper": LDMICConfig(192, 192, context),
        "tiny": LDMICConfig(32, 32, context),
    }


class LDMIC(MultiViewCodec):
    pad_multiple = HYPERPRIOR_MULTIPLE
    views = ViewRange(2)

    def __init__(self, config: LDMICConfig, identity: CodecIdentity | None = None) -> None:
        super().__init__(config, identity)
        n, m = config.N, config.M
        if n % 8 or m % 8:
            raise ValueError(f"N and M must be multiples of 8 (JCT uses C/8 key channels), got N={n}, M={m}")
        self.g_a = nn.Sequential(
            conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m)
        )
        self.h_a = hyper_analysis(m, n)
        self.h_s = hyper_synthesis(n, m * 3 // 2, 2 * m)
        self.entropy_bottleneck = EntropyBottleneck(n)
        self.gaussian_conditional = GaussianConditional(None)
        self.context_model = make_context_model(config.context, latent_channels=m, hyper_channels=2 * m)
        self.jct_latent = JointContextTransfer(m, config.attention_heads)
        self.g_s_head = nn.Sequential(deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True))
        self.jct_feature = JointContextTransfer(n, config.attention_heads)
        self.g_s_tail = nn.Sequential(deconv(n, n), GDN(n, inverse=True), deconv(n, 3))

    # --- shared pieces ------------------------------------------------------------------
    def synthesize(self, y_hat: torch.Tensor, num_views: int) -> torch.Tensor:
        """Joint decoder: (B*K, M, h, w) latents -> (B*K, 3, 16h, 16w) images."""
        features = self.g_s_head(self.jct_latent(y_hat, num_views))
        return self.g_s_tail(self.jct_feature(features, num_views))

    @property
    def hyperprior(self) -> Hyperprior:
        return Hyperprior(self.h_a, self.entropy_bottleneck, self.h_s)

    # --- training -----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> dict:
        self.check_input(x)
        batch, num_views = x.shape[:2]
        y = self.g_a(x.flatten(0, 1))
        hyper, z_likelihoods = self.hyperprior.forward(y)
        y_hat, y_likelihoods = self.context_model(y, hyper, self.gaussian_conditional)
        x_hat = self.synthesize(y_hat, num_views)
        return {
            "x_hat": x_hat.reshape(batch, num_views, *x_hat.shape[1:]),
            "likelihoods": {
                "y": y_likelihoods.reshape(batch, num_views, *y_likelihoods.shape[1:]),
                "z": z_likelihoods.reshape(batch, num_views, *z_likelihoods.shape[1:]),
            },
        }

    # --- coding -------------------------------------------------------------------------
    def _encode_padded(self, x: torch.Tensor, reconstruct: bool = True) -> CodedStreams:
        num_views = x.shape[0]
        y = self.g_a(x)
        z = self.hyperprior.encode(y)
        with single_threaded():
            y_symbols, y_hat, y_strings = self.context_model.encode(y, z.features, self.gaussian_conditional)
        streams = [s for pair in zip(z.strings, y_strings) for s in pair]
        latents = {"y": y_symbols, "z": z.symbols}
        return CodedStreams(streams, latents, self.synthesize(y_hat, num_views) if reconstruct else None)

    def _decode_padded(self, streams, num_views, size):
        if len(streams) != 2 * num_views:
            raise ValueError(f"expected {2 * num_views} streams for {num_views} views, found {len(streams)}")
        z = self.hyperprior.decode(streams[0::2], size)
        with single_threaded():
            y_symbols, y_hat = self.context_model.decode(z.features, self.gaussian_conditional, streams[1::2])
        latents = {"y": y_symbols, "z": z.symbols}
        return CodedStreams(list(streams), latents, self.synthesize(y_hat, num_views))

    def parameter_counts(self) -> dict[str, int]:
        """Encoder side (g_a, hyperprior, context, entropy parameters) and decoder side
        (h_s, factorized prior, context, entropy parameters, both JCTs, g_s), as in the
        paper's Table 2."""
        entropy = (self.entropy_bottleneck, self.context_model)
        synthesis = (self.jct_latent, self.jct_feature, self.g_s_head, self.g_s_tail)
        return {
            "encoder": parameter_count(self.g_a, self.h_a, self.h_s, *entropy),
            "decoder": parameter_count(self.h_s, *entropy, *synthesis),
            "total": parameter_count(self),
        }


register_codec(
    "ldmic", 1, _presets("autoregressive"),
    "LDMIC (ICLR 2023): independent encoders, joint decoder with JCT; autoregressive context",
)(LDMIC)

register_codec(
    "ldmic-fast", 2, _presets("checkerboard"),
    "LDMIC-fast: LDMIC with a two-pass checkerboard context (parallel decoding)",
)(LDMIC)
