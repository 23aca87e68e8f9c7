"""A classical codec at the bit rate a learned codec reached, so the two read side by side.

A sweep of fixed settings (:mod:`mvarchive.evaluation.planning`) gives curves; a person reading
one archive's result wants a single line: "JPEG at the same bpp gives this PSNR". The setting is
searched by bisection on the dataset's real bytes (encode only), then the chosen setting is
coded and decoded once and measured like any rate point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mvarchive.datasets import GroupRef, load_group

from .baselines import Baseline, get_baseline
from .measuring import RatePoint, code_group, measure_group

__all__ = ["match_rate", "setting_grid"]

STEPS_BETWEEN_SETTINGS = 8  # grid density of non-integer settings (e.g. JPEG 2000's target bpp)


def setting_grid(baseline: Baseline) -> list[float]:
    """Every setting the search may pick, from low to high rate: each integer between the sweep's
    ends for integer settings (JPEG quality, x265 QP), else a dense interpolation of the sweep."""
    sweep = [float(s) for s in baseline.settings]
    if all(s.is_integer() for s in sweep):
        low, high = int(sweep[0]), int(sweep[-1])
        step = 1 if high >= low else -1
        return [float(v) for v in range(low, high + step, step)]
    grid = []
    for a, b in zip(sweep[:-1], sweep[1:]):
        grid += list(np.linspace(a, b, STEPS_BETWEEN_SETTINGS, endpoint=False))
    return [float(v) for v in grid] + [sweep[-1]]


def _bpp(baseline: Baseline, groups: Sequence[np.ndarray], setting: float) -> float:
    nbytes = pixels = 0
    for views in groups:
        if baseline.joint:
            nbytes += len(baseline.encode(views, setting))
        else:
            nbytes += sum(len(baseline.encode(view, setting)) for view in views)
        pixels += views.shape[0] * views.shape[1] * views.shape[2]
    return 8.0 * nbytes / pixels


def match_rate(baseline_name: str, groups: Sequence[GroupRef], target_bpp: float,
               storage_options: dict | None = None) -> RatePoint:
    """The baseline's rate point whose dataset bpp is closest to ``target_bpp`` over ``groups``.

    Raises :class:`~mvarchive.evaluation.baselines.BaselineError` when the baseline cannot run
    here (its reason names the missing tool)."""
    if not groups:
        raise ValueError("match_rate needs at least one group")
    if not (target_bpp > 0 and math.isfinite(target_bpp)):
        raise ValueError(f"target bpp must be a positive number, got {target_bpp}")
    baseline = get_baseline(baseline_name)
    baseline.require()
    images = [load_group(group, storage_options) for group in groups]
    grid = setting_grid(baseline)
    rates: dict[int, float] = {}

    def rate(i: int) -> float:
        if i not in rates:
            rates[i] = _bpp(baseline, images, grid[i])
        return rates[i]

    low, high = 0, len(grid) - 1  # bpp grows with the index (settings go from low to high rate)
    while high - low > 1:
        middle = (low + high) // 2
        if rate(middle) < target_bpp:
            low = middle
        else:
            high = middle
    best = min((low, high), key=lambda i: abs(rate(i) - target_bpp))
    setting = grid[best]
    results = []
    for group, views in zip(groups, images):
        coded = code_group(baseline, views, setting, where=f"{baseline_name} group {group.name}")
        results.append(measure_group(group.name, group.cameras, views, coded))
    return RatePoint(baseline_name, f"{baseline.setting_name}={setting:g}", setting, results,
                     info={"target_bpp": target_bpp, "implementation": baseline.available().reason})
