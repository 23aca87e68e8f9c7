"""BD-rate / BD-PSNR through the bjontegaard package: identities, known shifts, clean-up, reporting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mvarchive.evaluation.bd import (
    BD_METHODS,
    BDResult,
    bd_markdown,
    bd_quality,
    bd_rate,
    compare_curves,
    monotone_curve,
    ms_ssim_db,
)

# A realistic RD curve (x265-intra-like on photographs): bpp rising, PSNR and MS-SSIM rising.
RATE = [0.11, 0.19, 0.31, 0.52, 0.81, 1.23]
PSNR = [27.0, 28.9, 30.9, 33.2, 35.6, 37.8]
MS_SSIM = [0.910, 0.942, 0.964, 0.978, 0.987, 0.992]


def curve(rate=RATE, psnr=PSNR, ms=MS_SSIM) -> dict[str, list[float]]:
    return {"bpp": list(rate), "psnr": list(psnr), "ms_ssim": list(ms)}


@pytest.mark.parametrize("method", BD_METHODS)
def test_curve_against_itself_is_zero(method):
    assert bd_rate(RATE, PSNR, RATE, PSNR, method) == pytest.approx(0.0, abs=1e-9)
    assert bd_quality(RATE, PSNR, RATE, PSNR, method) == pytest.approx(0.0, abs=1e-9)
    result = compare_curves("a", curve(), "b", curve(), method)
    for value in (result.bd_rate_psnr, result.bd_psnr, result.bd_rate_ms_ssim, result.bd_ms_ssim_db):
        assert value == pytest.approx(0.0, abs=1e-9)
    assert result.method == method and result.note == ""


@pytest.mark.parametrize("method", BD_METHODS)
def test_rates_scaled_by_0_9_give_minus_10_percent(method):
    scaled = [0.9 * r for r in RATE]
    assert bd_rate(RATE, PSNR, scaled, PSNR, method) == pytest.approx(-10.0, abs=0.5)
    result = compare_curves("anchor", curve(), "test", curve(rate=scaled), method)
    assert result.bd_rate_psnr == pytest.approx(-10.0, abs=0.5)
    assert result.bd_rate_ms_ssim == pytest.approx(-10.0, abs=0.5)
    assert result.bd_psnr > 0 and result.bd_ms_ssim_db > 0  # fewer bits at equal quality = more quality at equal rate


def test_quality_shifted_by_one_db_gives_bd_psnr_one():
    shifted = [p + 1.0 for p in PSNR]
    assert bd_quality(RATE, PSNR, RATE, shifted) == pytest.approx(1.0, abs=1e-6)
    assert bd_rate(RATE, PSNR, RATE, shifted) < 0


def test_point_order_does_not_matter():
    order = [3, 0, 5, 1, 4, 2]
    rate = [RATE[i] for i in order]
    psnr = [PSNR[i] for i in order]
    assert bd_rate(RATE, PSNR, rate, psnr) == pytest.approx(0.0, abs=1e-9)


def test_non_monotone_and_non_finite_points_are_dropped():
    r, q = monotone_curve([0.1, 0.2, 0.3, float("nan"), 0.5, 0.0], [30.0, 29.0, 32.0, 33.0, 34.0, 20.0])
    np.testing.assert_allclose(r, [0.1, 0.3, 0.5])
    np.testing.assert_allclose(q, [30.0, 32.0, 34.0])


def test_curves_that_cannot_be_compared_give_nan_with_a_reason():
    single = compare_curves("anchor", curve(), "one-point", curve(RATE[:1], PSNR[:1], MS_SSIM[:1]))
    assert math.isnan(single.bd_rate_psnr) and math.isnan(single.bd_psnr)
    assert "at least 2 rate points" in single.note and single.points_test == 1
    far = compare_curves("anchor", curve(), "far", curve([r * 100 for r in RATE], [p + 30 for p in PSNR]))
    assert math.isnan(far.bd_rate_psnr) and "do not overlap" in far.note and far.overlap_psnr == 0.0
    with pytest.raises(ValueError, match="at least 2 rate points"):
        bd_rate(RATE[:1], PSNR[:1], RATE, PSNR)


def test_unknown_interpolation_is_rejected_naming_the_choices():
    with pytest.raises(ValueError, match="akima, pchip, cubic"):
        bd_rate(RATE, PSNR, RATE, PSNR, method="linear")


def test_ms_ssim_db():
    assert ms_ssim_db(0.9) == pytest.approx(10.0)
    assert ms_ssim_db(0.99) == pytest.approx(20.0)
    assert ms_ssim_db(1.0) == math.inf
    assert math.isnan(ms_ssim_db(float("nan")))


def test_markdown_names_anchor_and_interpolation_and_round_trips():
    result = compare_curves("x265-intra", curve(), "jpeg", curve(rate=[1.5 * r for r in RATE]), "pchip")
    text = bd_markdown([result])
    assert "x265-intra" in text and "pchip" in text and "| jpeg |" in text and "+50.00 %" in text
    assert BDResult.from_dict(result.to_dict()) == result
