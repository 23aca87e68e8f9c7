"""The promotion gate: does a candidate version beat the champion on an evaluation dataset?

Both are measured on the same data with real bytes (:mod:`mvarchive.models.rd_figures`). With one
rate point each (one checkpoint = one λ, the usual case) the gate compares the rate-distortion
cost the codecs are trained to minimize, at the champion's λ::

    J = R + λ·D      R: bpp from real bytes, D: MSE on [0, 1] (as in the training loss)

and promotes when the candidate's J is lower by more than ``min_improvement`` (relative). When
both carry several rate points (``points``: a list of ``{bpp, psnr, ms_ssim}``) it uses the
BD-rate (PSNR) of the candidate's curve against the champion's: promoted when negative (less
rate for the same quality). Without a champion the candidate is promoted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["GateDecision", "decide", "rd_cost"]


@dataclass
class GateDecision:
    promote: bool
    reason: str
    candidate: dict
    champion: dict | None
    method: str  # "no-champion", "rd-cost", "bd-rate"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rd_cost(figures: Mapping[str, Any], lmbda: float) -> float:
    """J = bpp + λ·MSE (MSE on [0, 1]), the training objective measured with real bytes."""
    return float(figures["bpp"]) + float(lmbda) * float(figures["mse"])


def _label(figures: Mapping[str, Any]) -> str:
    if figures.get("name") and figures.get("version"):
        return f"{figures['name']} v{figures['version']}"
    return str(figures.get("label", "version"))


def _curve(figures: Mapping[str, Any]) -> dict[str, list[float]] | None:
    points = figures.get("points")
    if not points or len(points) < 2:
        return None
    return {key: [float(p[key]) for p in points] for key in ("bpp", "psnr", "ms_ssim")}


def decide(candidate: Mapping[str, Any], champion: Mapping[str, Any] | None, lmbda: float | None = None,
           min_improvement: float = 0.0) -> GateDecision:
    """The gate on measured figures (see the module docstring). ``lmbda`` defaults to the
    champion's (``champion["lmbda"]``), then the candidate's."""
    cand = dict(candidate)
    if champion is None:
        return GateDecision(True, f"{_label(cand)} promoted: there is no champion yet", cand, None, "no-champion")
    champ = dict(champion)
    curves = _curve(cand), _curve(champ)
    if curves[0] is not None and curves[1] is not None:
        from mvarchive.evaluation.bd import compare_curves

        bd = compare_curves(_label(champ), curves[1], _label(cand), curves[0])
        cand["bd_rate_psnr"] = bd.bd_rate_psnr
        if not math.isfinite(bd.bd_rate_psnr):
            return GateDecision(False, f"{_label(cand)} rejected: BD-rate against {_label(champ)} undefined "
                                       f"({bd.note})", cand, champ, "bd-rate")
        promote = bd.bd_rate_psnr < -100.0 * min_improvement
        verdict = "promoted" if promote else "rejected"
        return GateDecision(promote, f"{_label(cand)} {verdict}: BD-rate {bd.bd_rate_psnr:+.2f} % against "
                                     f"{_label(champ)} (PSNR, {bd.method})", cand, champ, "bd-rate")
    lam = lmbda if lmbda is not None else champ.get("lmbda")
    if lam is None or not math.isfinite(float(lam)):
        lam = cand.get("lmbda")
    if lam is None or not math.isfinite(float(lam)):
        raise ValueError(f"no λ to compare {_label(cand)} with {_label(champ)}: neither version has an lmbda tag")
    lam = float(lam)
    j_cand, j_champ = rd_cost(cand, lam), rd_cost(champ, lam)
    cand["rd_cost"], champ["rd_cost"] = j_cand, j_champ
    promote = j_cand < j_champ * (1.0 - min_improvement)
    change = 100.0 * (j_cand - j_champ) / j_champ if j_champ else math.nan
    verdict = "promoted" if promote else "rejected"
    reason = (f"{_label(cand)} {verdict}: RD cost J=R+λ·D at λ={lam:g} is {j_cand:.4f} vs {j_champ:.4f} for "
              f"{_label(champ)} ({change:+.1f} %; bpp {cand['bpp']:.4f} vs {champ['bpp']:.4f}, "
              f"PSNR {cand['psnr']:.2f} vs {champ['psnr']:.2f} dB)")
    return GateDecision(promote, reason, cand, champ, "rd-cost")
