"""Laplace entropy models for CompressAI's rANS coder (ECSIC's "all Laplace" entropy model).

:class:`LaplaceConditional` is CompressAI's ``GaussianConditional`` with the standard Laplace
distribution in place of the normal: the likelihood of a value v given (mu, b) is

    P = F((1/2 - |v - mu|) / b) - F((-1/2 - |v - mu|) / b),   F = standard Laplace CDF,

with b lower-bounded at 0.1 and P at 1e-9, both by CompressAI's gradient-passing
``LowerBound`` (ECSIC paper §3.1 and its official code, ``mwoedlinger/ecsic``). Coding reuses the
parent's machinery unchanged: ``update()`` tabulates one quantized CDF per entry of a scale
table (via the overridden ``_standardized_cumulative`` / ``_standardized_quantile``),
``build_indexes`` maps each predicted b to the first table entry >= b, and symbols
``round(v - mu)`` outside a table's support go through the coder's bypass escape, so every
integer is codable.

:class:`FactorizedLaplace` is the prior of ECSIC's left hyperlatent: one learned (mu, b) per
channel, fixed after training, broadcast over positions so that it is coded with the very
same :class:`LaplaceConditional` tables.

Choices:

* Scale table: 64 log-spaced b from 0.1 (exactly the lower bound, so a scale at the bound
  gets its own table) to 64. A Laplace with scale b has standard deviation b*sqrt(2), so
  b = 64 is a standard deviation of about 90 (CompressAI's Gaussian table stops at 256, but
  a Laplace table of that width would hold ~7,500 entries); larger b fall into the last
  table, which costs rate, never correctness. Adjacent entries differ by a factor of ~1.108.
* Table extent: ``tail_mass`` 1e-9 as in CompressAI, i.e. each table spans
  ceil(b * ln(1e9)) = ceil(20.7 b) symbols either side of zero (2,655 entries at b = 64).
* The CDF is evaluated from ``exp(-|x|)`` on both branches, which is exact in the tails
  (no 1 - (1 - tiny) cancellation) and gives finite gradients everywhere.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
from compressai.entropy_models import GaussianConditional

LAPLACE_SCALE_BOUND = 0.1
LAPLACE_SCALE_MAX = 64.0
LAPLACE_SCALE_LEVELS = 64


def laplace_scale_table(
    minimum: float = LAPLACE_SCALE_BOUND, maximum: float = LAPLACE_SCALE_MAX, levels: int = LAPLACE_SCALE_LEVELS
) -> torch.Tensor:
    """Log-spaced Laplace scales b for the coding tables (see the module docstring)."""
    if not 0 < minimum < maximum or levels < 2:
        raise ValueError(f"need 0 < minimum < maximum and levels >= 2, got {minimum}, {maximum}, {levels}")
    # float64, then rounded: the same float32 table whatever the CPU's exp kernel (docs/determinism.md)
    table = torch.exp(torch.linspace(math.log(minimum), math.log(maximum), levels, dtype=torch.float64)).float()
    table[0], table[-1] = minimum, maximum  # exact ends: a scale at the bound selects table 0
    return table


class LaplaceConditional(GaussianConditional):
    """Conditional Laplace entropy model: ``forward(v, scales, means)`` -> (v~, likelihoods).

    ``scales`` are the Laplace b (not standard deviations). Build the tables with
    ``update_scale_table(laplace_scale_table())`` (the codec's ``update()`` does this).
    """

    def __init__(
        self,
        scale_table: list[float] | tuple[float, ...] | None = None,
        *,
        scale_bound: float = LAPLACE_SCALE_BOUND,
        likelihood_bound: float = 1e-9,
        tail_mass: float = 1e-9,
    ) -> None:
        if scale_bound <= 0:
            raise ValueError(f"scale_bound must be positive, got {scale_bound}")
        super().__init__(scale_table, scale_bound=scale_bound, tail_mass=tail_mass, likelihood_bound=likelihood_bound)

    def _standardized_cumulative(self, inputs: torch.Tensor) -> torch.Tensor:
        half_tail = 0.5 * torch.exp(-inputs.abs())
        return torch.where(inputs < 0, half_tail, 1.0 - half_tail)

    @staticmethod
    def _standardized_quantile(quantile):
        q = np.asarray(quantile, dtype=np.float64)
        with np.errstate(divide="ignore"):
            result = np.where(q < 0.5, np.log(2.0 * q), -np.log(2.0 - 2.0 * q))
        return float(result) if result.ndim == 0 else result


class FactorizedLaplace(nn.Module):
    """Per-channel learned Laplace (mu, b), broadcast over positions.

    ``params(shape)`` returns ``(scales, means)`` of shape (N, C, h, w), ready for a
    :class:`LaplaceConditional`. ``scale`` is the raw b; the conditional's lower bound (0.1)
    applies when it is used, as for predicted scales. Initialized to mu = 0, b = 1.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(channels))
        self.scale = nn.Parameter(torch.ones(channels))

    def params(self, shape: torch.Size | tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scales, means)`` broadcast to ``shape`` = (N, C, h, w)."""
        shape = torch.Size(shape)
        if len(shape) != 4 or shape[1] != self.loc.numel():
            raise ValueError(f"expected a shape (N, {self.loc.numel()}, h, w), got {tuple(shape)}")
        per_channel = (1, -1, 1, 1)
        return self.scale.view(per_channel).expand(shape), self.loc.view(per_channel).expand(shape)


__all__ = ["FactorizedLaplace", "LaplaceConditional", "laplace_scale_table"]
