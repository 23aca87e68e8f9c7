"""A baseline at a learned codec's bit rate: the bisection lands on the setting whose real bpp
is nearest the target, and the point is measured like any other."""

from __future__ import annotations

import pytest

from mvarchive.datasets import discover_dataset, load_group
from mvarchive.evaluation.baselines import get_baseline
from mvarchive.evaluation.matched import _bpp, match_rate, setting_grid


def test_setting_grid_covers_the_sweep_in_rate_order() -> None:
    jpeg = get_baseline("jpeg")
    grid = setting_grid(jpeg)
    assert grid[0] == jpeg.settings[0] and grid[-1] == jpeg.settings[-1] and grid == sorted(grid)
    x265 = get_baseline("x265-intra")
    qp = setting_grid(x265)
    assert qp[0] == 46 and qp[-1] == 22 and len(qp) == 25  # every QP, high QP (low rate) first
    j2k = setting_grid(get_baseline("jpeg2000"))
    assert len(j2k) > len(get_baseline("jpeg2000").settings) and j2k == sorted(j2k)


@pytest.mark.parametrize("target", [0.35, 1.2])
def test_jpeg_matches_the_target_rate(sample_data, target: float) -> None:
    index = discover_dataset(str(sample_data.stereo))
    groups = index.groups[:2]
    point = match_rate("jpeg", groups, target)
    chosen = point.setting
    jpeg = get_baseline("jpeg")
    images = [load_group(g) for g in groups]
    grid = setting_grid(jpeg)
    i = grid.index(chosen)
    error = abs(point.summary["bpp"] - target)
    for j in (i - 1, i + 1):  # no neighbouring setting is closer to the target
        if 0 <= j < len(grid):
            assert error <= abs(_bpp(jpeg, images, grid[j]) - target) + 1e-12
    assert point.summary["groups"] == 2 and 15 < point.summary["psnr"] < 60
    assert point.label == f"quality={chosen:g}" and point.info["target_bpp"] == target


def test_refuses_a_meaningless_target(sample_data) -> None:
    index = discover_dataset(str(sample_data.stereo))
    with pytest.raises(ValueError, match="positive"):
        match_rate("jpeg", index.groups[:1], 0.0)
