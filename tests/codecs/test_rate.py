"""Real bitstream sizes against the model's estimated rate, after brief training."""

from __future__ import annotations

import torch

from mvarchive.codecs import load_codec
from mvarchive.datasets import discover_dataset, load_group
from mvarchive.metrics import to_tensor
from mvarchive.training.loss import bits_per_view


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
