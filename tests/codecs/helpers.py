"""Inputs and the exact round-trip assertion shared by the codec tests."""

from __future__ import annotations

import numpy as np
import torch

from mvarchive.codecs.bitstream import unpack


def random_views(k: int, height: int, width: int, seed: int) -> torch.Tensor:
    """Smooth-ish random images (a blurred noise field), so coding is non-trivial."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(k, 3, height // 8 + 2, width // 8 + 2, generator=g)
    img = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return (img + 0.05 * torch.rand(k, 3, height, width, generator=g)).clamp(0, 1)


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
