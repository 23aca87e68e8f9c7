"""Single-view baselines: a CompressAI model applied to each view on its own.

``single-view-mbt2018-mean`` wraps CompressAI's ``MeanScaleHyperprior`` (Minnen et al. 2018
without context). Coding order: per view, one z stream then one y stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from compressai.models import MeanScaleHyperprior

from .base import CodedStreams, MultiViewCodec
from .entropy import single_threaded
from .registry import register_codec


@dataclass(frozen=True)
class MeanScaleConfig:
    N: int = 128
    M: int = 192


class SingleViewMeanScale(MultiViewCodec):
    pad_multiple = 64
    min_views = 1
    max_views = None

    def __init__(self, config: MeanScaleConfig) -> None:
        super().__init__(config)
        self.model = MeanScaleHyperprior(config.N, config.M)

    def forward(self, x: torch.Tensor) -> dict:
        self.check_input(x)
        batch, num_views = x.shape[:2]
        out = self.model(x.flatten(0, 1))
        unflat = lambda t: t.reshape(batch, num_views, *t.shape[1:])  # noqa: E731
        return {"x_hat": unflat(out["x_hat"]), "likelihoods": {k: unflat(v) for k, v in out["likelihoods"].items()}}

    def _hyper(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scales, means = self.model.h_s(z_hat).chunk(2, dim=1)
        return self.model.gaussian_conditional.build_indexes(scales), means, scales

    def _encode_padded(self, x: torch.Tensor, reconstruct: bool = True) -> CodedStreams:
        m = self.model
        y = m.g_a(x)
        z = m.h_a(y)
        with single_threaded():
            z_strings = m.entropy_bottleneck.compress(z)
            z_hat = m.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
            indexes, means, _ = self._hyper(z_hat)
        y_strings = m.gaussian_conditional.compress(y, indexes, means=means)
        y_symbols = m.gaussian_conditional.quantize(y, "symbols", means)
        y_hat = m.gaussian_conditional.dequantize(y_symbols, means)
        medians = m.entropy_bottleneck._get_medians().detach()
        latents = {"y": y_symbols, "z": torch.round(z_hat - medians).int()}
        streams = [s for pair in zip(z_strings, y_strings) for s in pair]
        return CodedStreams(streams, latents, m.g_s(y_hat) if reconstruct else None)

    def _decode_padded(self, streams, num_views, size):
        if len(streams) != 2 * num_views:
            raise ValueError(f"expected {2 * num_views} streams for {num_views} views, found {len(streams)}")
        m = self.model
        with single_threaded():
            z_hat = m.entropy_bottleneck.decompress(list(streams[0::2]), (size[0] // 64, size[1] // 64))
            indexes, means, _ = self._hyper(z_hat)
        y_hat = m.gaussian_conditional.decompress(list(streams[1::2]), indexes, means=means)
        medians = m.entropy_bottleneck._get_medians().detach()
        latents = {"y": torch.round(y_hat - means).int(), "z": torch.round(z_hat - medians).int()}
        return CodedStreams(list(streams), latents, m.g_s(y_hat))


register_codec(
    "single-view-mbt2018-mean", 100,
    {"paper": MeanScaleConfig(128, 192), "tiny": MeanScaleConfig(16, 24)},
    "Baseline: CompressAI mbt2018-mean (mean-scale hyperprior) applied to each view independently",
)(SingleViewMeanScale)
