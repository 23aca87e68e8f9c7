"""MLIC++ (Jiang & Wang, ICML 2023 NCW workshop): multi-reference entropy model, per view.

A single-view codec built from composable parts that VEMIC (:mod:`..vemic`) reuses unchanged,
one module per job (:mod:`.config`, :mod:`.transforms`, :mod:`.contexts`,
:mod:`.entropy_model`, :mod:`.codec`):

* :class:`MLICPPCore` — transforms (``g_a``, ``g_s``), hyperprior (``h_a``, ``h_s``, factorized
  prior for z, Gaussian conditional for y) and the entropy model ``mem``.
* :class:`MultiReferenceEntropyModel` — 10 channel slices, each coded as checkerboard anchors
  then non-anchors, one :class:`SliceContextModel` per slice. ``run(hyper, quantizer, y,
  view_context)`` is the *one* slice loop used for training (noisy rate + STE rounding) and for
  coding (rANS encode or decode), composed of the shared schedules (``channel_slices`` over
  ``checkerboard``, :mod:`..entropy.schedules`): the quantizer decides what happens to each
  half-slice (:mod:`..entropy.quantizer`), so encoder, decoder and training cannot drift
  apart. ``view_context`` is an optional hook that returns extra features for the first
  layer of the entropy-parameter networks (VEMIC plugs its cross-view attention in here).
* :class:`SingleViewMLICPP` — the ``single-view-mlicpp`` codec: the core applied to each view.

Data flow per view (official code ``JiangWeibeta/MLIC``, ``MLIC++/models/mlicpp.py``)::

    x -> g_a -> y (M, /16) -> h_a -> z (N, /64) -> EB -> z^ -> h_s -> hyper (2M = scales | means)
    for slice s = 0..S-1 (c = M/S channels):
        anchors ((row+col) odd):   EP_a(hyper [, inter(y^<s), channel(y^<s)])        -> (sigma, mu)
        y^_a = round(y - mu) + mu;  y^_a += LRP_a(hyper means, y^<s, y^_a)   (anchors only)
        non-anchors:               EP_n(local(y^_a) [, intra(y^{s-1}, y^_a), inter, channel], hyper)
        y^_s = y^_a + round(y - mu) + mu;  y^_s += LRP_n(hyper means, y^<s, y^_s)  (non-anchors)
    x^ = g_s(y^)

Parts (widths at N=192, M=320, S=10, c=32; hidden widths scale with M so tiny presets stay tiny):

* local spatial context: 5x5-window softmax attention around every position over the slice's
  decoded anchors (LayerNorm, q/k/v Linear c->3c, 2 heads, relative position bias, checkerboard
  mask -100), attended window fused by a 5x5 conv c->2c, Linear 2c->2c, + MLP residual;
* channel context (s >= 1): 3x3 convs sc -> 0.6M -> 0.4M -> 4c, GELU;
* global inter-slice context (s >= 1): efficient (linear) attention over y^<s, one head per
  previous slice (head width c), q/k/v = 1x1 then depthwise 3x3, 5x5 reprojection -> 3c,
  out = 1x1(3c -> 2c) + MLP;
* global intra-slice context (s >= 1): efficient attention with queries = previous slice at
  non-anchors, keys = previous slice at anchors, values = current slice's anchors, 2 heads;
* entropy parameters: 1x1 convs in -> M -> 0.8M -> 0.4M -> 2c, GELU; output (scales, means);
* latent residual prediction: 3x3 convs (M + (s+1)c) -> 0.7M -> 0.4M -> c, GELU, 0.5 tanh.

Coding: per view one z stream then one y stream (streams ``[z_0, y_0, z_1, y_1, ...]``); in the
y stream, per slice, the anchors (channel-major, positions in raster order) then the
non-anchors; symbols are ``round(y - mu)``. Every view is coded with batch size 1 and the
whole entropy-parameter path (h_s, contexts, EP, LRP) runs under ``single_threaded()``, so the
decoder derives the same CDF indexes on any machine.

Deviations from the public code: heads are contiguous channel groups (the official local
context interleaves them); the global inter-slice context uses ``s`` heads of width ``c``
(official: ``32s // 32``, identical at c = 32); hidden widths are written as fractions of M
(identical at M = 320). Parameter count at the paper preset: 83,501,408 as in the official
model (see :meth:`SingleViewMLICPP.parameter_counts`).
"""

from .codec import MLICPP_PRESETS, MLICPPCore, SingleViewMLICPP, ViewCode, collect, split_streams
from .config import MLICPPConfig
from .contexts import conv_projection
from .entropy_model import MultiReferenceEntropyModel, SliceContextModel, ViewContextHook

__all__ = [
    "MLICPP_PRESETS",
    "MLICPPConfig",
    "MLICPPCore",
    "MultiReferenceEntropyModel",
    "SingleViewMLICPP",
    "SliceContextModel",
    "ViewCode",
    "ViewContextHook",
    "collect",
    "conv_projection",
    "split_streams",
]
