import math

import pytest

from mvarchive.monitoring import DriftPolicy, RDFigures, assess_drift
from mvarchive.monitoring.drift import mse_from_psnr

REFERENCE = RDFigures.from_psnr(0.40, 30.0)  # J at λ=1024: 0.40 + 1024e-3 = 1.424


def test_mse_from_psnr_round_trips():
    assert mse_from_psnr(30.0) == pytest.approx(1e-3)
    assert RDFigures.from_psnr(0.1, 27.5).psnr == pytest.approx(27.5)


def test_same_figures_fit():
    decision = assess_drift(REFERENCE, REFERENCE, 1024, [])
    assert decision.ratio == pytest.approx(0.0)
    assert not decision.exceeded and not decision.triggered and decision.streak == 0
    assert decision.reason.startswith("fits")


def test_one_bad_run_is_not_enough_two_are():
    noisy = RDFigures.from_psnr(1.2, 24.0)  # more bits and more distortion
    first = assess_drift(noisy, REFERENCE, 1024, [])
    assert first.exceeded and first.streak == 1 and not first.triggered
    second = assess_drift(noisy, REFERENCE, 1024, [first.exceeded])
    assert second.triggered and second.streak == 2
    assert "2 runs in a row" in second.reason


def test_a_good_run_breaks_the_streak():
    noisy = RDFigures.from_psnr(1.2, 24.0)
    decision = assess_drift(noisy, REFERENCE, 1024, [False, True, True])
    assert decision.streak == 1 and not decision.triggered


def test_persisting_drift_triggers_again_only_after_another_full_streak():
    noisy = RDFigures.from_psnr(1.2, 24.0)
    policy = DriftPolicy(threshold=0.1, consecutive=2)
    assert not assess_drift(noisy, REFERENCE, 1024, [True, True], policy).triggered  # streak 3
    assert assess_drift(noisy, REFERENCE, 1024, [True, True, True], policy).triggered  # streak 4


def test_threshold_is_relative_cost():
    slightly_worse = RDFigures(REFERENCE.bpp * 1.05, REFERENCE.mse * 1.05)  # J +5 %
    assert not assess_drift(slightly_worse, REFERENCE, 1024, []).exceeded
    assert assess_drift(slightly_worse, REFERENCE, 1024, [], DriftPolicy(threshold=0.04, consecutive=1)).triggered


@pytest.mark.parametrize("kwargs", [{"threshold": 0.0}, {"consecutive": 0}])
def test_bad_policy_refused(kwargs):
    with pytest.raises(ValueError):
        DriftPolicy(**kwargs)


def test_cost_is_training_objective():
    figures = RDFigures(0.5, 0.002)
    assert figures.cost(256) == pytest.approx(0.5 + 256 * 0.002)
    assert math.isinf(RDFigures(0.1, 0.0).psnr)
