"""MLIC++'s multi-reference entropy model: per slice, checkerboard anchors then non-anchors, all
contexts; one schedule (:mod:`..entropy.schedules`) for training and coding; a view-context hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
import torch.nn as nn

from ..entropy import (
    Quantizer,
    STEQuantizer,
    anchor_mask,
    channel_slices,
    checkerboard,
)
from .config import MLICPPConfig
from .contexts import (
    ChannelContext,
    EntropyParameters,
    GlobalInterContext,
    GlobalIntraContext,
    LatentResidualPrediction,
    LocalWindowContext,
)


class SliceContextModel(nn.Module):
    """Everything that predicts one slice: contexts, entropy parameters, LRP."""

    def __init__(self, index: int, config: MLICPPConfig) -> None:
        super().__init__()
        m, c = config.M, config.M // config.slices
        prev = index * c
        ep_hidden = (m, m * 4 // 5, m * 2 // 5)
        self.index = index
        self.local = LocalWindowContext(c, config.window, config.local_heads)
        if index:
            self.channel = ChannelContext(prev, 4 * c, (m * 3 // 5, m * 2 // 5))
            self.inter = GlobalInterContext(prev, c, heads=index)
            self.intra = GlobalIntraContext(c, config.intra_heads)
        ctx_a = 6 * c if index else 0  # inter (2c) + channel (4c)
        ctx_n = 10 * c if index else 2 * c  # local (2c) [+ intra (2c) + inter + channel]
        self.ep_anchor = EntropyParameters(2 * m + ctx_a, 2 * c, ep_hidden)
        self.ep_nonanchor = EntropyParameters(2 * m + ctx_n, 2 * c, ep_hidden)
        self.lrp_anchor = LatentResidualPrediction(m + prev + c, c, (m * 7 // 10, m * 2 // 5))
        self.lrp_nonanchor = LatentResidualPrediction(m + prev + c, c, (m * 7 // 10, m * 2 // 5))


# A view-context hook: (slice index, hyper means, y^<s of this view or None)
#   -> (extra for the anchor EP, extra for the non-anchor EP), both added after EP's first layer.
ViewContextHook = Callable[[int, torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]


class MultiReferenceEntropyModel(nn.Module):
    """MLIC++'s entropy model for y: channel slices x checkerboard, multi-reference contexts."""

    def __init__(self, config: MLICPPConfig) -> None:
        super().__init__()
        self.latent_channels = config.M
        self.slice_channels = config.M // config.slices
        self.slices = nn.ModuleList(SliceContextModel(i, config) for i in range(config.slices))

    def run(
        self, hyper: torch.Tensor, quantizer: Quantizer, y: torch.Tensor | None = None,
        view_context: ViewContextHook | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The slice loop for training and coding alike: (y^ (B, M, h, w), what ``quantizer`` recorded)."""
        hyper_means = hyper.chunk(2, dim=1)[1]
        anchors = anchor_mask(hyper.shape[-2], hyper.shape[-1], device=hyper.device)

        def code_slice(s: int, y_s: torch.Tensor | None, decoded: list[torch.Tensor]):
            part = cast(SliceContextModel, self.slices[s])
            previous = torch.cat(decoded, dim=1) if decoded else None
            extra_a = extra_n = None
            if view_context is not None:
                extra_a, extra_n = view_context(s, hyper_means, previous)
            shared = [] if previous is None else [part.inter(previous), part.channel(previous)]

            def anchor_params(positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                scales, means = part.ep_anchor(torch.cat([*shared, hyper], dim=1), extra_a)
                return scales[:, :, positions], means[:, :, positions]

            def refine_anchors(y_anchor: torch.Tensor) -> torch.Tensor:
                return y_anchor + part.lrp_anchor(torch.cat([hyper_means, *decoded, y_anchor], dim=1)) * anchors

            def nonanchor_params(positions: torch.Tensor, y_anchor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                local = [part.local(y_anchor)]
                if previous is not None:
                    local.append(part.intra(decoded[-1], y_anchor))
                scales, means = part.ep_nonanchor(torch.cat([*local, *shared, hyper], dim=1), extra_n)
                return scales[:, :, positions], means[:, :, positions]

            y_slice, recorded = checkerboard(
                quantizer, y_s, hyper, self.slice_channels, anchor_params, nonanchor_params, refine_anchors
            )
            y_slice = y_slice + part.lrp_nonanchor(torch.cat([hyper_means, *decoded, y_slice], dim=1)) * ~anchors
            return y_slice, recorded

        return channel_slices(y, len(self.slices), code_slice)

    def forward(self, y, hyper, gc, view_context=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: (y^, likelihoods of y)."""
        return self.run(hyper, STEQuantizer(gc), y, view_context)
