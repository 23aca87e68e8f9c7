"""Real bitstream sizes against the model's estimated rate.

Every codec, lively weights: the estimate at the coder's precision is a floor for the real
bytes. The briefly trained ldmic-fast: real bytes within a few percent of the estimate.
"""

from __future__ import annotations

import math

import pytest
import torch

from mvarchive.codecs import list_codecs, load_codec
from mvarchive.datasets import discover_dataset, load_group
from mvarchive.metrics import to_tensor
from mvarchive.training.loss import bits_per_view
from tests.codecs.helpers import random_views
from tests.codecs.test_golden import GAINS, lively

CODECS = [spec.name for spec in list_codecs()]
PRECISION_BITS = 16  # CompressAI's rANS tables: every coded symbol, escapes included, costs >= 2**-16
TABLE_SLACK = 0.02  # see test_real_bytes_never_undercut_the_estimate_at_the_coders_precision


@pytest.mark.parametrize("name", CODECS)
def test_real_bytes_never_undercut_the_estimate_at_the_coders_precision(name):
    """A coder that writes fewer bits than the model's rate leaves symbols out (or the estimate
    counts latents the coder never sees). Compared at the coder's precision: most of the lively
    weights' predicted scales are at the lower bound, so a non-zero symbol is mostly out of its
    table and escaped (2**-16 plus bypass bits, about 24 bits), while the training estimate
    charges it -log2(1e-9), about 30 bits: the real bytes are 12-20 % below that estimate. With
    probabilities floored at 2**-16 the estimate is what a 16-bit coder can reach at best.
    ``TABLE_SLACK``: the coder's tables use the next scale up the table (up to 13 % wider than
    predicted), which makes a tail symbol up to ~1 bit cheaper than its estimate; measured
    real/estimate ratios are 1.004 (bisic) to 1.17 (ELIC, 22 streams of flush bytes)."""
    spec = next(s for s in list_codecs() if s.name == name)
    codec = lively(name, GAINS[name]).eval()
    x = random_views(max(2, spec.min_views), 128, 128, seed=3)
    assert 128 % codec.pad_multiple == 0  # no padding: both numbers count the same pixels
    with torch.no_grad():
        likelihoods = codec(x[None])["likelihoods"]
    floor = 2.0**-PRECISION_BITS
    estimated_bits = float(bits_per_view({k: v.clamp_min(floor) for k, v in likelihoods.items()}).sum())
    encoded = codec.compress(x)
    assert float((encoded.latents["y"] != 0).mean()) >= 0.2, "too few non-zero symbols to prove anything"
    real_bits = 8 * encoded.payload_bytes
    assert math.isfinite(estimated_bits) and estimated_bits > 0
    assert real_bits >= (1 - TABLE_SLACK) * estimated_bits, (name, real_bits, estimated_bits)


def test_real_bytes_within_a_few_percent_of_estimated_rate(trained_checkpoint, sample_data):
    codec = load_codec(trained_checkpoint)
    index = discover_dataset(str(sample_data.stereo))
    checked = 0
    for group in index.groups:
        views = to_tensor(load_group(group))
        h, w = views.shape[-2:]
        if min(h, w) < 256:
            continue
        crop = views[:, :, :256, :256]  # a multiple of 64: no padding in either number
        with torch.no_grad():
            estimated_bits = float(bits_per_view(codec(crop[None])["likelihoods"]).sum())
        real_bits = 8 * codec.compress(crop).payload_bytes
        assert abs(real_bits / estimated_bits - 1) < 0.05, (group.name, real_bits, estimated_bits)
        assert real_bits >= 0.97 * estimated_bits  # an entropy coder cannot beat the model's rate by much
        checked += 1
    assert checked >= 2
