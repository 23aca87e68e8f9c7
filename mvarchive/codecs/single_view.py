"""Single-view baselines: a CompressAI model applied to each view on its own.

``single-view-mbt2018-mean`` wraps CompressAI's ``MeanScaleHyperprior`` (Minnen et al. 2018
without context). Coding order: per view, one z stream then one y stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from compressai.models import MeanScaleHyperprior

from .base import CodecIdentity, CodedStreams, MultiViewCodec, ViewRange
from .entropy import HYPERPRIOR_MULTIPLE, HyperCode, Hyperprior, RansQuantizer, single_threaded
from .registry import register_codec


@dataclass(frozen=True)
class MeanScaleConfig:
    N: int = 128
    M: int = 192


class PerViewCodec(MultiViewCodec):
    """A single-image CompressAI model (``self.model``, built by the subclass) applied to every
    view on its own: training runs it on the views as one batch."""

    pad_multiple = HYPERPRIOR_MULTIPLE
    views = ViewRange(1)
    model: Any  # a CompressAI model (untyped)

    def forward(self, x: torch.Tensor) -> dict:
        self.check_input(x)
        batch, num_views = x.shape[:2]
        out = self.model(x.flatten(0, 1))
        unflat = lambda t: t.reshape(batch, num_views, *t.shape[1:])  # noqa: E731
        return {"x_hat": unflat(out["x_hat"]), "likelihoods": {k: unflat(v) for k, v in out["likelihoods"].items()}}


class SingleViewMeanScale(PerViewCodec):
    def __init__(self, config: MeanScaleConfig, identity: CodecIdentity | None = None) -> None:
        super().__init__(config, identity)
        self.model = MeanScaleHyperprior(config.N, config.M)

    @property
    def hyperprior(self) -> Hyperprior:
        return Hyperprior(self.model.h_a, self.model.entropy_bottleneck, self.model.h_s)

    def _code_y(
        self, z: HyperCode, quantizer: RansQuantizer, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The y symbols and y^ of every view, each view in its own stream."""
        scales, means = z.features.chunk(2, dim=1)
        with single_threaded():
            y_hat, symbols = quantizer(y, scales, means)
        return symbols, y_hat

    def _encode_padded(self, x: torch.Tensor, reconstruct: bool = True) -> CodedStreams:
        y = self.model.g_a(x)
        z = self.hyperprior.encode(y)
        quantizer = RansQuantizer.encoding(self.model.gaussian_conditional, x.shape[0])
        y_symbols, y_hat = self._code_y(z, quantizer, y)
        streams = [s for pair in zip(z.strings, quantizer.flush()) for s in pair]
        latents = {"y": y_symbols, "z": z.symbols}
        return CodedStreams(streams, latents, self.model.g_s(y_hat) if reconstruct else None)

    def _decode_padded(self, streams, num_views, size):
        if len(streams) != 2 * num_views:
            raise ValueError(f"expected {2 * num_views} streams for {num_views} views, found {len(streams)}")
        z = self.hyperprior.decode(streams[0::2], size)
        y_symbols, y_hat = self._code_y(z, RansQuantizer.decoding(self.model.gaussian_conditional, streams[1::2]))
        return CodedStreams(list(streams), {"y": y_symbols, "z": z.symbols}, self.model.g_s(y_hat))


register_codec(
    "single-view-mbt2018-mean", 100,
    {"paper": MeanScaleConfig(128, 192), "tiny": MeanScaleConfig(16, 24)},
    "Baseline: CompressAI mbt2018-mean (mean-scale hyperprior) applied to each view independently",
)(SingleViewMeanScale)
