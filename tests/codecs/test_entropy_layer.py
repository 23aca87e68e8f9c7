"""The shared entropy layer: one schedule serves estimating, encoding and decoding.

Each test drives a schedule or the hyperprior with non-trivial values (most symbols non-zero)
through the quantizers a codec uses and checks that the decoder recovers exactly what the
encoder coded, and that the rate estimate reconstructs the very same latent.
"""

from __future__ import annotations

import torch

from mvarchive.codecs import create_codec
from mvarchive.codecs.entropy import (
    CdfTables,
    RansQuantizer,
    STEQuantizer,
    SymbolCoder,
    channel_slices,
    exact_entropy,
)


def _tiny(name: str):
    torch.manual_seed(0)
    codec = create_codec(name, "tiny").eval()
    codec.update(force=True)
    return codec


def _latent(shape: tuple[int, ...], seed: int, scale: float = 4.0) -> torch.Tensor:
    return scale * torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _code_both_ways(model, hyper: torch.Tensor, y: torch.Tensor, gc):
    with torch.no_grad(), exact_entropy():
        symbols, y_hat, streams = model.encode(y, hyper, gc)
        decoded_symbols, decoded = model.decode(hyper, gc, streams)
    return symbols, y_hat, streams, decoded_symbols, decoded


def test_checkerboard_estimate_encode_and_decode_reconstruct_the_same_latent():
    codec = _tiny("ldmic-fast")
    gc = codec.gaussian_conditional
    hyper, y = _latent((2, 64, 6, 7), 1, 1.0), _latent((2, 32, 6, 7), 2)
    symbols, y_hat, streams, decoded_symbols, decoded = _code_both_ways(codec.context_model, hyper, y, gc)
    assert len(streams) == 2 and all(streams)
    assert (symbols != 0).float().mean() > 0.5
    assert torch.equal(decoded_symbols, symbols) and torch.equal(decoded, y_hat)
    with torch.no_grad(), exact_entropy():
        estimated, likelihoods = codec.context_model(y, hyper, gc)
    assert torch.equal(estimated, y_hat)
    assert likelihoods.shape == y.shape and bool(((likelihoods > 0) & (likelihoods <= 1)).all())


def test_raster_scan_decodes_what_it_encoded():
    codec = _tiny("ldmic")
    hyper, y = _latent((2, 64, 3, 4), 3, 1.0), _latent((2, 32, 3, 4), 4)
    symbols, y_hat, _, decoded_symbols, decoded = _code_both_ways(
        codec.context_model, hyper, y, codec.gaussian_conditional
    )
    assert (symbols != 0).float().mean() > 0.5
    assert torch.equal(decoded_symbols, symbols) and torch.equal(decoded, y_hat)


def test_channel_slices_see_only_the_slices_before_them():
    seen: list[int] = []

    def code_slice(s, y_s, decoded):
        seen.append(len(decoded))
        return y_s.round(), y_s.round().int()

    y = _latent((1, 12, 2, 2), 5)
    y_hat, recorded = channel_slices(y, 3, code_slice)
    assert seen == [0, 1, 2]
    assert torch.equal(y_hat, y.round()) and torch.equal(recorded, y.round().int())


def test_symbol_coder_streams_by_row_or_whole_tensor():
    gc = _tiny("ldmic-fast").gaussian_conditional
    tables = CdfTables.of(gc)
    scales = 0.5 + _latent((2, 5, 3), 6, 1.0).abs()
    means = _latent((2, 5, 3), 7, 1.0)
    y = means + _latent((2, 5, 3), 8, 3.0)
    encoder = SymbolCoder(tables, 2)
    by_row = RansQuantizer(gc, encoder)(y, scales, means)[1]
    whole = RansQuantizer(gc, encoder)(y, scales, means, stream=1)[1]  # after row 1 in stream 1
    decoder = SymbolCoder.reading(tables, encoder.flush())
    assert torch.equal(RansQuantizer(gc, decoder)(None, scales, means)[1], by_row)
    assert torch.equal(RansQuantizer(gc, decoder)(None, scales, means, stream=1)[1], whole)
    assert (by_row != 0).float().mean() > 0.5


def test_the_hyperprior_decodes_what_it_encoded():
    codec = _tiny("camsic")
    y = _latent((2, 40, 4, 4), 9, 6.0)
    with torch.no_grad():
        coded = codec.hyperprior.encode(y)
        decoded = codec.hyperprior.decode(coded.strings, (64, 64))
    assert (coded.symbols != 0).float().mean() > 0.3
    assert torch.equal(decoded.z_hat, coded.z_hat) and torch.equal(decoded.symbols, coded.symbols)
    assert torch.equal(decoded.features, coded.features)


def test_the_training_quantizer_measures_noisy_values_and_rounds_straight_through():
    gc = _tiny("ldmic").gaussian_conditional.train()
    y = _latent((1, 4, 3, 3), 10).requires_grad_()
    means = torch.full_like(y, 0.25)
    y_hat, likelihoods = STEQuantizer(gc)(y, torch.ones_like(y), means)
    assert torch.equal(y_hat.detach(), torch.round(y.detach() - 0.25) + 0.25)
    y_hat.sum().backward()
    assert torch.equal(y.grad, torch.ones_like(y))  # straight through
    assert likelihoods.shape == y.shape
