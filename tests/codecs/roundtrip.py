"""The exact round-trip assertion used by several codec tests."""

from __future__ import annotations

import numpy as np
import torch

from mvarchive.codecs.bitstream import unpack


def assert_round_trip(codec, x: torch.Tensor, streams_per_view: int | None = None):
    """compress -> decompress reproduces the reconstruction bit for bit and the integer
    latents exactly (leading view axis); optionally checks the number of streams."""
    encoded = codec.compress(x)
    decoded = codec.decompress(encoded.data)
    assert torch.equal(decoded.x_hat, encoded.x_hat)
    assert encoded.latents.keys() == decoded.latents.keys() == {"y", "z"}
    for key in encoded.latents:
        assert encoded.latents[key].dtype == np.int32
        assert encoded.latents[key].shape[0] == x.shape[0]
        np.testing.assert_array_equal(decoded.latents[key], encoded.latents[key])
    if streams_per_view is not None:
        assert len(unpack(encoded.data).streams) == streams_per_view * x.shape[0]
    return encoded
