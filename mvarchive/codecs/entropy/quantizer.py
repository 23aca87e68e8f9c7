"""What a schedule does with the values one step codes: measure them (training) or code them.

A schedule (:mod:`.schedules`) computes the entropy parameters of the values it takes next
and hands them to a :class:`Quantizer`, which returns their reconstruction and what it
recorded: likelihoods when training or estimating (:class:`STEQuantizer`), the integer
symbols when coding (:class:`RansQuantizer`, encoding or decoding over a
:class:`.coding.SymbolCoder`). The schedule never knows which, so training, encoding and
decoding run the same steps and cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from compressai.entropy_models import GaussianConditional

from .coding import CdfTables, SymbolCoder, ste_round


class Quantizer(Protocol):
    """``quantizer(y, scales, means, stream=None)`` -> ``(y_hat, recorded)`` of one step's values.

    ``y`` is the step's latent values (None when decoding), ``scales`` and ``means`` their
    entropy parameters, all of one shape. ``stream``: the rANS stream they go to (None:
    row v of the batch to stream v).
    """

    #: True when every value is at hand at once (training): a serial schedule may then run
    #: in parallel on rounded values (teacher forcing) instead of step by step.
    parallel: bool

    def __call__(
        self, y: torch.Tensor | None, scales: torch.Tensor, means: torch.Tensor, stream: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


class STEQuantizer:
    """Training and rate estimation: the conditional's likelihoods (noisy ``y`` in training
    mode, rounded in eval mode), ``y_hat = round(y - mu) + mu`` with a straight-through gradient."""

    parallel = True

    def __init__(self, conditional: GaussianConditional) -> None:
        self.conditional = conditional

    def __call__(self, y, scales, means, stream=None):
        if y is None:
            raise ValueError("training and estimation need the latent values")
        _, likelihoods = self.conditional(y, scales, means=means)
        return ste_round(y - means) + means, likelihoods


class RansQuantizer:
    """Coding: ``round(y - mu)`` into the coder (encoding) or out of it (decoding); ``y_hat =
    symbols + mu``; records the integer symbols. The CDF table of each symbol is the one its
    scale selects (``conditional.build_indexes``)."""

    parallel = False

    def __init__(self, conditional: GaussianConditional, coder: SymbolCoder) -> None:
        self.conditional = conditional
        self.coder = coder

    @classmethod
    def encoding(cls, conditional: GaussianConditional, streams: int) -> RansQuantizer:
        """A quantizer writing ``streams`` new rANS streams with the conditional's CDF tables."""
        return cls(conditional, SymbolCoder(CdfTables.of(conditional), streams))

    @classmethod
    def decoding(cls, conditional: GaussianConditional, streams: Sequence[bytes]) -> RansQuantizer:
        """A quantizer reading ``streams`` with the conditional's CDF tables."""
        return cls(conditional, SymbolCoder.reading(CdfTables.of(conditional), streams))

    def flush(self) -> list[bytes]:
        """The encoded streams (encoding only)."""
        return self.coder.flush()

    def __call__(self, y, scales, means, stream=None):
        indexes = self.conditional.build_indexes(scales)
        if stream is None:
            symbols = self.coder.code(indexes, means, y)
        else:
            symbols = self.coder.code_stream(stream, indexes, means, y)
        return symbols.to(means.dtype) + means, symbols
