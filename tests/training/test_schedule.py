"""The papers' learning-rate schedules, mapped onto a run's steps."""

from __future__ import annotations

import pytest
import torch

from mvarchive.codecs import list_codecs
from mvarchive.training import PAPER_SCHEDULES, TrainConfig
from mvarchive.training.schedule import StepSchedule


def _rates(codec: str, steps: int, name: str = "paper") -> list[float]:
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    schedule = StepSchedule(optimizer, name, codec, steps)
    return [schedule.apply(step) for step in range(steps)]


def test_vemic_drops_tenfold_at_its_papers_epochs():
    rates = _rates("vemic", 250)  # one step per epoch: the paper's 250 epochs
    assert rates[99] == 1e-4 and rates[100] == pytest.approx(1e-5)
    assert rates[179] == pytest.approx(1e-5) and rates[180] == pytest.approx(1e-6)
    assert rates[220] == pytest.approx(1e-7) and rates[-1] == pytest.approx(1e-7)


def test_ldmic_halves_every_quarter_and_ecsic_drops_once():
    rates = _rates("ldmic", 400)
    expected = [1e-4, 1e-4, 5e-5, 2.5e-5, 1.25e-5, 1.25e-5]
    assert [rates[i] for i in (0, 99, 100, 200, 300, 399)] == pytest.approx(expected)
    ecsic = _rates("ecsic", 1300)
    assert ecsic[999] == 1e-4 and ecsic[1000] == pytest.approx(1e-5) and ecsic[-1] == pytest.approx(1e-5)
    assert set(_rates("ecsic", 1300, "constant")) == {1e-4}


def test_every_codec_has_its_papers_schedule():
    assert {spec.name for spec in list_codecs()} <= set(PAPER_SCHEDULES)
    with pytest.raises(ValueError, match="lr_schedule must be one of paper, constant, got 'cosine'"):
        TrainConfig(dataset="d", output_dir="o", lr_schedule="cosine")


def test_extended_run_remaps_the_milestones():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    first = StepSchedule(optimizer, "paper", "ldmic", 8)
    state = first.state_dict()
    longer = StepSchedule(torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-4), "paper", "ldmic", 16)
    assert longer.load_state_dict(state) == 8
    assert longer.apply(7) == pytest.approx(5e-5)  # 8 steps into 16: the second quarter
    same = StepSchedule(torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-4), "paper", "ldmic", 8)
    assert same.load_state_dict(state) is None
