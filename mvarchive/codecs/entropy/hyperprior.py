"""The hyperprior z path every hyperprior codec shares (Ballé et al. 2018, Minnen et al. 2018).

y -> h_a -> z; z is coded with a factorized prior (CompressAI's ``EntropyBottleneck``, one rANS
string per view) and h_s(z^) gives the features the entropy model of y conditions on. The
symbols of z are ``round(z - median)``; its reconstruction is ``symbols + median``.

:class:`Hyperprior` binds a codec's own ``h_a``, ``entropy_bottleneck`` and ``h_s`` each time it
is asked for (a codec property), so their state-dict keys stay where checkpoints have them and an
encoder whose ``h_a`` runs on an accelerator (:meth:`.base.MultiViewCodec.analysis_encoder`) uses
the moved module. Encoder and decoder run h_s under :func:`.exact.exact_entropy`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck
from compressai.models.utils import conv, deconv

from .coding import ste_round
from .exact import exact_entropy

#: z is at 1/64 of the padded input (y at 1/16, two more stride-2 steps): inputs are padded to it.
HYPERPRIOR_MULTIPLE = 64


def hyper_analysis(latent_channels: int, z_channels: int) -> nn.Sequential:
    """h_a of Minnen et al. 2018: a 3x3 stride-1 conv, then two 5x5 stride-2 convs, LeakyReLU between."""
    return nn.Sequential(
        conv(latent_channels, z_channels, kernel_size=3, stride=1), nn.LeakyReLU(inplace=True),
        conv(z_channels, z_channels), nn.LeakyReLU(inplace=True),
        conv(z_channels, z_channels),
    )


def hyper_synthesis(z_channels: int, hidden_channels: int, out_channels: int) -> nn.Sequential:
    """h_s of Minnen et al. 2018: two 5x5 stride-2 transposed convs, then a 3x3 stride-1 conv."""
    return nn.Sequential(
        deconv(z_channels, z_channels), nn.LeakyReLU(inplace=True),
        deconv(z_channels, hidden_channels), nn.LeakyReLU(inplace=True),
        conv(hidden_channels, out_channels, kernel_size=3, stride=1),
    )


class HyperCode(NamedTuple):
    """The coded z of a batch of views."""

    strings: list[bytes]  # one per view
    z_hat: torch.Tensor
    symbols: torch.Tensor  # round(z - median), int32
    features: Any  # h_s(z^): what the entropy model of y conditions on (None when not asked)


@dataclass(frozen=True)
class Hyperprior:
    """h_a, a factorized prior on z and h_s: training forward, encode, decode; medians and padding."""

    h_a: Callable[[torch.Tensor], torch.Tensor]
    entropy_bottleneck: EntropyBottleneck
    h_s: Callable[[torch.Tensor], Any]
    multiple: int = HYPERPRIOR_MULTIPLE

    def medians(self) -> torch.Tensor:
        """The factorized prior's per-channel medians, (1, C, 1, 1): z symbols are relative to them."""
        return self.entropy_bottleneck._get_medians().detach()

    def z_size(self, padded: tuple[int, int]) -> tuple[int, int]:
        """The (h, w) of z for a padded input of size ``padded``."""
        return padded[0] // self.multiple, padded[1] // self.multiple

    def forward(self, y: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """Training: (h_s of the straight-through rounded z, likelihoods of noisy z)."""
        z = self.h_a(y)
        _, likelihoods = self.entropy_bottleneck(z)
        medians = self.medians()
        return self.h_s(ste_round(z - medians) + medians), likelihoods

    def encode(self, y: torch.Tensor) -> HyperCode:
        """Code z = h_a(y) of every view (h_a outside the exact policy: it is encoder-only)."""
        return self.encode_z(self.h_a(y))

    def encode_z(self, z: torch.Tensor) -> HyperCode:
        """Code a z computed by the caller; z^ and h_s(z^) are what the decoder will have."""
        with exact_entropy():
            strings = self.entropy_bottleneck.compress(z)
            z_hat = self.entropy_bottleneck.decompress(strings, z.shape[-2:])
            features = self.h_s(z_hat)
        return HyperCode(strings, z_hat, self.symbols(z_hat), features)

    def decode(self, strings: Sequence[bytes], padded: tuple[int, int], *, features: bool = True) -> HyperCode:
        """z^ (and h_s(z^) unless ``features=False``) of a padded size from its strings."""
        with exact_entropy():
            z_hat = self.entropy_bottleneck.decompress(list(strings), self.z_size(padded))
            hyper = self.h_s(z_hat) if features else None
        return HyperCode(list(strings), z_hat, self.symbols(z_hat), hyper)

    def symbols(self, z_hat: torch.Tensor) -> torch.Tensor:
        """The coded integers of z^: ``round(z^ - median)``."""
        return torch.round(z_hat - self.medians()).int()
