"""rd_point on groups whose size is not a multiple of the codec's padding."""

from __future__ import annotations

import math

import pytest
import torch

from mvarchive.codecs import list_codecs, load_codec
from mvarchive.codecs.padding import pad_to_multiple
from mvarchive.datasets import discover_dataset, load_group
from mvarchive.metrics import to_tensor
from mvarchive.training import TrainConfig, train_codec_loop
from mvarchive.training.loss import bits_per_view
from mvarchive.training.rd_point import estimated_bits, rd_point

from .odd_sizes import LAYOUT

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", [spec.name for spec in list_codecs()])
def test_rd_point_after_training_on_odd_sizes(name, odd_data, tmp_path):
    config = TrainConfig(dataset=str(odd_data), output_dir=str(tmp_path), codec=name, preset="tiny", steps=2,
                         batch_size=1, crop=64, layout=LAYOUT)
    codec = load_codec(train_codec_loop(config).checkpoint)
    point = rd_point(codec, discover_dataset(str(odd_data), LAYOUT))
    assert point["groups"] == 2
    for key in ("bpp", "bpp_estimated", "psnr"):
        assert math.isfinite(point[key]) and point[key] > 0, (key, point)


def test_estimate_counts_padded_bits_over_original_pixels(odd_data):
    from mvarchive.codecs import create_codec

    torch.manual_seed(0)
    codec = create_codec("ldmic-fast", "tiny")
    codec.update(force=True)
    codec.eval()
    index = discover_dataset(str(odd_data), LAYOUT).select(groups=["astronaut"])
    views = load_group(index.groups[0])
    x = to_tensor(views)
    padded = pad_to_multiple(x, codec.pad_multiple)
    assert padded.shape[-2:] == (256, 384)
    with torch.no_grad():
        bits = float(bits_per_view(codec(padded[None])["likelihoods"]).sum())
    assert estimated_bits(codec, x) == pytest.approx(bits)
    point = rd_point(codec, index)
    assert point["bpp_estimated"] == pytest.approx(bits / (2 * 250 * 370))
