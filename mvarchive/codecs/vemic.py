"""VEMIC: view-aware entropy model for multi-view image compression (Jabbireddy et al. 2024).

Every view goes through the same MLIC++ model (:mod:`.mlicpp`: transforms, hyperprior and
multi-reference entropy model, weights shared across views). Views are coded
**autoregressively in view order 1..K**: view 1 is plain MLIC++; for view v >= 2 a
*view-context* attention block adds, for every channel slice s, features computed from the
previous views to the entropy-parameter estimation of that slice (paper §3.2–3.3, Fig. 2).
No public code exists; the choices below fill
what the paper leaves open.

Coding order and streams: view 1, view 2, ..., view K, each as one z stream then one y stream
(``[z_1, y_1, z_2, y_2, ...]``); inside a y stream, slice by slice, anchors then non-anchors
(as MLIC++). Decoding view v needs the decoded latents of views 1..v-1, so views decode
strictly in order; each view's entropy-parameter path runs single-threaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from .base import CodecIdentity, CodedStreams, MultiViewCodec, ViewRange, parameter_count
from .entropy import HYPERPRIOR_MULTIPLE
from .mlicpp import MLICPPConfig, MLICPPCore, collect, conv_projection, split_streams
from .registry import create_codec, register_codec
from .transfer import LoadReport, load_layers, source_state


@dataclass(frozen=True)
class VEMICConfig:
    N: int = 192
    M: int = 320
    slices: int = 10
    window: int = 5
    local_heads: int = 2
    intra_heads: int = 2
    view_channels: int = 64  # width of the view-attention queries/keys/values (2 x slice width)
    view_heads: int = 2
    view_embeddings: int = 8  # learned per-view embeddings; views beyond reuse the last one

    def base(self) -> MLICPPConfig:
        return MLICPPConfig(self.N, self.M, self.slices, self.window, self.local_heads, self.intra_heads)


class ViewState(NamedTuple):
    """What later views need from an already coded view."""

    hyper_means: torch.Tensor  # (B, M, h, w)
    y_hat: torch.Tensor  # (B, M, h, w)


class ViewSliceAttention(nn.Module):
    """View context of one slice: softmax attention from the current view to previous views.

    Queries from the current view's known features, keys from the same features of all
    previous views (one softmax over all their positions), values from the previous views'
    current slice. Output (B, 2c, h, w) projected into the first hidden layer of the anchor
    and non-anchor entropy-parameter networks by zero-initialized 1x1 convs.
    """

    def __init__(self, query_channels: int, slice_channels: int, width: int, heads: int, ep_hidden: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"view_channels ({width}) must divide by view_heads ({heads})")
        self.heads = heads
        self.scale = (width // heads) ** -0.5
        self.query = conv_projection(query_channels, width)
        self.key = conv_projection(query_channels, width)
        self.value = conv_projection(slice_channels, width)
        self.out = nn.Conv2d(width, 2 * slice_channels, 1)
        self.fuse_anchor = nn.Conv2d(2 * slice_channels, ep_hidden, 1, bias=False)
        self.fuse_nonanchor = nn.Conv2d(2 * slice_channels, ep_hidden, 1, bias=False)
        nn.init.zeros_(self.fuse_anchor.weight)
        nn.init.zeros_(self.fuse_nonanchor.weight)

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:  # (B, d, h, w) -> (B, heads, hw, d/heads)
        b, d = x.shape[:2]
        return x.reshape(b, self.heads, d // self.heads, -1).transpose(-1, -2)

    def forward(
        self, query: torch.Tensor, keys: list[torch.Tensor], values: list[torch.Tensor],
        query_embedding: torch.Tensor, key_embeddings: list[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = query.shape
        pos = lambda e: e[None, :, None, None]  # noqa: E731
        q = self._tokens(self.query(query) + pos(query_embedding)) * self.scale
        k = torch.cat([self._tokens(self.key(x) + pos(e)) for x, e in zip(keys, key_embeddings)], dim=2)
        v = torch.cat([self._tokens(self.value(x) + pos(e)) for x, e in zip(values, key_embeddings)], dim=2)
        # Chunk the queries so the score matrix stays below ~16 M entries per head.
        chunk = max(1, (1 << 24) // k.shape[2])
        attended = torch.cat(
            [(q[:, :, i : i + chunk] @ k.transpose(-1, -2)).softmax(dim=-1) @ v for i in range(0, q.shape[2], chunk)],
            dim=2,
        )  # (B, heads, hw, d/heads)
        context = self.out(attended.transpose(-1, -2).reshape(b, -1, h, w))
        return self.fuse_anchor(context), self.fuse_nonanchor(context)


class ViewContextModule(nn.Module):
    """All slices' view-context blocks plus the shared learned per-view embeddings."""

    def __init__(self, config: VEMICConfig) -> None:
        super().__init__()
        if config.view_embeddings < 1:
            raise ValueError(f"view_embeddings must be >= 1, got {config.view_embeddings}")
        c = config.M // config.slices
        self.slice_channels = c
        self.view_embedding = nn.Parameter(torch.zeros(config.view_embeddings, config.view_channels))
        nn.init.trunc_normal_(self.view_embedding, std=0.02)
        self.slices = nn.ModuleList(
            ViewSliceAttention(config.M if s == 0 else s * c, c, config.view_channels, config.view_heads, config.M)
            for s in range(config.slices)
        )

    def embedding(self, view: int) -> torch.Tensor:
        return self.view_embedding[min(view, self.view_embedding.shape[0] - 1)]

    def hook(self, view: int, previous: list[ViewState]) -> _ViewHook:
        """The MLIC++ view-context hook for 0-based view ``view`` given the earlier views."""
        return _ViewHook(self, view, previous)


class _ViewHook:
    def __init__(self, module: ViewContextModule, view: int, previous: list[ViewState]) -> None:
        if not previous:
            raise ValueError("the view context needs at least one previous view")
        self.module, self.view, self.previous = module, view, previous

    def __call__(self, s: int, hyper_means: torch.Tensor, decoded: torch.Tensor | None):
        c = self.module.slice_channels
        if s == 0:  # no decoded slices yet: match on the hyperprior means instead
            query, keys = hyper_means, [p.hyper_means for p in self.previous]
        elif decoded is None:
            raise ValueError(f"view context of slice {s} needs the view's decoded slices 0..{s - 1}")
        else:
            query, keys = decoded, [p.y_hat[:, : s * c] for p in self.previous]
        values = [p.y_hat[:, s * c : (s + 1) * c] for p in self.previous]
        embed = self.module.embedding
        return self.module.slices[s](
            query, keys, values, embed(self.view), [embed(u) for u in range(len(self.previous))]
        )


class VEMIC(MultiViewCodec):
    """VEMIC for any K >= 2 views, coded in order 1..K (module doc has the data flow).

    Choices where the paper is silent (each with its reason):

    * **Projections**: q, k, v are 1x1 conv then depthwise 3x3 conv (MLIC++'s own attention
      projections, so a token carries its 3x3 neighbourhood — useful for matching shifted
      content across views), width ``view_channels`` = 2c = 64 at the paper preset; output
      1x1 conv to 2c = 64, the width of every other MLIC++ context.
    * **Heads and scaling**: 2 heads (as MLIC++'s local/intra contexts), standard softmax
      attention with 1/sqrt(head width) scaling; one softmax over the positions of *all*
      previous views, as the paper's K ∈ R^{(v-1)hw x ...}. Queries are processed in chunks so
      memory stays bounded (the paper's O(hw·(v-1)hw) limitation remains in time).
    * **Slice 0**: there is no ŷ^{<1}, so queries/keys use the hyperprior means of the current
      and previous views (the only features known for all views before slice 0 is decoded);
      the values are still the previous views' slice 0.
    * **Anchors / non-anchors**: the view context depends only on data known before the slice
      starts, so it feeds both the anchor and the non-anchor entropy parameters.
    * **Fusion into EP**: concatenation with MLIC++'s EP input, implemented as its exact linear
      equivalent — a separate 1x1 conv (no bias) from the 2c view context to EP's first hidden
      layer, added before the first GELU. These convs start at zero, so a VEMIC initialized
      from MLIC++ codes every view exactly like MLIC++ until fine-tuning moves them (the
      gradients reach them from the first step), and view 1 (no view context) runs MLIC++'s
      very operations, so its bytes equal the single-view model's.
    * **Positional embeddings**: a learned vector per view index (trunc-normal, std 0.02),
      shared by all slices, added to the projected queries (current view's index) and to the
      projected keys and values (their view's index). The table has ``view_embeddings`` = 8
      rows (Wildtrack has 7 cameras, Holocamera jointly codes 6); views beyond the table reuse
      its last row, so any K works.
    * **View 1**: plain MLIC++ (no previous view).
    """

    pad_multiple = HYPERPRIOR_MULTIPLE
    views = ViewRange(2)

    def __init__(self, config: VEMICConfig, identity: CodecIdentity | None = None) -> None:
        super().__init__(config, identity)
        if config.view_channels < 1:
            raise ValueError(f"view_channels must be >= 1, got {config.view_channels}")
        self.base = MLICPPCore(config.base())
        self.view_context = ViewContextModule(config)

    def forward(self, x: torch.Tensor) -> dict:
        self.check_input(x)
        batch, num_views = x.shape[:2]
        base = self.base
        y = base.g_a(x.flatten(0, 1))
        hyper, z_likelihoods = base.hyper_forward(y)
        y = y.reshape(batch, num_views, *y.shape[1:])
        hyper = hyper.reshape(batch, num_views, *hyper.shape[1:])
        states: list[ViewState] = []
        y_likelihoods = []
        for v in range(num_views):
            hook = self.view_context.hook(v, states) if v else None
            y_hat, likelihoods = base.mem(y[:, v], hyper[:, v], base.gaussian_conditional, hook)
            states.append(ViewState(hyper[:, v].chunk(2, dim=1)[1], y_hat))
            y_likelihoods.append(likelihoods)
        x_hat = base.g_s(torch.stack([s.y_hat for s in states], dim=1).flatten(0, 1))
        unflat = lambda t: t.reshape(batch, num_views, *t.shape[1:])  # noqa: E731
        return {
            "x_hat": unflat(x_hat),
            "likelihoods": {"y": torch.stack(y_likelihoods, dim=1), "z": unflat(z_likelihoods)},
        }

    def _encode_padded(self, x: torch.Tensor, reconstruct: bool = True) -> CodedStreams:
        codes, streams, images = [], [], []
        states: list[ViewState] = []
        for v in range(x.shape[0]):
            hook = self.view_context.hook(v, states) if v else None
            code = self.base.encode_view(x[v : v + 1], hook)
            streams += [code.z_string, code.y_string]
            codes.append(code)
            states.append(ViewState(code.hyper_means, code.y_hat))
            if reconstruct:
                images.append(self.base.g_s(code.y_hat))
        return collect(codes, streams, torch.cat(images) if reconstruct else None)

    def _decode_padded(self, streams, num_views, size):
        codes, images = [], []
        states: list[ViewState] = []
        for v, (z_string, y_string) in enumerate(split_streams(streams, num_views)):
            hook = self.view_context.hook(v, states) if v else None
            code = self.base.decode_view(z_string, y_string, size, hook)
            codes.append(code)
            states.append(ViewState(code.hyper_means, code.y_hat))
            images.append(self.base.g_s(code.y_hat))
        return collect(codes, list(streams), torch.cat(images))

    def parameter_counts(self) -> dict[str, int]:
        """MLIC++ parts (``base_*``), the view-context block, and the total."""
        counts = {f"base_{k}": v for k, v in self.base.parameter_counts().items()}
        counts["view_context"] = parameter_count(self.view_context)
        counts["total"] = parameter_count(self)
        return counts


VEMIC_PRESETS = {
    "paper": VEMICConfig(N=192, M=320, slices=10, view_channels=64, view_heads=2, view_embeddings=8),
    "tiny": VEMICConfig(N=32, M=32, slices=4, view_channels=16, view_heads=2, view_embeddings=8),
}

register_codec(
    "vemic", 7, VEMIC_PRESETS,
    "VEMIC (Jabbireddy et al. 2024): MLIC++ per view + view-context attention, views coded in order",
)(VEMIC)


# --- construction from single-view checkpoints -----------------------------------------------
def _mlicpp_groups(state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> list[tuple[str, str]]:
    """The project's ``single-view-mlicpp`` keys are VEMIC's ``base.*`` keys (a bare
    :class:`MLICPPCore` state dict without the ``base.`` prefix is accepted too)."""
    prefixed = any(k.startswith("base.") for k in state)
    return [(k if prefixed else k[len("base."):], k) for k in target if k.startswith("base.")]


def _elic_groups(state: Mapping[str, torch.Tensor]) -> list[tuple[str, str]]:
    """Layer mapping from CompressAI's ``Elic2022Chandelier`` to VEMIC's MLIC++ base.

    * ``latent_codec.hyper.entropy_bottleneck`` -> ``base.entropy_bottleneck`` (factorized prior
      of z, N channels in both);
    * ``latent_codec.hyper.h_a.{0,2,4}`` -> ``base.h_a.{0,4,8}`` (first conv M->N, the two
      stride-2 convs); ``latent_codec.hyper.h_s.{0,2,4}`` -> ``base.h_s.{2.0,6.0,8}`` (the two
      upsamplers and the output layer);
    * the k-th resampling layer of ELIC's g_a (plain ``g_a.<i>`` convs) -> the k-th of MLIC++'s
      (``g_a.{0,2,4}.conv1``, ``g_a.6``); likewise g_s (``g_s.{1,3,5}.subpel.0``, ``g_s.7.0``);
    * ``latent_codec.y.latent_codec.y0.y.gaussian_conditional`` -> ``base.gaussian_conditional``.

    A layer loads only if *all* its tensors match in shape; ELIC's 5x5 (de)convs never match
    MLIC++'s 3x3 / sub-pixel layers, so in practice only the z prior, h_a's first conv and the
    Gaussian-conditional constants load. ELIC's residual/attention blocks and its unevenly
    grouped slice contexts have no MLIC++ counterpart (reported as unused).
    """

    def resamplers(prefix: str) -> list[str]:
        found = sorted(
            {
                int(k.split(".")[1])
                for k in state
                if k.startswith(prefix + ".") and k.count(".") == 2 and k.endswith(".weight")
            }
        )
        return [f"{prefix}.{i}" for i in found]

    groups = [
        ("latent_codec.hyper.entropy_bottleneck", "base.entropy_bottleneck"),
        ("latent_codec.hyper.h_a.0", "base.h_a.0"),
        ("latent_codec.hyper.h_a.2", "base.h_a.4"),
        ("latent_codec.hyper.h_a.4", "base.h_a.8"),
        ("latent_codec.hyper.h_s.0", "base.h_s.2.0"),
        ("latent_codec.hyper.h_s.2", "base.h_s.6.0"),
        ("latent_codec.hyper.h_s.4", "base.h_s.8"),
        ("latent_codec.y.latent_codec.y0.y.gaussian_conditional", "base.gaussian_conditional"),
    ]
    groups += list(zip(resamplers("g_a"), ["base.g_a.0.conv1", "base.g_a.2.conv1", "base.g_a.4.conv1", "base.g_a.6"]))
    synthesis = ["base.g_s.1.subpel.0", "base.g_s.3.subpel.0", "base.g_s.5.subpel.0", "base.g_s.7.0"]
    groups += list(zip(resamplers("g_s"), synthesis))
    return groups


def vemic_from_single_view(
    state_dict_or_checkpoint: Any, preset: str = "paper", source: str = "mlicpp", **overrides: Any
) -> tuple[VEMIC, LoadReport]:
    """Build a VEMIC whose MLIC++ base comes from a single-view model; view context fresh.

    ``state_dict_or_checkpoint``: a checkpoint path or payload written by ``save_checkpoint``,
    a state dict, or a module. ``source="mlicpp"``: the project's ``single-view-mlicpp`` (all
    base tensors load when the presets agree); ``source="elic"``: CompressAI's
    ``Elic2022Chandelier`` (see :func:`_elic_groups` for the mapping). The returned model is in
    eval mode with CDF tables built, ready to code or to fine-tune (call ``.train()``).
    """
    if source not in ("mlicpp", "elic"):
        raise ValueError(f"source must be 'mlicpp' or 'elic', got {source!r}")
    state = source_state(state_dict_or_checkpoint, "single-view-mlicpp" if source == "mlicpp" else None)
    model = create_codec("vemic", preset, **overrides)
    if not isinstance(model, VEMIC):  # pragma: no cover - the registry maps "vemic" to VEMIC
        raise TypeError(f"registry entry 'vemic' builds {type(model).__name__}, not VEMIC")
    target = model.state_dict()
    layers: list[list[tuple[str | None, str]]]
    if source == "mlicpp":
        layers = [[pair] for pair in _mlicpp_groups(state, target) if pair[0] in state]
    else:
        layers = [
            [(src_prefix + k[len(dst_prefix):], k) for k in target if k.startswith(dst_prefix + ".")]
            for src_prefix, dst_prefix in _elic_groups(state)
        ]
    report = LoadReport(source=f"{source} state dict ({len(state)} tensors)")
    load_layers(model, state, layers, report)
    return model, report


__all__ = [
    "LoadReport",
    "VEMIC",
    "VEMICConfig",
    "ViewContextModule",
    "ViewSliceAttention",
    "vemic_from_single_view",
]
