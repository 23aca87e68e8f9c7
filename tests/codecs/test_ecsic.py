"""ECSIC: the codec contract at the tiny preset, plus its stereo-specific properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mvarchive.codecs  # noqa: F401  (registers the other codecs: foreign streams, view-count message)
import mvarchive.codecs.ecsic  # noqa: F401  (registers "ecsic")
from mvarchive.codecs import bitstream, check_view_count, create_codec, load_codec
from mvarchive.codecs.laplace import LaplaceConditional, laplace_scale_table
from tests.codecs.helpers import random_views


def lively_codec():
    """The seeded tiny codec with its latents scaled up.

    Untrained, ECSIC quantizes every latent to 0, which would make the coding tests vacuous;
    scaling the last encoder and hyper-encoder convs gives symbols of both signs, values in
    the tables' tails (escape-coded) and varied predicted scales. Deterministic.
    """
    model = load_codec(name="ecsic", preset="tiny")
    with torch.no_grad():
        for stage, gain in ((model.encoder, 40.0), (model.hyper_encoder, 20.0)):
            for side in (stage[2].left[1], stage[2].right[1]):
                side.weight.mul_(gain)
                side.bias.mul_(gain)
        model.hyper_left_head.weight.mul_(10.0)
        model.hyper_left_head.bias.mul_(10.0)
    return model


@pytest.fixture(scope="module")
def codec():
    return lively_codec()


@pytest.mark.parametrize("size", [(64, 64), (97, 131)])
def test_round_trip_is_exact(codec, size):
    x = random_views(2, *size, seed=2)
    encoded = codec.compress(x)
    decoded = codec.decompress(encoded.data)
    assert decoded.x_hat.shape == x.shape
    assert torch.equal(decoded.x_hat, encoded.x_hat)
    assert encoded.latents.keys() == decoded.latents.keys() == {"y", "z"}
    h, w = -(-size[0] // 32) * 4, -(-size[1] // 32) * 4
    assert encoded.latents["y"].shape == (2, 16, h, w)
    assert encoded.latents["z"].shape == (2, 16, h // 4, w // 4)
    for key in encoded.latents:
        assert encoded.latents[key].dtype == np.int32
        np.testing.assert_array_equal(decoded.latents[key], encoded.latents[key])
    assert decoded.header["sizes"] == [list(size)] * 2


def test_untrained_codec_round_trips_too():
    plain = load_codec(name="ecsic", preset="tiny")
    encoded = plain.compress(random_views(2, 64, 64, seed=2))
    decoded = plain.decompress(encoded.data)
    assert torch.equal(decoded.x_hat, encoded.x_hat)
    for key in encoded.latents:
        np.testing.assert_array_equal(decoded.latents[key], encoded.latents[key])


def _repack(data: bytes, *, drop_last: bool = False, replace: dict[int, bytes] | None = None) -> bytes:
    """A valid container with the same header and edited streams."""
    container = bitstream.unpack(data)
    streams = list(container.streams)
    for index, stream in (replace or {}).items():
        streams[index] = stream
    if drop_last:
        streams = streams[:-1]
    return bitstream.pack(container.codec_id, container.header, streams)


def test_paper_preset_matches_the_official_parameter_count():
    counts = create_codec("ecsic", "paper").parameter_counts()
    assert abs(counts["total"] / 25_742_502 - 1) < 0.02, counts
    assert counts["total"] == 25_742_502  # measured on the official model
    assert counts["E"] == 4_751_904 and counts["D"] == 5_421_702 and counts["c_y"] == 4_663_392


def test_three_views_are_rejected_naming_codecs_that_take_three(codec):
    with pytest.raises(ValueError, match="takes 2 views, got 3"):
        codec.compress(random_views(3, 64, 64, seed=6))
    with pytest.raises(ValueError, match="takes 2 views, got 3; codecs that take 3 views: .*ldmic"):
        check_view_count(codec, 3)
    with pytest.raises(ValueError, match="takes 2 views, got 3"):
        codec(random_views(3, 64, 64, seed=6)[None])


# --- stereo-specific properties ---------------------------------------------------------------
class _ParameterRecorder:
    """A quantizer that rounds and records each variable's (scales, means) by its stream."""

    parallel = True

    def __init__(self):
        self.params = {}

    def __call__(self, y, scales, means, stream=None):
        self.params[stream] = (scales, means)
        return torch.round(y - means) + means, scales


def _chain_params(model, values):
    """Run the entropy chain on given (z_l, z_r, y_l, y_r); record each variable's (scales, means)."""
    recorder = _ParameterRecorder()
    with torch.no_grad():
        model.entropy_chain(values[0].shape, recorder, values)
    return recorder.params


def _same(a, b):
    return all(torch.equal(s, t) for s, t in zip(a, b))


def test_entropy_parameters_follow_the_coding_order(codec):
    g = torch.Generator().manual_seed(10)
    z, y = (1, 16, 2, 3), (1, 16, 8, 12)
    values = [3 * torch.randn(s, generator=g) for s in (z, z, y, y)]
    base = _chain_params(codec, values)

    def changed(i):
        edited = list(values)
        edited[i] = values[i] + 5.0
        return _chain_params(codec, edited)

    # y_r comes last: nothing's parameters depend on it (its own come from y_l and h_D).
    p = changed(3)
    assert all(_same(p[i], base[i]) for i in range(4))
    # y_l: the right latent's parameters depend on it (c_y); the hyperlatents' do not.
    p = changed(2)
    assert all(_same(p[i], base[i]) for i in range(3)) and not _same(p[3], base[3])
    # z_r: the left hyperlatent's prior is fixed; h_D needs both hyperlatents (SCA).
    p = changed(1)
    assert _same(p[0], base[0]) and _same(p[1], base[1]) and not _same(p[2], base[2])
    # z_l: the right hyperlatent's parameters depend on it (c_z).
    p = changed(0)
    assert _same(p[0], base[0]) and not _same(p[1], base[1])


def test_right_view_is_coded_with_the_left_as_context(codec):
    x = random_views(2, 64, 96, seed=11)
    other = random_views(2, 64, 96, seed=12)
    encoded = codec.compress(x)
    theirs = bitstream.unpack(codec.compress(other).data).streams

    # Another pair's right-latent stream: left latent and both hyperlatents still decode exactly.
    mixed = codec.decompress(_repack(encoded.data, replace={3: theirs[3]}))
    np.testing.assert_array_equal(mixed.latents["z"], encoded.latents["z"])
    np.testing.assert_array_equal(mixed.latents["y"][0], encoded.latents["y"][0])

    # Another left latent under the same right-latent bytes: y_r decodes differently, because
    # its CDF tables and means come from y^_l.
    mixed = codec.decompress(_repack(encoded.data, replace={2: theirs[2]}))
    np.testing.assert_array_equal(mixed.latents["z"], encoded.latents["z"])
    assert not np.array_equal(mixed.latents["y"][1], encoded.latents["y"][1])

    # Changing only the left image changes the right latent's estimated rate.
    x_left_changed = torch.stack([other[0], x[1]])
    with torch.no_grad():
        rate = lambda v: -codec(v[None])["likelihoods"]["y"][0, 1].log2().sum()  # noqa: E731
        assert not torch.isclose(rate(x), rate(x_left_changed))


def test_laplace_tables_cover_the_distribution():
    model = LaplaceConditional()
    model.update_scale_table(laplace_scale_table())
    integers = torch.arange(-2000, 2001, dtype=torch.float32)
    for b in (0.1, 1.0, 7.3, 64.0):
        _, lik = model(integers, torch.full_like(integers, b), training=False)
        assert abs(lik.sum().item() - 1) < 1e-4
    # Scales below the bound use the first table; the offsets span ceil(20.7 b) each side.
    assert model.build_indexes(torch.tensor([0.01, 0.1, 65.0])).tolist() == [0, 0, 63]
    assert model.offset[0].item() == -3 and model.offset[-1].item() == -1327
