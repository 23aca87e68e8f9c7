"""CAMSIC: content-aware masked image modeling Transformer for stereo image compression.

Zhang et al., arXiv 2403.08505 (2024), §3–4; official code ``Xinjie-Q/CAMSIC``.

Data flow. Each view is transformed on its own by ELIC's g_a / g_s (shared weights,
y: M channels at H/16). Per view, y → h_a → z (``z`` channels, H/64, factorized prior);
h_s(ẑ) is an M-channel feature. The content-aware tokens are
c_v = F(cat[h_s(ẑ_v), prior_v]) with prior_v = a learned embedding ê for the first coded view
and the first view's ŷ (same positions, no warping) for the second. A decoder-free Swin
Transformer (token projection + LayerNorm, identity embeddings ID₀ on not-yet-coded content
tokens and ID₁ on decoded ŷ tokens, W-MSA / SW-MSA blocks with relative position bias and
res-post-norm) and a per-token entropy-parameter head give (σ, μ) of a Gaussian ⊛ U(−½, ½).

Training (paper §3.4, Eq. 6): pass 1 on c (all ID₀) gives (σ¹, μ¹); a
Bernoulli(½) mask m (1×1×h×w, from the global RNG, training only) selects positions whose
rate uses pass 1; they are replaced by round(y − μ¹) + μ¹ (STE) with ID₁ for pass 2, whose
(σ², μ²) code the rest. In eval mode ``forward`` runs the same T-step schedule as coding and
returns the rates the coder would approach.

Coding (paper §3.4 and appendix): T steps (default 8) with the sinusoidal schedule; step
i = 1…T−1 codes ⌊(sin(iπ/2T) − sin((i−1)π/2T))·n⌋ positions, step T the rest. At each step
both sides run the Transformer on the current composite tokens, score every position by its
predicted bits Σ_c −log₂(2Φ(½/σ_c) − 1) (σ ≥ 0.11, p ≥ 1e-9, float64), drop decoded
positions and take the k lowest scores with a *stable* sort over raster order (ties go to the
lower raster index). Those positions are coded with the step's (σ, μ): channel-major,
ascending raster index within a channel, all steps of a view in one rANS stream.
The score depends only on σ, so the decoder recomputes the same order; σ must be bit-exact,
hence the whole entropy path (h_s, F, Transformer, head) runs single-threaded while coding.

View order: views are coded in the order given, view 0 first (the entropy model of view 1
sees ŷ_0). The official code codes the *right* view first; pass (right, left) to match it.
Streams: ``[z_0, y_0, z_1, y_1]``. Latents: ``y`` the coded symbols round(y − μ) (2, M, h, w),
``z`` the symbols round(z − median) (2, z, h/4, w/4).

Deviations / choices: a fresh CAMSIC's g_a / g_s use PyTorch's default init; the paper's
initialization from an ELIC checkpoint is :func:`camsic_from_elic` (``mvarchive train --codec
camsic --init <single-view-elic2022-chandelier checkpoint>``); the entropy model uses the official init
(kaiming-normal convs,
trunc-normal(0.02) linears and ID embeddings, ê ~ U(−3, 3)). Windows larger than the token
grid are handled by padding tokens to a multiple of the window and masking padded keys
(−100, like Swin's shift mask) instead of shrinking the window. The second view's prior ŷ_0
keeps its gradient in training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional

from .base import CodecIdentity, CodedStreams, MultiViewCodec, ViewRange, parameter_count
from .elic import elic_analysis, elic_synthesis
from .entropy import (
    HYPERPRIOR_MULTIPLE,
    Hyperprior,
    Quantizer,
    RansQuantizer,
    STEQuantizer,
    hyper_analysis,
    hyper_synthesis,
    masked_steps,
    single_threaded,
    ste_round,
)
from .layers import relative_position_index
from .registry import create_codec, register_codec
from .transfer import LoadReport, load_layers, source_state

__all__ = ["CAMSIC", "CAMSICConfig", "camsic_from_elic", "select_positions", "sine_schedule"]

SCALE_BOUND = 0.11  # GaussianConditional's lower bound on σ
LIKELIHOOD_BOUND = 1e-9


@dataclass(frozen=True)
class CAMSICConfig:
    N: int = 192  # ELIC transform channels
    M: int = 320  # channels of y (token dimension d)
    z: int = 160  # channels of z
    depth: int = 8  # Swin blocks
    heads: int = 12
    window: int = 8
    width: int = 768  # Transformer width
    steps: int = 8  # coding steps per view


# --- schedule and order ---------------------------------------------------------------------
def sine_schedule(n: int, steps: int) -> list[int]:
    """Positions coded at each step: front-loaded sinusoidal ratio, last step takes the rest."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    counts = [
        math.floor((math.sin(i * math.pi / (2 * steps)) - math.sin((i - 1) * math.pi / (2 * steps))) * n)
        for i in range(1, steps)
    ]
    return counts + [n - sum(counts)]


def predicted_bits(scales: torch.Tensor) -> torch.Tensor:
    """Σ over channels of −log₂(2Φ(½/σ) − 1) in float64: scales (M, n) → (n,)."""
    sigma = scales.double().clamp_min(SCALE_BOUND)
    p = torch.erf(0.5 / (sigma * math.sqrt(2.0))).clamp_min(LIKELIHOOD_BOUND)
    return (-torch.log2(p)).clamp_min(0).sum(dim=0)


def select_positions(scales: torch.Tensor, decoded: torch.Tensor, k: int) -> torch.Tensor:
    """The k not-yet-decoded raster positions with the lowest predicted bits, ascending.

    Ties go to the lower raster index (stable sort), so the order is a pure function of σ.
    """
    score = predicted_bits(scales)
    score[decoded] = math.inf
    chosen = torch.sort(score, stable=True).indices[:k]
    return torch.sort(chosen).values


# --- Swin Transformer -----------------------------------------------------------------------
def _trunc_normal(tensor: torch.Tensor, std: float = 0.02) -> torch.Tensor:
    return nn.init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std)


class WindowAttention(nn.Module):
    """Multi-head self attention inside w×w windows with a relative position bias table."""

    relative_position_index: torch.Tensor

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width ({dim}) must divide by heads ({heads})")
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(_trunc_normal(torch.zeros((2 * window - 1) ** 2, heads)))
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B·nW, w², C); mask: (nW, w², w²) additive."""
        bw, n, c = x.shape
        q, k, v = self.qkv(x).reshape(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.reshape(n, n, -1).permute(2, 0, 1)[None]
        nw = mask.shape[0]
        attn = (attn.reshape(bw // nw, nw, self.heads, n, n) + mask[None, :, None]).reshape(bw, self.heads, n, n)
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    """Res-post-norm Swin block: x ← x + LN(W-MSA(x)); x ← x + LN(MLP(x))."""

    def __init__(self, dim: int, heads: int, window: int, shift: bool) -> None:
        super().__init__()
        self.window = window
        self.shift = window // 2 if shift else 0
        self.attn = WindowAttention(dim, heads, window)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, Hp, Wp, C), already padded to multiples of the window."""
        return self.feed_forward(self.attend(x, mask))

    def attend(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x + LN(W-MSA(x)) on (B, Hp, Wp, C)."""
        b, hp, wp, c = x.shape
        w, s = self.window, self.shift
        shifted = torch.roll(x, (-s, -s), (1, 2)) if s else x
        windows = shifted.reshape(b, hp // w, w, wp // w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, c)
        out = self.attn(windows, mask)
        out = out.reshape(b, hp // w, wp // w, w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
        if s:
            out = torch.roll(out, (s, s), (1, 2))
        return x + self.norm1(out)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + LN(MLP(x)), token by token (any leading shape)."""
        return x + self.norm2(self.mlp(x))


def window_mask(height: int, width: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """Additive (nW, w², w²) mask: −100 across shifted regions and on padded keys."""
    hp, wp = -(-height // window) * window, -(-width // window) * window
    region = torch.zeros(hp, wp)
    if shift:
        cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
        label = 0
        for rows in cuts:
            for cols in cuts:
                region[rows, cols] = label
                label += 1
    valid = torch.zeros(hp, wp, dtype=torch.bool)
    valid[:height, :width] = True
    if shift:
        valid = torch.roll(valid, (-shift, -shift), (0, 1))

    def windows(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(hp // window, window, wp // window, window).permute(0, 2, 1, 3).reshape(-1, window * window)

    region_w, valid_w = windows(region), windows(valid)
    mask = torch.zeros(region_w.shape[0], window * window, window * window)
    mask = mask.masked_fill(region_w[:, :, None] != region_w[:, None, :], -100.0)
    mask = mask.masked_fill(~valid_w[:, None, :], -100.0)
    return mask.to(device)


class SwinTransformer(nn.Module):
    """``depth`` blocks, W-MSA and SW-MSA alternating; tokens (B, h, w, C) in and out."""

    def __init__(self, dim: int, depth: int, heads: int, window: int) -> None:
        super().__init__()
        self.window = window
        self.blocks = nn.ModuleList(SwinBlock(dim, heads, window, shift=i % 2 == 1) for i in range(depth))

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens (B, h, w, C) → (B, h, w, C); with ``rows`` (raster indices) → (B, len(rows), C),
        the output tokens at those positions only.

        The last block's MLP acts on every token by itself and nothing follows it, so with
        ``rows`` it runs on those tokens alone (the same per-row arithmetic): a coding step
        needs the parameters of the not-yet-decoded positions only.
        """
        b, h, w, c = x.shape
        win = self.window
        x = F.pad(x, (0, 0, 0, (-w) % win, 0, (-h) % win))
        blocks = [cast(SwinBlock, block) for block in self.blocks]
        masks = {s: window_mask(h, w, win, s, x.device) for s in {block.shift for block in blocks}}
        if rows is None:
            for block in blocks:
                x = block(x, masks[block.shift])
            return x[:, :h, :w]
        *first, last = blocks
        for block in first:
            x = block(x, masks[block.shift])
        x = last.attend(x, masks[last.shift])[:, :h, :w].reshape(b, h * w, c)[:, rows]
        return last.feed_forward(x)


# --- content-aware tokens and hyperprior -------------------------------------------------------
class ResBlock(nn.Module):
    """3x3 conv, ReLU, 3x3 conv, plus the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ContentTokens(nn.Module):
    """F: conv3x3 2M→M → t; t + [3 residual blocks](t)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fuse = nn.Conv2d(2 * channels, channels, 3, padding=1)
        self.refine = nn.Sequential(*(ResBlock(channels) for _ in range(3)))

    def forward(self, hyper: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        t = self.fuse(torch.cat([hyper, prior], dim=1))
        return t + self.refine(t)


# --- the codec ------------------------------------------------------------------------------
class CAMSIC(MultiViewCodec):
    pad_multiple = HYPERPRIOR_MULTIPLE
    views = ViewRange(2, 2)

    def __init__(self, config: CAMSICConfig, identity: CodecIdentity | None = None) -> None:
        super().__init__(config, identity)
        n, m, zc, width = config.N, config.M, config.z, config.width
        if config.window < 2 or config.window % 2:
            raise ValueError(f"window must be an even number >= 2, got {config.window}")
        if config.steps < 1:
            raise ValueError(f"steps must be >= 1, got {config.steps}")
        self.g_a = elic_analysis(n, m)
        self.g_s = elic_synthesis(n, m)
        self.h_a = hyper_analysis(m, zc)
        self.h_s = hyper_synthesis(zc, zc, m)
        self.entropy_bottleneck = EntropyBottleneck(zc)
        self.gaussian_conditional = GaussianConditional(None)
        self.content_tokens = ContentTokens(m)
        self.prior_embedding = nn.Parameter(torch.empty(m).uniform_(-3, 3))  # ê for the first view
        self.token_projection = nn.Sequential(nn.Linear(m, width), nn.LayerNorm(width))
        self.identity_embeddings = nn.Parameter(_trunc_normal(torch.zeros(2, width)))  # ID₀ content, ID₁ decoded
        self.transformer = SwinTransformer(width, config.depth, config.heads, config.window)
        self.parameter_head = nn.Sequential(
            nn.Linear(width, width), nn.LeakyReLU(inplace=True),
            nn.Linear(width, width), nn.LeakyReLU(inplace=True),
            nn.Linear(width, 2 * m),
        )
        entropy_model = (self.content_tokens, self.token_projection, self.transformer, self.parameter_head)
        for module in (self.h_a, self.h_s, *entropy_model):
            module.apply(_init_weights)

    # --- entropy model pieces ---------------------------------------------------------------
    @property
    def hyperprior(self) -> Hyperprior:
        return Hyperprior(self.h_a, self.entropy_bottleneck, self.h_s)

    def _tokens(self, hyper: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        if prior is None:
            prior = self.prior_embedding.reshape(1, -1, 1, 1).expand_as(hyper)
        return self.content_tokens(hyper, prior)

    def _transformer_input(self, tokens: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        t = self.token_projection(tokens.permute(0, 2, 3, 1))
        ids = torch.where(decoded[..., None], self.identity_embeddings[1], self.identity_embeddings[0])
        return t + ids

    def entropy_parameters(self, tokens: torch.Tensor, decoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Composite tokens (B, M, h, w) and a decoded mask (1 or B, h, w) → (σ, μ), each (B, M, h, w)."""
        out = self.parameter_head(self.transformer(self._transformer_input(tokens, decoded))).permute(0, 3, 1, 2)
        scales, means = out.chunk(2, dim=1)
        return scales.contiguous(), means.contiguous()

    def step_parameters(self, tokens: torch.Tensor, decoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`entropy_parameters` where a coding step reads them: at the not-yet-decoded
        positions of a (1, h, w) mask, zeros at the decoded ones (never read: a step codes
        undecoded positions only). The last Swin block's MLP and the head, token-wise, then run
        on those positions alone (over half of them are decoded, on average over the steps)."""
        b, m, h, w = tokens.shape
        rows = (~decoded.reshape(-1)).nonzero().squeeze(1)
        out = self.parameter_head(self.transformer(self._transformer_input(tokens, decoded), rows))
        full = out.new_zeros(b, h * w, out.shape[-1])
        full[:, rows] = out
        scales, means = full.reshape(b, h, w, -1).permute(0, 3, 1, 2).chunk(2, dim=1)
        return scales.contiguous(), means.contiguous()

    def _iterate(
        self, content: torch.Tensor, quantizer: Quantizer, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The T-step masked schedule of one view (batch 1), for estimating and coding alike:
        the sinusoidal step sizes, the Transformer's parameters, the cheapest positions first
        (:func:`select_positions`). Returns ŷ and what ``quantizer`` recorded, each (1, M, h, w)."""
        counts = sine_schedule(content.shape[-2] * content.shape[-1], self.config.steps)
        return masked_steps(quantizer, y, content, counts, self.step_parameters, select_positions)

    # --- training ---------------------------------------------------------------------------
    def _train_view(self, y: torch.Tensor, content: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two-pass masked rate (paper Eq. 6) → (ŷ, likelihoods)."""
        _, _, height, width = y.shape
        nothing = torch.zeros(1, height, width, dtype=torch.bool, device=y.device)
        scales1, means1 = self.entropy_parameters(content, nothing)
        mask = torch.rand(1, 1, height, width, device=y.device) < 0.5
        composite = torch.where(mask, ste_round(y - means1) + means1, content)
        scales2, means2 = self.entropy_parameters(composite, mask[:, 0])
        scales = torch.where(mask, scales1, scales2)
        means = torch.where(mask, means1, means2)
        _, likelihoods = self.gaussian_conditional(y, scales, means=means)
        return ste_round(y - means) + means, likelihoods

    def _estimate_view(self, y: torch.Tensor, content: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode rate: the T-step coding schedule without the coder, item by item."""
        y_hats, likelihoods = [], []
        for i in range(y.shape[0]):
            y_hat, lik = self._iterate(content[i : i + 1], STEQuantizer(self.gaussian_conditional), y[i : i + 1])
            y_hats.append(y_hat)
            likelihoods.append(lik)
        return torch.cat(y_hats), torch.cat(likelihoods)

    def forward(self, x: torch.Tensor) -> dict:
        self.check_input(x)
        batch, num_views = x.shape[:2]
        y_all = self.g_a(x.flatten(0, 1))
        hyper_all, z_likelihoods = self.hyperprior.forward(y_all)
        y_all = y_all.reshape(batch, num_views, *y_all.shape[1:])
        hyper_all = hyper_all.reshape(batch, num_views, *hyper_all.shape[1:])
        y_hats, y_likelihoods, prior = [], [], None
        for view in range(num_views):
            content = self._tokens(hyper_all[:, view], prior)
            code_view = self._train_view if self.training else self._estimate_view
            y_hat, lik = code_view(y_all[:, view], content)
            y_hats.append(y_hat)
            y_likelihoods.append(lik)
            prior = y_hat
        y_hat = torch.stack(y_hats, dim=1)
        x_hat = self.g_s(y_hat.flatten(0, 1))
        return {
            "x_hat": x_hat.reshape(batch, num_views, *x_hat.shape[1:]),
            "likelihoods": {
                "y": torch.stack(y_likelihoods, dim=1),
                "z": z_likelihoods.reshape(batch, num_views, *z_likelihoods.shape[1:]),
            },
        }

    # --- coding -----------------------------------------------------------------------------
    def _encode_padded(self, x: torch.Tensor, reconstruct: bool = True) -> CodedStreams:
        hyperprior = self.hyperprior
        y_all = self.g_a(x)
        z_all = hyperprior.h_a(y_all)
        streams: list[bytes] = []
        y_symbols, y_hats, z_symbols, prior = [], [], [], None
        for view in range(x.shape[0]):
            z = hyperprior.encode_z(z_all[view : view + 1])
            quantizer = RansQuantizer.encoding(self.gaussian_conditional, 1)
            with single_threaded():
                content = self._tokens(z.features, prior)
                y_hat, symbols = self._iterate(content, quantizer, y_all[view : view + 1])
            streams += [*z.strings, *quantizer.flush()]
            y_symbols.append(symbols)
            y_hats.append(y_hat)
            z_symbols.append(z.symbols)
            prior = y_hat
        return self._result(streams, y_symbols, y_hats, z_symbols, reconstruct)

    def _decode_padded(self, streams, num_views, size):
        if len(streams) != 2 * num_views:
            raise ValueError(f"expected {2 * num_views} streams for {num_views} views, found {len(streams)}")
        y_symbols, y_hats, z_symbols, prior = [], [], [], None
        for view in range(num_views):
            z = self.hyperprior.decode([streams[2 * view]], size)
            quantizer = RansQuantizer.decoding(self.gaussian_conditional, [streams[2 * view + 1]])
            with single_threaded():
                content = self._tokens(z.features, prior)
                y_hat, symbols = self._iterate(content, quantizer)
            y_symbols.append(symbols)
            y_hats.append(y_hat)
            z_symbols.append(z.symbols)
            prior = y_hat
        return self._result(list(streams), y_symbols, y_hats, z_symbols)

    def _result(self, streams, y_symbols, y_hats, z_symbols, reconstruct: bool = True) -> CodedStreams:
        latents = {"y": torch.cat(y_symbols), "z": torch.cat(z_symbols)}
        return CodedStreams(streams, latents, self.g_s(torch.cat(y_hats)) if reconstruct else None)

    def parameter_counts(self) -> dict[str, int]:
        """Breakdown of the official model; encoder = g_a + hyperprior + entropy model,
        decoder = h_s + factorized prior + entropy model + g_s."""
        token_model = (
            self.content_tokens, self.prior_embedding, self.token_projection,
            self.identity_embeddings, self.transformer, self.parameter_head,
        )
        return {
            "g_a": parameter_count(self.g_a),
            "g_s": parameter_count(self.g_s),
            "hyperprior": parameter_count(self.h_a, self.h_s, self.entropy_bottleneck),
            "transformer": parameter_count(self.transformer),
            "content_tokens": parameter_count(self.content_tokens),
            "parameter_head": parameter_count(self.parameter_head),
            "projection": parameter_count(self.token_projection),
            "embeddings": parameter_count(self.prior_embedding, self.identity_embeddings),
            "entropy_model": parameter_count(self.h_a, self.h_s, self.entropy_bottleneck, *token_model),
            "encoder": parameter_count(self.g_a, self.h_a, self.h_s, self.entropy_bottleneck, *token_model),
            "decoder": parameter_count(self.h_s, self.entropy_bottleneck, *token_model, self.g_s),
            "total": parameter_count(self),
        }


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        _trunc_normal(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.kaiming_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


register_codec(
    "camsic", 6,
    {
        "paper": CAMSICConfig(),
        # N, M as single-view-elic2022-chandelier's tiny preset, so camsic_from_elic loads all of g_a / g_s
        "tiny": CAMSICConfig(N=32, M=40, z=16, depth=2, heads=2, window=4, width=32, steps=8),
    },
    "CAMSIC (Zhang et al. 2024): ELIC transforms, content-aware masked-image-modeling Swin "
    "Transformer entropy model, views coded sequentially in 8 steps each",
)(CAMSIC)


# --- construction from an ELIC checkpoint ------------------------------------------------------
_TRANSFORMS = ("g_a", "g_s")


def _layers(state: Mapping[str, Any], prefix: str) -> dict[int, list[str]]:
    """``prefix.<i>.…`` keys grouped by layer index ``i``, each group in state-dict order."""
    layers: dict[int, list[str]] = {}
    for key in state:
        if key.startswith(prefix):
            index = key[len(prefix):].split(".", 1)[0]
            if index.isdigit():
                layers.setdefault(int(index), []).append(key)
    return layers


def camsic_from_elic(
    state_dict_or_checkpoint: Any, preset: str = "paper", **overrides: Any
) -> tuple[CAMSIC, LoadReport]:
    """A CAMSIC whose g_a / g_s are ELIC's (both views share them), everything else fresh.

    As the CAMSIC paper (§4, "Implementation Details") and its code do: the analysis and
    synthesis transforms start from a single-image ELIC model, the hyperprior (another width,
    160 z channels) and the Transformer entropy model from their own initialization; nothing
    is frozen afterwards. ``single-view-elic2022-chandelier`` holds CompressAI's
    ``Elic2022Chandelier``, whose g_a / g_s are the very layers of :func:`.elic.elic_analysis`
    / :func:`.elic.elic_synthesis` under other module names: layer ``i`` of the source's
    ``g_a`` (``g_s``) feeds layer ``i`` of CAMSIC's, tensor by tensor in order, and loads only
    if all its tensors match in shape (another N or M leaves it fresh, reported as skipped).
    The model is returned in eval mode with CDF tables built, ready to code or fine-tune.
    """
    state = source_state(state_dict_or_checkpoint, "single-view-elic2022-chandelier")
    model = create_codec("camsic", preset, **overrides)
    if not isinstance(model, CAMSIC):  # pragma: no cover - the registry maps "camsic" to CAMSIC
        raise TypeError(f"registry entry 'camsic' builds {type(model).__name__}, not CAMSIC")
    root = "model." if any(k.startswith("model.g_a.") for k in state) else ""
    layers: list[list[tuple[str | None, str]]] = []
    for name in _TRANSFORMS:
        sources = _layers(state, f"{root}{name}.")
        for index, members in sorted(_layers(model.state_dict(), f"{name}.").items()):
            given = sources.get(index, [])
            # layer i feeds layer i tensor by tensor, in order; another tensor count fits nothing
            pairs = zip(given, members) if len(given) == len(members) else ((None, dst) for dst in members)
            layers.append(list(pairs))
    report = LoadReport(source=f"elic state dict ({len(state)} tensors)", target="CAMSIC")
    load_layers(model, state, layers, report)
    return model, report
