"""Drift of an archive run's rate-distortion cost against the champion's reference figures.

The codec is trained to minimise J = R + λ·D (R in bits per pixel, D the MSE of [0, 1] images,
as in ``training/loss.py``). The champion carries the J it reached on its evaluation dataset;
an archive run measures R on every group (real bytes) and D on the groups whose quality was
measured. When J is worse than the reference by more than ``threshold`` for ``consecutive``
runs of the same model in a row, the data has moved away from what the model was trained
on and retraining is due. One bad run (a night of rain) is not enough.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["DriftDecision", "DriftPolicy", "RDFigures", "assess_drift", "mse_from_psnr"]


def mse_from_psnr(psnr_db: float) -> float:
    """MSE of [0, 1] images from an 8-bit PSNR (peak 255 ↔ peak 1)."""
    return 10.0 ** (-psnr_db / 10.0)


@dataclass(frozen=True)
class RDFigures:
    """One operating point: bits per pixel and MSE on [0, 1] images."""

    bpp: float
    mse: float

    @classmethod
    def from_psnr(cls, bpp: float, psnr_db: float) -> RDFigures:
        return cls(float(bpp), mse_from_psnr(float(psnr_db)))

    def cost(self, lmbda: float) -> float:
        """J = R + λ·D, the training objective."""
        return self.bpp + lmbda * self.mse

    @property
    def psnr(self) -> float:
        return math.inf if self.mse <= 0 else -10.0 * math.log10(self.mse)


@dataclass(frozen=True)
class DriftPolicy:
    """When a run counts as drifted, and how many in a row trigger retraining."""

    threshold: float = 0.10  # J worse than the reference by more than 10 %
    consecutive: int = 2

    def __post_init__(self) -> None:
        if self.threshold <= 0:
            raise ValueError(f"drift threshold must be > 0, got {self.threshold}")
        if self.consecutive < 1:
            raise ValueError(f"drift needs >= 1 consecutive run, got {self.consecutive}")


@dataclass(frozen=True)
class DriftDecision:
    """What one run showed, and whether it triggers retraining."""

    cost: float  # J of this run
    reference_cost: float  # J of the champion on its evaluation dataset
    ratio: float  # cost / reference_cost - 1
    exceeded: bool  # this run alone is beyond the threshold
    streak: int  # consecutive exceeding runs of this model, this one included
    triggered: bool  # retraining is due now
    reason: str = ""
    figures: dict[str, float] = field(default_factory=dict)


def assess_drift(
    current: RDFigures,
    reference: RDFigures,
    lmbda: float,
    previous_exceeded: Sequence[bool],
    policy: DriftPolicy = DriftPolicy(),
) -> DriftDecision:
    """Judge one run; ``previous_exceeded`` lists earlier runs of the same model, newest first.

    Retraining is triggered when the streak reaches a multiple of ``policy.consecutive``:
    a rejected candidate does not make every later run trigger again, but a drift that
    persists for another full streak does.
    """
    if lmbda <= 0:
        raise ValueError(f"λ must be > 0, got {lmbda}")
    cost, reference_cost = current.cost(lmbda), reference.cost(lmbda)
    ratio = cost / reference_cost - 1.0
    exceeded = ratio > policy.threshold
    streak = 0
    if exceeded:
        streak = 1
        for earlier in previous_exceeded:
            if not earlier:
                break
            streak += 1
    triggered = exceeded and streak % policy.consecutive == 0
    verdict = (f"J {cost:.4f} vs champion {reference_cost:.4f} ({ratio:+.1%}, λ={lmbda:g}); "
               f"threshold {policy.threshold:+.0%}")
    if triggered:
        reason = f"drift: {verdict}, {streak} runs in a row: retraining"
    elif exceeded:
        reason = f"drift: {verdict}, {streak} of {policy.consecutive} runs in a row"
    else:
        reason = f"fits: {verdict}"
    figures = {"bpp": current.bpp, "psnr": current.psnr, "reference_bpp": reference.bpp,
               "reference_psnr": reference.psnr, "cost": cost, "reference_cost": reference_cost, "ratio": ratio}
    return DriftDecision(cost, reference_cost, ratio, exceeded, streak, triggered, reason, figures)
