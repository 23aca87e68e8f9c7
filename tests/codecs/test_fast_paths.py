"""The codecs' fast coding paths compute the same bits as the plain formulations they replace.

Speed work keeps archives restorable only if every value the entropy path derives is the
same float32 (CDF indexes, means). These tests compare each shortcut with the full-map
computation it replaces, bit for bit, under the codecs' float64 policy.
"""

from __future__ import annotations

import hashlib

import torch

from mvarchive.codecs.entropy import anchor_mask, exact_entropy
from mvarchive.codecs.entropy.context import CheckerboardGaussianContext, pointwise
from tests.codecs.test_golden import GAINS, GOLDEN, golden_input, lively


def _lively_checkerboard() -> CheckerboardGaussianContext:
    torch.manual_seed(0)
    model = CheckerboardGaussianContext(latent_channels=48, hyper_channels=96)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model


def test_checkerboard_passes_equal_the_full_maps_bit_for_bit():
    model = _lively_checkerboard()
    generator = torch.Generator().manual_seed(1)
    hyper = torch.randn(2, 96, 22, 30, generator=generator)
    anchors = anchor_mask(22, 30)
    y_hat = (3 * torch.randn(2, 48, 22, 30, generator=generator)).round() * anchors
    with torch.no_grad(), exact_entropy():
        full_anchor = model._anchor_params(hyper)
        full_rest = model.params(hyper, model.context(y_hat))
        anchor = pointwise(model.entropy_parameters, hyper[:, :, anchors], None).chunk(2, dim=1)
        rest = pointwise(model.entropy_parameters, hyper[:, :, ~anchors], model._context_at(y_hat, ~anchors))
        rest = rest.chunk(2, dim=1)
    for fast, full, part in ((anchor, full_anchor, anchors), (rest, full_rest, ~anchors)):
        for fast_value, full_value in zip(fast, full):
            assert torch.equal(fast_value, full_value[:, :, part])
    assert full_rest[1][:, :, ~anchors].abs().max() > 0.1  # the context really contributes


def test_two_threads_write_the_golden_bytes():
    """The fast paths write the same bitstream whatever the caller's thread count (the
    reconstruction may differ with threads by design; see docs/determinism.md)."""
    codec = lively("ldmic-fast", GAINS["ldmic-fast"])
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        data = codec.compress(golden_input(2), reconstruct=False).data
    finally:
        torch.set_num_threads(threads)
    assert hashlib.sha256(data).hexdigest() == GOLDEN["ldmic-fast"][1]


def test_camsic_step_parameters_equal_the_full_maps_at_undecoded_positions():
    """A coding step's parameters on the undecoded rows only are the full map's, bit for bit
    (the GEMMs of the last block's MLP and of the head run on fewer rows than the full map's)."""
    from mvarchive.codecs.registry import create_codec

    codec = create_codec("camsic", "tiny", width=96, heads=4).eval()
    generator = torch.Generator().manual_seed(3)
    tokens = torch.randn(1, codec.config.M, 6, 10, generator=generator)
    decoded = torch.rand(1, 6, 10, generator=generator) < 0.6
    with torch.no_grad(), exact_entropy():
        full = codec.entropy_parameters(tokens, decoded)
        step = codec.step_parameters(tokens, decoded)
    for fast, whole in zip(step, full):
        assert torch.equal(fast[:, :, ~decoded[0]], whole[:, :, ~decoded[0]])
        assert not fast[:, :, decoded[0]].any()  # decoded positions are not computed


def test_depthwise_convolution_equals_the_grouped_convolution_under_the_policy():
    from mvarchive.codecs.mlicpp.contexts import DepthwiseConv2d

    torch.manual_seed(4)
    conv = DepthwiseConv2d(24)
    x = torch.randn(1, 24, 13, 17)
    with torch.no_grad(), exact_entropy():
        fast = conv(x)
        plain = torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=1, groups=24)
    assert fast.dtype == torch.float32 and torch.equal(fast, plain)
    with torch.no_grad():  # outside the policy it is the plain module
        assert torch.equal(conv(x), torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=1, groups=24))
