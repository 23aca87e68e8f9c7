"""BiSIC / BiSIC-Fast: contract at the tiny presets, paper parameter counts, view symmetry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mvarchive.codecs.bisic  # noqa: F401  (registers bisic, bisic-fast)
from mvarchive.codecs import create_codec, load_codec

NAMES = ["bisic", "bisic-fast"]


def stereo_pair(height: int, width: int, seed: int) -> torch.Tensor:
    """Two smooth random views, the second a shifted copy of the first plus noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, height // 8 + 2, width // 8 + 3, generator=g)
    img = torch.nn.functional.interpolate(coarse, size=(height, width + 8), mode="bilinear", align_corners=False)
    left, right = img[..., 8:], img[..., :-8]
    pair = torch.cat([left, right]) + 0.05 * torch.rand(2, 3, height, width, generator=g)
    return pair.clamp(0, 1)




@pytest.fixture(scope="module")
def codecs():
    return {name: load_codec(name=name, preset="tiny") for name in NAMES}


@pytest.fixture(scope="module")
def pair64():
    return stereo_pair(64, 64, seed=2)


@pytest.fixture(scope="module")
def coded64(codecs, pair64):
    """One 64x64 encoding per codec, shared by the tests below (the machine is small)."""
    return {name: codecs[name].compress(pair64) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(64, 64), (97, 131)])
def test_round_trip_is_exact(codecs, coded64, pair64, name, size):
    codec = codecs[name]
    x = pair64 if size == (64, 64) else stereo_pair(*size, seed=2)
    encoded = coded64[name] if size == (64, 64) else codec.compress(x)
    decoded = codec.decompress(encoded.data)
    assert decoded.x_hat.shape == x.shape
    assert torch.equal(decoded.x_hat, encoded.x_hat)
    assert set(encoded.latents) == set(decoded.latents) == {"y", "z"}
    for key in encoded.latents:
        assert encoded.latents[key].dtype == np.int32
        assert encoded.latents[key].shape[0] == 2
        np.testing.assert_array_equal(decoded.latents[key], encoded.latents[key])
    assert decoded.header["sizes"] == [list(size)] * 2


@pytest.mark.parametrize(
    ("name", "expected"), [("bisic", 78_210_787), ("bisic-fast", 85_895_075)]
)
def test_paper_parameter_counts(name, expected):
    counts = create_codec(name, "paper").parameter_counts()
    assert abs(counts["total"] / expected - 1) < 0.02, counts
    # module breakdown measured on the official model
    assert counts["codec_convs"] == 16_676_547
    assert counts["codec_mutual_attention"] == 4 * 6_234_432
    assert counts["channel_mutual_attention"] == (2_771_840 if name == "bisic" else 11_081_472)


@pytest.mark.parametrize("name", NAMES)
def test_swapping_views_swaps_outputs(codecs, coded64, pair64, name):
    codec = codecs[name]
    x = pair64
    with torch.no_grad():
        out = codec(x[None])
        swapped = codec(x.flip(0)[None])
    torch.testing.assert_close(swapped["x_hat"], out["x_hat"].flip(1), rtol=0, atol=1e-5)
    for key in out["likelihoods"]:
        torch.testing.assert_close(swapped["likelihoods"][key], out["likelihoods"][key].flip(1), rtol=0, atol=1e-5)
    encoded = coded64[name]
    encoded_swapped = codec.compress(x.flip(0))
    for key in encoded.latents:
        np.testing.assert_array_equal(encoded_swapped.latents[key], encoded.latents[key][::-1])
    torch.testing.assert_close(encoded_swapped.x_hat, encoded.x_hat.flip(0), rtol=0, atol=1e-5)


def test_three_views_are_rejected(codecs):
    codec = codecs["bisic-fast"]
    with pytest.raises(ValueError, match="takes 2 views, got 3"):
        codec.compress(stereo_pair(64, 64, seed=6).repeat(2, 1, 1, 1)[:3])
    with pytest.raises(ValueError, match="takes 2 views, got 3"):
        codec(torch.rand(1, 3, 3, 64, 64))


def test_invalid_configs_name_the_option():
    with pytest.raises(ValueError, match="slices must divide N"):
        create_codec("bisic", "tiny", slices=5)
    with pytest.raises(ValueError, match="context must be one of"):
        create_codec("bisic", "tiny", context="raster")
    with pytest.raises(ValueError, match="channel_attention must be a multiple"):
        create_codec("bisic", "tiny", channel_attention=24)
