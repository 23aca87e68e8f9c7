"""CAMSIC and the single-view ELIC baseline: contract checks at the tiny preset, paper
parameter counts, and CAMSIC's coding order (schedule, tie-breaking, encoder/decoder agreement)."""

from __future__ import annotations

import pytest
import torch

import mvarchive.codecs.camsic  # noqa: F401  (registers "camsic")
import mvarchive.codecs.elic  # noqa: F401  (registers "single-view-elic2022-chandelier")
from mvarchive.codecs import create_codec, load_codec
from mvarchive.codecs.camsic import select_positions, sine_schedule
from tests.codecs.helpers import assert_round_trip, random_views

CODECS = ["camsic", "single-view-elic2022-chandelier"]


@pytest.fixture(scope="module")
def codecs():
    return {name: load_codec(name=name, preset="tiny") for name in CODECS}


def test_camsic_training_mask_follows_the_global_rng():
    codec = create_codec("camsic", "tiny").train()
    x = random_views(2, 64, 64, seed=1)[None]
    torch.manual_seed(3)
    a = codec(x)["likelihoods"]["y"]
    torch.manual_seed(3)
    b = codec(x)["likelihoods"]["y"]
    assert torch.equal(a.detach(), b.detach())


@pytest.mark.parametrize("name", CODECS)
@pytest.mark.parametrize("size", [(64, 64), (97, 131)])
def test_round_trip_is_exact(codecs, name, size):
    x = random_views(2, *size, seed=2)
    encoded = assert_round_trip(codecs[name], x)
    assert encoded.x_hat.shape == x.shape


def test_paper_parameter_counts():
    with torch.device("meta"):  # shapes only: no memory, no initialization cost
        camsic = create_codec("camsic", "paper").parameter_counts()
        elic = create_codec("single-view-elic2022-chandelier", "paper").parameter_counts()
    assert abs(camsic["total"] / 84_190_627 - 1) < 0.02, camsic
    assert abs(camsic["g_a"] / 7_337_792 - 1) < 0.02 and abs(camsic["transformer"] / 56.725e6 - 1) < 0.02, camsic
    assert abs(elic["total"] / 33.79e6 - 1) < 0.02, elic


def test_camsic_takes_exactly_two_views(codecs):
    with pytest.raises(ValueError, match="takes 2 views, got 3"):
        codecs["camsic"].compress(random_views(3, 64, 64, seed=5))


# --- CAMSIC coding order ---------------------------------------------------------------------
def test_sine_schedule_counts():
    assert sine_schedule(256, 8) == [49, 48, 44, 38, 31, 23, 14, 9]
    assert sine_schedule(1024, 8) == [199, 192, 177, 155, 127, 94, 58, 22]
    for n in (1, 16, 48, 96, 1000):
        counts = sine_schedule(n, 8)
        assert sum(counts) == n and min(counts) >= 0


def test_equal_scores_break_ties_by_raster_index():
    scales = torch.full((4, 10), 0.5)
    decoded = torch.zeros(10, dtype=torch.bool)
    assert select_positions(scales, decoded, 3).tolist() == [0, 1, 2]
    decoded[[0, 2]] = True
    assert select_positions(scales, decoded, 3).tolist() == [1, 3, 4]
    scales[:, 7] = 5.0  # wider -> more bits -> picked last
    scales[:, 9] = 0.2  # narrower -> fewer bits -> picked first
    assert select_positions(scales, decoded, 2).tolist() == [1, 9]
    assert select_positions(scales, decoded, 8).tolist() == [1, 3, 4, 5, 6, 7, 8, 9]
    # every scale under the 0.11 bound scores the same: ties again go by raster index
    low = torch.tensor([[0.05, 0.01, 0.11, 0.001]])
    assert select_positions(low, torch.zeros(4, dtype=torch.bool), 2).tolist() == [0, 1]


def test_camsic_order_agreement_over_many_inputs(codecs):
    codec = codecs["camsic"]
    sizes = [(64, 64), (64, 128), (128, 64), (97, 131)]
    for seed in range(20):
        for size in sizes:
            g = torch.Generator().manual_seed(1000 + seed)
            x = torch.rand(2, 3, *size, generator=g) if seed % 2 else random_views(2, *size, seed=seed)
            assert_round_trip(codec, x)




def test_camsic_from_a_bare_compressai_elic_state_dict():
    """CompressAI's own Elic2022Chandelier keys (no ``model.`` prefix) map too; another M
    leaves the layers that touch y fresh and says why."""
    from compressai.models import Elic2022Chandelier

    from mvarchive.codecs.camsic import camsic_from_elic
    from mvarchive.codecs.elic import elic_groups

    torch.manual_seed(4)
    elic = Elic2022Chandelier(32, 40, groups=elic_groups(40)).eval()
    camsic, report = camsic_from_elic(elic.state_dict(), preset="tiny")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(camsic.g_a(x), elic.g_a(x))
    assert {k.split(".")[0] for k in report.loaded} == {"g_a", "g_s"} and not report.skipped
    assert {k for k in report.unused if not k.startswith("latent_codec.")} == set()

    narrow, report = camsic_from_elic(Elic2022Chandelier(32, 60, groups=elic_groups(60)).state_dict(), preset="tiny")
    assert "g_a.13.weight" in report.skipped and "shape mismatch" in report.reasons["g_a.13.weight"]
    assert "g_a.0.weight" in report.loaded and "CAMSIC weights from" in report.summary()
