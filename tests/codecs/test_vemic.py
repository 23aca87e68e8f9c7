"""MLIC++ single-view baseline and VEMIC: training forward, exact coding, weight loading."""

from __future__ import annotations

import pytest
import torch

import mvarchive.codecs.mlicpp  # noqa: F401  (registers single-view-mlicpp)
import mvarchive.codecs.vemic  # noqa: F401  (registers vemic)
from mvarchive.codecs import create_codec, load_codec, save_checkpoint
from mvarchive.codecs.bitstream import unpack
from mvarchive.codecs.vemic import vemic_from_single_view
from tests.codecs.helpers import assert_round_trip, random_views

NAMES = ["single-view-mlicpp", "vemic"]


@pytest.fixture(scope="module")
def codecs():
    return {name: load_codec(name=name, preset="tiny") for name in NAMES}


@pytest.mark.parametrize("size", [(64, 64), (97, 131)])
@pytest.mark.parametrize("k", [2, 3])
def test_vemic_round_trip_is_exact(codecs, size, k):
    assert_round_trip(codecs["vemic"], random_views(k, *size, seed=2))


@pytest.mark.parametrize("size, k", [((64, 64), 2), ((97, 131), 1)])
def test_mlicpp_round_trip_is_exact(codecs, size, k):
    assert_round_trip(codecs["single-view-mlicpp"], random_views(k, *size, seed=2))


def test_vemic_needs_two_views(codecs):
    with pytest.raises(ValueError, match="takes 2\\+ views"):
        codecs["vemic"].compress(random_views(1, 64, 64, seed=5))


def test_vemic_from_single_view_checkpoint(tmp_path):
    torch.manual_seed(3)
    single = create_codec("single-view-mlicpp", "tiny")
    save_checkpoint(single, tmp_path / "mlicpp.pt")
    single = load_codec(tmp_path / "mlicpp.pt")
    vemic, report = vemic_from_single_view(tmp_path / "mlicpp.pt", preset="tiny", source="mlicpp")
    keys = set(vemic.state_dict())
    assert set(report.loaded) == {k for k in keys if k.startswith("base.")}
    assert set(report.new) == {k for k in keys if k.startswith("view_context.")}
    assert not report.skipped and not report.unused
    assert "loaded" in report.summary()

    x = random_views(2, 64, 64, seed=6)
    streams = unpack(vemic.compress(x).data).streams
    reference = unpack(single.compress(x).data).streams  # single-view codes each view alone
    assert streams[:2] == reference[:2]  # view 1 is plain MLIC++
    # The fusion into the entropy parameters starts at zero: before fine-tuning every view
    # codes as MLIC++ would; once it moves, later views change and view 1 does not.
    assert streams == reference
    with torch.no_grad():
        for block in vemic.view_context.slices:
            block.fuse_anchor.weight.normal_(0, 0.5)
            block.fuse_nonanchor.weight.normal_(0, 0.5)
    moved = vemic.compress(x)
    moved_streams = unpack(moved.data).streams
    assert moved_streams[:2] == reference[:2] and moved_streams[2:] != streams[2:]
    assert torch.equal(vemic.decompress(moved.data).x_hat, moved.x_hat)


def test_vemic_from_elic_state_dict_reports_honestly():
    from compressai.models import Elic2022Chandelier

    torch.manual_seed(0)
    elic = Elic2022Chandelier().state_dict()
    vemic, report = vemic_from_single_view(elic, preset="paper", source="elic")
    keys = set(vemic.state_dict())
    loaded, new, skipped = set(report.loaded), set(report.new), set(report.skipped)
    assert loaded | new | skipped == keys
    assert not (loaded & new) and not (loaded & skipped) and not (new & skipped)
    assert "base.entropy_bottleneck.quantiles" in loaded and "base.h_a.0.weight" in loaded
    assert "base.g_a.0.conv1.weight" in skipped and "shape mismatch" in report.reasons["base.g_a.0.conv1.weight"]
    assert {k for k in keys if k.startswith("view_context.")} <= new
    assert torch.equal(vemic.state_dict()["base.h_a.0.weight"], elic["latent_codec.hyper.h_a.0.weight"])
    assert report.unused and str(len(report.loaded)) in report.summary()
    # Paper preset: the MLIC++ base (the very MLICPPCore that single-view-mlicpp wraps) has
    # the official model's 83,501,408 parameters; VEMIC adds only the view context.
    counts = vemic.parameter_counts()
    assert abs(counts["base_total"] / 83_501_408 - 1) < 0.02, counts
    assert counts["total"] == counts["base_total"] + counts["view_context"] and counts["view_context"] > 0
