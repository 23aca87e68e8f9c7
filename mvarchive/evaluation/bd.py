"""Bjøntegaard deltas between two rate-distortion curves, computed by the ``bjontegaard`` package.

* **BD-rate** (%): the average bitrate difference of the test curve against the anchor at equal
  quality, integrated over the quality range both curves cover (negative: the test codec needs
  fewer bits). Computed on PSNR and on MS-SSIM in dB.
* **BD-quality** (dB): the average quality difference at equal rate over the common (log) rate
  range: BD-PSNR, and BD-MS-SSIM in dB where MS-SSIM is mapped to ``-10 log10(1 - MS-SSIM)``.

The curves are interpolated with the method the ``bjontegaard`` package names: ``"akima"``
(default here, recommended by Herglotz et al., "The Bjøntegaard Bible", 2022), ``"pchip"``
(piecewise cubic, as in the JVET/VCEG reporting templates) or ``"cubic"`` (the original
third-order polynomial fit of VCEG-M33). Every result records the method it used.

Before interpolating, each curve is cleaned: points with non-finite values are dropped, the
rest sorted by rate, and a point whose quality is not above that of a lower-rate point is dropped
(a non-monotone curve has no inverse, which BD-rate needs). ``points_*`` in a result counts the
points kept. The package's overlap warning is replaced by the overlap fractions in the result;
with no overlap the delta is NaN and ``note`` says why.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import bjontegaard
import numpy as np

__all__ = [
    "BD_METHODS",
    "DEFAULT_METHOD",
    "BDResult",
    "bd_markdown",
    "bd_quality",
    "bd_rate",
    "compare_curves",
    "ms_ssim_db",
]

BD_METHODS: tuple[str, ...] = ("akima", "pchip", "cubic")
DEFAULT_METHOD = "akima"


def ms_ssim_db(value: float) -> float:
    """MS-SSIM in dB, ``-10 log10(1 - MS-SSIM)``: spreads out values near 1 (inf at 1, NaN for NaN)."""
    if value is None or not math.isfinite(value):
        return math.nan
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)


def _check_method(method: str) -> str:
    if method not in BD_METHODS:
        raise ValueError(f"unknown BD interpolation {method!r}; the bjontegaard package offers {', '.join(BD_METHODS)}")
    return method


def monotone_curve(rate: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Finite points with rate > 0, sorted by rate, keeping only those that raise the quality."""
    r = np.asarray(rate, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if r.shape != q.shape or r.ndim != 1:
        raise ValueError(f"rate and quality must be 1-D of equal length, got {r.shape} and {q.shape}")
    keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    r, q = r[keep], q[keep]
    order = np.lexsort((-q, r))  # by rate; at equal rate the best quality first
    kept_r: list[float] = []
    kept_q: list[float] = []
    for i in order:
        if kept_r and (r[i] <= kept_r[-1] or q[i] <= kept_q[-1]):
            continue
        kept_r.append(float(r[i]))
        kept_q.append(float(q[i]))
    return np.array(kept_r), np.array(kept_q)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    span = max(a.max(), b.max()) - min(a.min(), b.min())
    return float(max(hi - lo, 0.0) / span) if span > 0 else 0.0


def _prepared(anchor_rate: Sequence[float], anchor_quality: Sequence[float], test_rate: Sequence[float],
              test_quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ra, qa = monotone_curve(anchor_rate, anchor_quality)
    rt, qt = monotone_curve(test_rate, test_quality)
    for name, r in (("anchor", ra), ("test", rt)):
        if len(r) < 2:
            raise ValueError(f"BD needs at least 2 rate points with rising quality on each curve; "
                             f"the {name} has {len(r)}")
    return ra, qa, rt, qt


def bd_rate(anchor_rate: Sequence[float], anchor_quality: Sequence[float], test_rate: Sequence[float],
            test_quality: Sequence[float], method: str = DEFAULT_METHOD) -> float:
    """BD-rate in percent of the test curve against the anchor (NaN when the quality ranges do not overlap)."""
    _check_method(method)
    ra, qa, rt, qt = _prepared(anchor_rate, anchor_quality, test_rate, test_quality)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(bjontegaard.bd_rate(ra, qa, rt, qt, method=method, require_matching_points=False, min_overlap=0))


def bd_quality(anchor_rate: Sequence[float], anchor_quality: Sequence[float], test_rate: Sequence[float],
               test_quality: Sequence[float], method: str = DEFAULT_METHOD) -> float:
    """BD-quality (e.g. BD-PSNR in dB) of the test curve against the anchor (NaN without rate overlap)."""
    _check_method(method)
    ra, qa, rt, qt = _prepared(anchor_rate, anchor_quality, test_rate, test_quality)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(bjontegaard.bd_psnr(ra, qa, rt, qt, method=method, require_matching_points=False, min_overlap=0))


@dataclass(frozen=True)
class BDResult:
    """Bjøntegaard deltas of one codec (``test``) against an ``anchor``."""

    test: str
    anchor: str
    method: str  # interpolation used by the bjontegaard package
    bd_rate_psnr: float  # % bits at equal PSNR (negative: test saves bits)
    bd_psnr: float  # dB at equal rate
    bd_rate_ms_ssim: float  # % bits at equal MS-SSIM (dB)
    bd_ms_ssim_db: float  # MS-SSIM dB at equal rate
    overlap_psnr: float  # fraction of the joint PSNR range both curves cover
    overlap_rate: float  # fraction of the joint log-rate range both curves cover
    points_test: int
    points_anchor: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BDResult:
        values: dict[str, Any] = {k: (math.nan if v is None and k not in ("test", "anchor", "method", "note") else v)
                                  for k, v in data.items()}
        return cls(**values)


def compare_curves(
    anchor_name: str,
    anchor: Mapping[str, Sequence[float]],
    test_name: str,
    test: Mapping[str, Sequence[float]],
    method: str = DEFAULT_METHOD,
) -> BDResult:
    """All four deltas of ``test`` against ``anchor``; each curve is ``{"bpp", "psnr", "ms_ssim"}``.

    Never raises for curves that cannot be compared (too few points, no overlap): the deltas
    are NaN and ``note`` explains.
    """
    _check_method(method)
    notes: list[str] = []
    ms_a = [ms_ssim_db(v) for v in anchor["ms_ssim"]]
    ms_t = [ms_ssim_db(v) for v in test["ms_ssim"]]
    ra, qa = monotone_curve(anchor["bpp"], anchor["psnr"])
    rt, qt = monotone_curve(test["bpp"], test["psnr"])

    def safe(fn: Callable[..., float], a_rate: Sequence[float], a_q: Sequence[float], t_rate: Sequence[float],
             t_q: Sequence[float], what: str) -> float:
        try:
            value = fn(a_rate, a_q, t_rate, t_q, method)
        except ValueError as exc:
            notes.append(str(exc))
            return math.nan
        if not math.isfinite(value):
            notes.append(f"{what}: the curves do not overlap")
        return value

    bd_rate_psnr = safe(bd_rate, anchor["bpp"], anchor["psnr"], test["bpp"], test["psnr"], "BD-rate PSNR")
    bd_psnr = safe(bd_quality, anchor["bpp"], anchor["psnr"], test["bpp"], test["psnr"], "BD-PSNR")
    bd_rate_ms = safe(bd_rate, anchor["bpp"], ms_a, test["bpp"], ms_t, "BD-rate MS-SSIM")
    bd_ms = safe(bd_quality, anchor["bpp"], ms_a, test["bpp"], ms_t, "BD-MS-SSIM")
    overlap_q = _overlap(qa, qt) if len(qa) and len(qt) else 0.0
    overlap_r = _overlap(np.log10(ra), np.log10(rt)) if len(ra) and len(rt) else 0.0
    unique = list(dict.fromkeys(notes))
    return BDResult(
        test=test_name, anchor=anchor_name, method=method,
        bd_rate_psnr=bd_rate_psnr, bd_psnr=bd_psnr, bd_rate_ms_ssim=bd_rate_ms, bd_ms_ssim_db=bd_ms,
        overlap_psnr=overlap_q, overlap_rate=overlap_r, points_test=len(rt), points_anchor=len(ra),
        note="; ".join(unique),
    )


def _fmt(value: float, unit: str, signed: bool = True) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.2f}{unit}" if signed else f"{value:.2f}{unit}"


def bd_markdown(results: Sequence[BDResult]) -> str:
    """A Markdown table of BD results (one row per test codec), naming anchor and interpolation."""
    if not results:
        return "No BD results (no anchor curve or no other codec).\n"
    anchors = sorted({r.anchor for r in results})
    methods = sorted({r.method for r in results})
    lines = [
        f"BD against anchor **{', '.join(anchors)}**, interpolation **{', '.join(methods)}** "
        "(bjontegaard package); negative BD-rate = fewer bits than the anchor.",
        "",
        "| codec | BD-rate PSNR | BD-PSNR | BD-rate MS-SSIM | BD-MS-SSIM | PSNR overlap | points | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.test} | {_fmt(r.bd_rate_psnr, ' %')} | {_fmt(r.bd_psnr, ' dB')} | {_fmt(r.bd_rate_ms_ssim, ' %')} "
            f"| {_fmt(r.bd_ms_ssim_db, ' dB')} | {r.overlap_psnr:.0%} | {r.points_test}/{r.points_anchor} "
            f"| {r.note.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"
