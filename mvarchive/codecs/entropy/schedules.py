"""Coding schedules: in which order a latent's values are taken and what each step conditions on.

Each schedule is a plain function of a :class:`.quantizer.Quantizer`, the latent ``y`` (None
when decoding) and the codec's parameter networks (callables), and returns ``(y_hat,
recorded)``: the reconstruction and, in the latent's layout, what the quantizer recorded
(likelihoods when training, integer symbols when coding). The same function serves training,
encoding and decoding, so they run the same steps.

* :func:`raster` — serial raster scan over positions (Minnen et al. 2018, PixelCNN-style
  masked context); trains in parallel on rounded values (teacher forcing).
* :func:`checkerboard` — two passes (He et al. 2021): anchors ((row + col) odd) from what is
  known before the latent, then the rest conditioned on the decoded anchors.
* :func:`channel_slices` — channel slices in order, each conditioned on the slices before it
  (Minnen & Singh 2020: channel context and latent residual prediction inside ``code_slice``).
* :func:`masked_steps` — a fixed number of steps, each coding the positions a rule picks from
  the current parameters (CAMSIC's masked-image-modeling order), conditioned on all decoded ones.

Cross-view context stays the codec's (a hook its parameter networks call, as VEMIC's
``ViewContextHook``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .coding import ste_round
from .quantizer import Quantizer

#: (scales, means) of the values a step codes.
Params = tuple[torch.Tensor, torch.Tensor]


def anchor_mask(height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """Checkerboard anchors: positions with (row + col) odd."""
    rows = torch.arange(height, device=device)[:, None]
    cols = torch.arange(width, device=device)[None, :]
    return (rows + cols) % 2 == 1


def raster(
    quantizer: Quantizer,
    y: torch.Tensor | None,
    like: torch.Tensor,
    channels: int,
    kernel: int,
    step_params: Callable[[int, int, torch.Tensor], Params],
    parallel_params: Callable[[torch.Tensor], Params],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raster scan of an (n, ``channels``, h, w) latent, all channels of a position per step;
    n, h, w, dtype and device are those of ``like`` (the hyperprior features).

    ``step_params(i, j, window)`` gives the (scales, means) at (i, j) from the (n, C, k, k)
    window of decoded values around it (zero-padded, later positions still zero);
    ``parallel_params(round(y))`` gives full maps at once, for a quantizer that has every
    value at hand (training): the context then sees ``round(y)``, while the decoder sees
    ``round(y - mu) + mu`` (as CompressAI's mbt2018 trains it).
    """
    if quantizer.parallel:
        if y is None:
            raise ValueError("a parallel quantizer needs the latent values")
        return quantizer(y, *parallel_params(ste_round(y)))
    n, _, height, width = like.shape
    pad = kernel // 2
    y_hat = like.new_zeros(n, channels, height + 2 * pad, width + 2 * pad)
    recorded: torch.Tensor | None = None
    for i in range(height):
        for j in range(width):
            scales, means = step_params(i, j, y_hat[:, :, i : i + kernel, j : j + kernel])
            value, record = quantizer(
                None if y is None else y[:, :, i, j], scales.reshape(n, channels), means.reshape(n, channels)
            )
            if recorded is None:
                recorded = record.new_zeros(n, channels, height, width)
            recorded[:, :, i, j] = record
            y_hat[:, :, i + pad, j + pad] = value
    if recorded is None:
        raise ValueError("an empty latent has nothing to code")
    return y_hat[:, :, pad : pad + height, pad : pad + width].contiguous(), recorded


def checkerboard(
    quantizer: Quantizer,
    y: torch.Tensor | None,
    like: torch.Tensor,
    channels: int,
    anchor_params: Callable[[torch.Tensor], Params],
    nonanchor_params: Callable[[torch.Tensor, torch.Tensor], Params],
    refine_anchors: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two passes over an (n, ``channels``, h, w) latent (n, h, w and device those of
    ``like``): anchors, then the rest.

    ``anchor_params(part)`` gives the (scales, means) at the anchor positions ``part`` (an
    (h, w) mask) as (n, C, positions); ``nonanchor_params(part, anchors_hat)`` those of the
    rest given the decoded anchors as a full map (zeros elsewhere), after
    ``refine_anchors`` (e.g. latent residual prediction) when given. Within a pass symbols
    go channel-major, positions in raster order, row v of the batch to stream v.
    """
    n, _, height, width = like.shape
    c = channels
    anchors = anchor_mask(height, width, device=like.device)
    rest = ~anchors

    def scatter(values: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
        full = values.new_zeros(n, c, height, width)
        full[:, :, part] = values
        return full

    def take(part: torch.Tensor) -> torch.Tensor | None:
        return None if y is None else y[:, :, part]

    value, anchor_record = quantizer(take(anchors), *anchor_params(anchors))
    anchors_hat = scatter(value, anchors)
    if refine_anchors is not None:
        anchors_hat = refine_anchors(anchors_hat)
    value, rest_record = quantizer(take(rest), *nonanchor_params(rest, anchors_hat))
    recorded = scatter(anchor_record, anchors)
    recorded[:, :, rest] = rest_record
    return torch.where(anchors, anchors_hat, scatter(value, rest)), recorded


def channel_slices(
    y: torch.Tensor | None,
    slices: int,
    code_slice: Callable[[int, torch.Tensor | None, list[torch.Tensor]], tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Equal channel slices in order: ``code_slice(s, y_s, decoded)`` codes slice s given the
    reconstructions of slices 0..s-1 and returns (y_hat_s, recorded_s); concatenated."""
    parts = [None] * slices if y is None else list(y.chunk(slices, dim=1))
    decoded: list[torch.Tensor] = []
    recorded: list[torch.Tensor] = []
    for s in range(slices):
        y_hat_s, recorded_s = code_slice(s, parts[s], decoded)
        decoded.append(y_hat_s)
        recorded.append(recorded_s)
    return torch.cat(decoded, dim=1), torch.cat(recorded, dim=1)


def masked_steps(
    quantizer: Quantizer,
    y: torch.Tensor | None,
    content: torch.Tensor,
    counts: list[int],
    params: Callable[[torch.Tensor, torch.Tensor], Params],
    choose: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked multi-step coding of one (1, C, h, w) latent, ``counts[i]`` positions at step i.

    Each step computes ``params(tokens, decoded)`` (full (1, C, h, w) maps, read only at
    not-yet-decoded positions) from the composite
    tokens (``content`` where nothing is decoded yet, the reconstruction where it is) and the
    (1, h, w) decoded mask; ``choose(scales (C, n), decoded (n,), k)`` picks the k raster
    positions to code, which go to ``quantizer`` (stream 0) channel-major, positions ascending.
    The choice may depend only on what the decoder has, so it finds the same positions.
    Returns the reconstruction and what the quantizer recorded, each (1, C, h, w).
    """
    _, c, height, width = content.shape
    n = height * width
    tokens = content.clone()
    decoded = torch.zeros(n, dtype=torch.bool, device=content.device)
    recorded: torch.Tensor | None = None
    flat_y = None if y is None else y.reshape(c, n)
    for k in counts:
        if k == 0:
            continue
        scales, means = params(tokens, decoded.reshape(1, height, width))
        scales, means = scales.reshape(c, n), means.reshape(c, n)
        chosen = choose(scales.detach(), decoded, k)
        values = None if flat_y is None else flat_y[:, chosen]
        value, record = quantizer(values, scales[:, chosen], means[:, chosen], stream=0)
        if recorded is None:
            recorded = record.new_zeros(c, n)
        recorded[:, chosen] = record
        new_tokens = tokens.reshape(c, n).clone()
        new_tokens[:, chosen] = value
        tokens = new_tokens.reshape(1, c, height, width)
        decoded[chosen] = True
    if recorded is None:
        raise ValueError("an empty latent has nothing to code")
    return tokens, recorded.reshape(1, c, height, width)
