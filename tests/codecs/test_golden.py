"""Golden bytes: what every codec writes for fixed weights and a fixed input never changes.

Speed work on the codecs (channels-last, fused context loops, cheaper entropy paths) must
leave the bitstream and the reconstruction of existing archives as they are, so both are
pinned here by SHA-256 for every registered codec at the ``tiny`` preset: seeded weights,
scaled up per codec so that a good share of the symbols are non-zero (an untrained codec
codes mostly zeros, which would pin nothing), one torch thread, an input of odd size
(70x94: padding and cropping on both axes). The digests were produced by the code before
the speed work; regenerate them only for a deliberate bitstream change, with
``python -m tests.codecs.test_golden``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from mvarchive.codecs import create_codec, list_codecs, load_codec

HEIGHT, WIDTH = 70, 94

#: codec -> (weight gain, SHA-256 of compress().data, SHA-256 of the uint8 reconstruction)
GOLDEN: dict[str, tuple[float, str, str]] = {
    "bisic": (1.7, "e2c5fa375eb4afa5c9cede05a2c3ef55185b98b1c5c045da3351d8beed668289", "73bdabe923d7a61a4447ba2953a823e6cfb51d17dd5c74218511a0c62d1ddf05"),
    "bisic-fast": (1.7, "ca65318557abc443537ad71621663d18fbee0dc47d962775c56f15d3a46fe8a7", "75df8da8f043227b1cbe6c0595b9fc0910c16cb77105b87ca18839cd9ea0fe1f"),
    "camsic": (1.5, "57843a03706b611131267cbb1ffaf6bc56c6524fb6285ffe7e07ef312a6e72b8", "b6ac5c41161b5eb9ca3dbb15f9af6877df764a651d73e65d8afce84547811213"),
    "ecsic": (2.2, "9190ab12c95908b8ae2da28ae16d9a51ad49222f66219c8a5ce613a2b531b27f", "e0243b64024f274a6994a44be9a81196001670b5e49f0b7418a6dd920e18bc94"),
    "ldmic": (2.3, "e5821825548ac39640f23ac79b2f082aa60f16c7f9e42fe98efd9f68fe96ad11", "45b00dff530881acc2d5d1f33025d5220b36db4e6e306622d22bf28a19767b37"),
    "ldmic-fast": (2.3, "aae6738dbdf430c38ce61de642095f1d643446a9c28656efb4e92aea4071b22b", "142c80d9c5b6ca8f3bf3a2737367e399265f14e41dc8b99862f92e1070a7d712"),
    "single-view-elic2022-chandelier": (1.6, "eac1043b82b3d48672feba2cf2884033dd88e378ddd5c4d1d85bb14c938fab73", "8bc4424efdecc88a73417f9713e4e8323094c472a46cf183558f3742ad8861ed"),
    "single-view-mbt2018-mean": (2.2, "0c503c7e5aff86b6f3421f325af302c3587e6f6caacf4325f4b6c1a43f8eb934", "4a04b539b6ebfd298c8a4c62b858c6da9b06ef97d95fb5af124c217b640e5ea0"),
    "single-view-mlicpp": (1.8, "d764052725d7c6c19d733e51929384a1c7d161d20c11c9d4cd7a8a91b0bd23c8", "47655305aba578322c16bc647fde1ee6d62879c9b90844e332cb1d56b238130c"),
    "vemic": (1.8, "c2d62164893e72570821419c5af89b484517fe4709ad2cbef825cc18675a37b8", "47655305aba578322c16bc647fde1ee6d62879c9b90844e332cb1d56b238130c"),
}

#: Gains giving 20-97 % non-zero y symbols at the tiny preset (see ``lively``).
GAINS: dict[str, float] = {
    "ldmic": 2.3, "ldmic-fast": 2.3, "ecsic": 2.2, "bisic": 1.7, "bisic-fast": 1.7, "camsic": 1.5,
    "vemic": 1.8, "single-view-mbt2018-mean": 2.2, "single-view-elic2022-chandelier": 1.6,
    "single-view-mlicpp": 1.8,
}


def lively(name: str, gain: float):
    """The seed-0 tiny codec with every convolution/linear weight scaled by ``gain`` and
    jittered (fixed generator): latents grow through the layers, so symbols are non-zero."""
    model = load_codec(name=name, preset="tiny")
    generator = torch.Generator().manual_seed(2)
    layers = (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Conv3d, torch.nn.Linear)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, layers):
                noise = torch.randn(module.weight.shape, generator=generator)
                module.weight.mul_(gain).add_(0.2 * module.weight.std() * noise)
    model.update(force=True)
    return model


def golden_input(views: int) -> torch.Tensor:
    """Gradients plus uniform noise at an odd size: deterministic, non-trivial to code."""
    generator = torch.Generator().manual_seed(1)
    rows = torch.linspace(0, 1, HEIGHT)[:, None].expand(HEIGHT, WIDTH)
    cols = torch.linspace(0, 1, WIDTH)[None, :].expand(HEIGHT, WIDTH)
    base = torch.stack([rows * cols, rows, cols])[None].expand(views, 3, HEIGHT, WIDTH)
    return (0.6 * base + 0.4 * torch.rand(views, 3, HEIGHT, WIDTH, generator=generator)).clamp(0, 1)


def pixels(x_hat: torch.Tensor) -> np.ndarray:
    return (x_hat.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def digests(name: str) -> tuple[str, str, dict[str, float], bool]:
    """(data SHA, pixels SHA, non-zero share per latent, agreement) at one thread; agreement:
    the decoder's reconstruction is the encoder's, and ``reconstruct=False`` writes the same bytes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        spec = next(s for s in list_codecs() if s.name == name)
        codec = lively(name, GAINS[name])
        x = golden_input(max(2, spec.min_views))
        encoded = codec.compress(x)
        decoded = codec.decompress(encoded.data)
        bare = codec.compress(x, reconstruct=False)
    finally:
        torch.set_num_threads(threads)
    nonzero = {key: float((value != 0).mean()) for key, value in encoded.latents.items()}
    agrees = torch.equal(decoded.x_hat, encoded.x_hat) and bare.data == encoded.data and bare.x_hat is None
    return (hashlib.sha256(encoded.data).hexdigest(), hashlib.sha256(pixels(encoded.x_hat).tobytes()).hexdigest(),
            nonzero, agrees)


def test_every_codec_is_pinned():
    assert set(GOLDEN) == {spec.name for spec in list_codecs()} == set(GAINS)


@pytest.mark.parametrize("name", sorted(GAINS))
def test_bytes_and_reconstruction_are_unchanged(name):
    data_sha, pixels_sha, nonzero, agrees = digests(name)
    assert 0.2 <= nonzero["y"] <= 0.97, f"{name}: {nonzero} (the golden input must code non-trivial symbols)"
    assert agrees, f"{name}: decoder or reconstruct=False disagrees with the encoder"
    assert (data_sha, pixels_sha) == GOLDEN[name][1:], f"{name}: the codec now writes other bytes"


if __name__ == "__main__":
    for codec_name in sorted(GAINS):
        data, pix, shares, ok = digests(codec_name)
        print(f'    "{codec_name}": ({GAINS[codec_name]}, "{data}", "{pix}"),  # non-zero {shares} decoder {ok}')
