"""ECSIC: epipolar cross attention for stereo image compression (Wödlinger et al., WACV 2024).

Layer-by-layer facts: paper §3–4 and the official code (``mwoedlinger/ecsic``). A stereo pair (view 0 =
left, view 1 = right) goes through two parallel streams with separate weights, except the
first three encoder convolutions (and their PReLUs), which are shared. Stereo cross attention
(SCA) modules couple the streams in the encoder E, the decoder D, the hyper-encoder h_E, the
hyper-decoder h_D and the right latent's context module c_y:

    x_l, x_r --E--> y_l, y_r (M ch, H/8) --h_E--> z_l, z_r (M ch, H/32)
    z^_l : per-channel learned Laplace (mu, b)
    z^_r : c_z(z^_l, learned per-channel phi_zr)            -> per-position (mu, b)
    y^_l : left head of h_D(z^_l, z^_r)                      -> (mu, b)
    y^_r : c_y(y^_l, right head of h_D(z^_l, z^_r) = phi_yr) -> (mu, b)
    y^_l, y^_r --D--> x^_l, x^_r

All four are Laplace, with no spatial autoregression. Every variable v is coded as integer
symbols round(v - mu) and reconstructed as symbol + mu; training takes the rate on
v + U(-1/2, 1/2) and feeds round(v - mu) + mu (straight-through) onwards (paper §3.1, §3.4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import CodecIdentity, CodedStreams, MultiViewCodec, ViewRange, parameter_count
from .entropy import Quantizer, RansQuantizer, STEQuantizer, single_threaded
from .laplace import FactorizedLaplace, LaplaceConditional, laplace_scale_table
from .registry import register_codec


@dataclass(frozen=True)
class ECSICConfig:
    N: int = 192  # channels of the transforms, of h_E/h_D and of c_y
    M: int = 48  # channels of y and of z
    heads: int = 4  # attention heads in every SCA module
    head_dim: int = 384  # query/key width per head (the code's 2N; the paper text says 386)


PRESETS = {
    "paper": ECSICConfig(192, 48, 4, 384),
    "tiny": ECSICConfig(32, 16, 2, 16),
}


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1)


def _deconv(cin: int, cout: int, stride: int = 2) -> nn.ConvTranspose2d:
    """Kernel-3 transposed conv; stride 2 upsamples exactly x2 (output_padding 1)."""
    return nn.ConvTranspose2d(cin, cout, 3, stride, 1, output_padding=stride - 1)


def _prelu(channels: int) -> nn.PReLU:
    return nn.PReLU(channels, init=0.2)


# --- stereo cross attention ----------------------------------------------------------------
class RowCrossAttention(nn.Module):
    """Multi-head attention from one view's image rows to the same rows of the other view.

    Queries and keys come from kernel-3 1-D convolutions along the row (C -> heads*head_dim),
    values from a kernel-3 1-D convolution (C -> C, split into heads of C/heads); softmax
    attention scaled by 1/sqrt(head_dim) over the W positions of the other row; heads are
    concatenated and projected by a Linear C -> C. No positional encoding, no mask.
    """

    def __init__(self, channels: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.query = nn.Conv1d(channels, heads * head_dim, 3, padding=1)
        self.key = nn.Conv1d(channels, heads * head_dim, 3, padding=1)
        self.value = nn.Conv1d(channels, channels, 3, padding=1)
        self.project = nn.Linear(channels, channels)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Rows as ``(R, C, W)`` (channels first) in, ``(R, W, C)`` out."""
        rows, channels, width = values.shape
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:  # (R, h*d, W) -> (R, h, W, d)
            return t.reshape(rows, h, -1, width).transpose(-1, -2)

        attended = F.scaled_dot_product_attention(
            split(self.query(queries)), split(self.key(keys)), split(self.value(values))
        )  # (R, h, W, C/h); default scale 1/sqrt(head_dim)
        return self.project(attended.transpose(1, 2).reshape(rows, width, channels))


class StereoCrossAttention(nn.Module):
    """SCA (paper §3.2, Fig. 2): cross attention restricted to the epipolar line (same row).

    Each row of each view is a sequence of W positions. Queries and keys are layer-normalized
    (one LayerNorm per view); values are the raw features. The left output attends to the
    right row (Q = LN_l(l), K = LN_r(r), V = r) and vice versa, with separate weights; then
    l <- l + attn_l and l <- l + Linear(l) (no activation), likewise for r. Cost O(W^2 H).
    """

    def __init__(self, channels: int, heads: int, head_dim: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"SCA channels ({channels}) must divide by heads ({heads})")
        self.norm_left = nn.LayerNorm(channels)
        self.norm_right = nn.LayerNorm(channels)
        self.left_from_right = RowCrossAttention(channels, heads, head_dim)
        self.right_from_left = RowCrossAttention(channels, heads, head_dim)
        self.ff_left = nn.Linear(channels, channels)
        self.ff_right = nn.Linear(channels, channels)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, channels, height, width = left.shape
        l_rows = left.permute(0, 2, 3, 1).reshape(batch * height, width, channels)  # (B*H, W, C)
        r_rows = right.permute(0, 2, 3, 1).reshape(batch * height, width, channels)
        l_norm = self.norm_left(l_rows).transpose(1, 2)  # (B*H, C, W) for the 1-D convs
        r_norm = self.norm_right(r_rows).transpose(1, 2)
        l_out = l_rows + self.left_from_right(l_norm, r_norm, r_rows.transpose(1, 2))
        r_out = r_rows + self.right_from_left(r_norm, l_norm, l_rows.transpose(1, 2))
        l_out = l_out + self.ff_left(l_out)
        r_out = r_out + self.ff_right(r_out)

        def unrows(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, height, width, channels).permute(0, 3, 1, 2)

        return unrows(l_out), unrows(r_out)


# --- two-stream plumbing ---------------------------------------------------------------------
class Stereo(nn.Module):
    """Separate left and right copies of a layer stack, built by ``make``."""

    def __init__(self, make: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.left = make()
        self.right = make()

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.left(left), self.right(right)


class Shared(nn.Module):
    """One layer stack applied to both streams (the same weights)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.body(left), self.body(right)


class StereoSequential(nn.ModuleList):
    """Two-stream modules (Stereo, Shared, StereoCrossAttention) applied in order."""

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for module in self:
            left, right = module(left, right)
        return left, right


# --- stereo context modules ------------------------------------------------------------------
class HyperlatentContext(nn.Module):
    """c_z (paper Eq. 2, Fig. 3 top): right hyperlatent (mu, b) from z^_l and learned phi_zr.

    Input concat[phi_zr,mu, phi_zr,b (per-channel vectors broadcast over positions), z^_l]
    (3M) -> conv 4M, PReLU, conv 4M, PReLU, conv 2M -> (mu, ReLU(b)).
    """

    def __init__(self, m: int) -> None:
        super().__init__()
        self.phi_loc = nn.Parameter(torch.zeros(m))
        self.phi_scale = nn.Parameter(torch.ones(m))
        self.net = nn.Sequential(
            _conv(3 * m, 4 * m), _prelu(4 * m), _conv(4 * m, 4 * m), _prelu(4 * m), _conv(4 * m, 2 * m)
        )

    def forward(self, z_left_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(scales, means)``."""
        shape = (1, -1, 1, 1)
        phi = [p.view(shape).expand_as(z_left_hat) for p in (self.phi_loc, self.phi_scale)]
        means, scales = self.net(torch.cat([*phi, z_left_hat], dim=1)).chunk(2, dim=1)
        return F.relu(scales), means


class LatentContext(nn.Module):
    """c_y (paper Eq. 3, Fig. 3 bottom): right latent (mu, b) from y^_l and phi_yr (from h_D).

    a = PReLU(conv M->N (y^_l)), b = PReLU(conv N->N (phi_yr)), (a', b') = SCA(a, b),
    PReLU over concat[a', b'] (2N) -> conv 2N->2M -> (mu, b).
    """

    def __init__(self, n: int, m: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.left_in = nn.Sequential(_conv(m, n), _prelu(n))
        self.right_in = nn.Sequential(_conv(n, n), _prelu(n))
        self.attention = StereoCrossAttention(n, heads, head_dim)
        self.out = nn.Sequential(_prelu(2 * n), _conv(2 * n, 2 * m))

    def forward(self, y_left_hat: torch.Tensor, phi_right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(scales, means)``."""
        a, b = self.attention(self.left_in(y_left_hat), self.right_in(phi_right))
        means, scales = self.out(torch.cat([a, b], dim=1)).chunk(2, dim=1)
        return scales, means


class ECSIC(MultiViewCodec):
    """ECSIC stereo codec (K = 2: view 0 is the left image, view 1 the right).

    Coding order and streams (4, in this order): left hyperlatent z^_l (fixed per-channel
    Laplace), right hyperlatent z^_r (c_z from z^_l), left latent y^_l (h_D of both
    hyperlatents), right latent y^_r (c_y from y^_l and h_D). Each stream holds the symbols
    round(v - mu) of one variable in (channel, row, column) order, rANS-coded with Laplace
    CDF tables (:mod:`.laplace`; 64 log-spaced b from 0.1 to 64) selected per symbol by the
    predicted b. The entropy-parameter path (the z_l prior, c_z, h_D with its heads, c_y)
    runs single-threaded while coding, so encoder and decoder derive identical table indexes
    and means whatever their thread counts. Latents: ``y`` (2, M, H/8, W/8) and ``z``
    (2, M, H/32, W/32) symbols; inputs are replicate-padded to multiples of 32.

    Scales: c_z's b passes through ReLU (as in the public code), the h_D and c_y heads give
    raw b; the Laplace model lower-bounds every b at 0.1 and every likelihood at 1e-9.
    ``aux_loss()`` is zero (no EntropyBottleneck).

    Deviations from the public code (which estimates rates only): real rANS coding with
    Laplace tables, so coded b are rounded up to the next table entry; the phi_zr vectors and
    the z_l prior start at mu = 0, b = 1 (the code draws them at random); SCA attention runs
    through ``scaled_dot_product_attention`` (the same maths as the code's explicit softmax).
    """

    pad_multiple = 32
    views = ViewRange(2, 2)

    def __init__(self, config: ECSICConfig, identity: CodecIdentity | None = None) -> None:
        super().__init__(config, identity)
        n, m, heads, d = config.N, config.M, config.heads, config.head_dim
        if min(n, m, heads, d) < 1:
            raise ValueError(f"N, M, heads and head_dim must be positive, got {config}")
        if n % heads:
            raise ValueError(f"N ({n}) must divide by heads ({heads}): SCA splits values into heads of N/heads")

        def sca() -> StereoCrossAttention:
            return StereoCrossAttention(n, heads, d)

        self.encoder = StereoSequential([  # E: shared convs 1-3, SCA at H/8, separate last conv
            Shared(nn.Sequential(_conv(3, n, 2), _prelu(n), _conv(n, n, 2), _prelu(n), _conv(n, n, 2), _prelu(n))),
            sca(),
            Stereo(lambda: nn.Sequential(_prelu(n), _conv(n, m))),
        ])
        self.decoder = StereoSequential([  # D: SCA at H/4, after the first upsampling
            Stereo(lambda: nn.Sequential(_deconv(m, n), _prelu(n))),
            sca(),
            Stereo(lambda: nn.Sequential(
                _prelu(n), _deconv(n, n), _prelu(n), _deconv(n, n), _prelu(n), _deconv(n, 3, stride=1)
            )),
        ])
        self.hyper_encoder = StereoSequential([  # h_E: SCA at H/32
            Stereo(lambda: nn.Sequential(_conv(m, n, 2), _prelu(n), _conv(n, n, 2), _prelu(n))),
            sca(),
            Stereo(lambda: nn.Sequential(_prelu(n), _conv(n, m))),
        ])
        self.hyper_decoder = StereoSequential([  # h_D trunk: SCA at H/16, back to H/8
            Stereo(lambda: nn.Sequential(_deconv(m, n), _prelu(n))),
            sca(),
            Stereo(lambda: nn.Sequential(_prelu(n), _deconv(n, n), _prelu(n))),
        ])
        self.hyper_left_head = _conv(n, 2 * m)  # (mu_yl, b_yl)
        self.hyper_right_head = _conv(n, n)  # phi_yr, the feature c_y conditions on
        self.z_left_prior = FactorizedLaplace(m)
        self.z_context = HyperlatentContext(m)  # c_z
        self.y_context = LatentContext(n, m, heads, d)  # c_y
        self.laplace = LaplaceConditional()

    # --- shared pieces ------------------------------------------------------------------
    def update(self, scale_table=None, force: bool = False, update_quantiles: bool = False) -> bool:
        """Build the Laplace CDF tables (by default :func:`.laplace.laplace_scale_table`)."""
        if scale_table is None:
            scale_table = laplace_scale_table()
        return super().update(scale_table, force=force, update_quantiles=update_quantiles)

    def aux_loss(self) -> torch.Tensor:
        """Zero: every prior is a parametric Laplace, there are no EntropyBottleneck quantiles."""
        return self.z_left_prior.loc.new_zeros(())

    def entropy_chain(
        self, z_shape: torch.Size | tuple[int, ...], quantizer: Quantizer, values: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """The entropy model's schedule, for training and coding alike: (y^_l, y^_r, recorded).

        Variable i (0 z_l, 1 z_r, 2 y_l, 3 y_r; ``values[i]``, None when decoding) goes to
        ``quantizer`` with its Laplace parameters and stream i; ``recorded[i]`` is what the
        quantizer recorded for it. Each variable's parameters depend only on the
        reconstructions of the variables before it.
        """
        recorded: list[torch.Tensor] = []

        def step(scales: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
            i = len(recorded)
            value, record = quantizer(None if values is None else values[i], scales, means, stream=i)
            recorded.append(record)
            return value

        z_left = step(*self.z_left_prior.params(z_shape))
        z_right = step(*self.z_context(z_left))
        features_left, features_right = self.hyper_decoder(z_left, z_right)
        means, scales = self.hyper_left_head(features_left).chunk(2, dim=1)
        y_left = step(scales, means)
        y_right = step(*self.y_context(y_left, self.hyper_right_head(features_right)))
        return y_left, y_right, recorded

    def _analyze(self, left: torch.Tensor, right: torch.Tensor) -> list[torch.Tensor]:
        y_left, y_right = self.encoder(left, right)
        z_left, z_right = self.hyper_encoder(y_left, y_right)
        return [z_left, z_right, y_left, y_right]

    # --- training -----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> dict:
        self.check_input(x)
        values = self._analyze(x[:, 0], x[:, 1])
        y_left, y_right, likelihoods = self.entropy_chain(values[0].shape, STEQuantizer(self.laplace), values)
        x_left, x_right = self.decoder(y_left, y_right)
        return {
            "x_hat": torch.stack([x_left, x_right], dim=1),
            "likelihoods": {
                "y": torch.stack(likelihoods[2:], dim=1),
                "z": torch.stack(likelihoods[:2], dim=1),
            },
        }

    # --- coding -------------------------------------------------------------------------
    def _finish(self, streams: list[bytes], symbols: list[torch.Tensor], y_left, y_right,
                reconstruct: bool = True) -> CodedStreams:
        latents = {"y": torch.cat(symbols[2:]), "z": torch.cat(symbols[:2])}
        if not reconstruct:
            return CodedStreams(streams, latents, None)
        x_left, x_right = self.decoder(y_left, y_right)
        return CodedStreams(streams, latents, torch.cat([x_left, x_right]))

    def _encode_padded(self, x: torch.Tensor, reconstruct: bool = True) -> CodedStreams:
        values = self._analyze(x[0:1], x[1:2])
        quantizer = RansQuantizer.encoding(self.laplace, 4)
        with single_threaded():
            y_left, y_right, symbols = self.entropy_chain(values[0].shape, quantizer, values)
        return self._finish(quantizer.flush(), symbols, y_left, y_right, reconstruct)

    def _decode_padded(self, streams, num_views, size):
        if num_views != 2 or len(streams) != 4:
            raise ValueError(f"ECSIC writes 4 streams for 2 views, found {len(streams)} for {num_views} views")
        height, width = size
        if height % self.pad_multiple or width % self.pad_multiple:
            raise ValueError(f"padded size {size} is not a multiple of {self.pad_multiple}")
        quantizer = RansQuantizer.decoding(self.laplace, streams)
        z_shape = (1, self.config.M, height // self.pad_multiple, width // self.pad_multiple)
        with single_threaded():
            y_left, y_right, symbols = self.entropy_chain(z_shape, quantizer)
        return self._finish(list(streams), symbols, y_left, y_right)

    def parameter_counts(self) -> dict[str, int]:
        """Per module as the official model counts them, plus encoder side (E, h_E and the whole
        entropy model) and decoder side (entropy model and D)."""
        entropy = (self.z_left_prior, self.z_context, self.hyper_decoder,
                   self.hyper_left_head, self.hyper_right_head, self.y_context)
        return {
            "E": parameter_count(self.encoder),
            "D": parameter_count(self.decoder),
            "h_E": parameter_count(self.hyper_encoder),
            "h_D": parameter_count(self.hyper_decoder, self.hyper_left_head, self.hyper_right_head),
            "c_z": parameter_count(self.z_context),
            "c_y": parameter_count(self.y_context),
            "z_left_prior": parameter_count(self.z_left_prior),
            "encoder": parameter_count(self.encoder, self.hyper_encoder, *entropy),
            "decoder": parameter_count(*entropy, self.decoder),
            "total": parameter_count(self),
        }


register_codec(
    "ecsic", 3, PRESETS,
    "ECSIC (WACV 2024): stereo cross attention on epipolar rows, left-to-right Laplace context; 2 views",
)(ECSIC)
