"""Measuring one rate point: every group coded to real bytes, decoded by a fresh decode call,
and compared with the input.

:func:`evaluate_point` measures per group and per view:

* ``bpp`` from the real bytes: total bits of all views / total pixels of all views. Learned codecs
  and joint baselines write one stream per group; their per-view bytes are unknown (``None``)
  except for ``x265-joint``, whose stream splits into pictures;
* PSNR on 8-bit RGB, capped at :data:`PSNR_CAP` dB so that a lossless view does not make the
  averages infinite; MS-SSIM (:mod:`mvarchive.metrics`, five scales, NaN for views with a side under 161 pixels);
* encode and decode seconds (wall clock, including tool start-up for command-line baselines).

A rate point's summary holds bpp over all pixels, mean PSNR/MS-SSIM over all views, the mean
per-view quality gap (max − min PSNR across the views of a group: unidirectional multi-view
codecs code later views with less context, so their views are unequal), summed times and times
per megapixel.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mvarchive.codecs import MultiViewCodec, check_view_count
from mvarchive.datasets import GroupRef, load_group
from mvarchive.metrics import psnr, to_tensor, to_uint8, views_ms_ssim  # views_ms_ssim: the one MS-SSIM

from .baselines import Baseline, BaselineError, get_baseline
from .bd import ms_ssim_db
from .planning import PointSpec

__all__ = [
    "PSNR_CAP", "CodedGroup", "GroupResult", "RatePoint", "ViewResult", "code_group", "evaluate_point",
    "measure_group", "summarize_groups",
]

PSNR_CAP = 100.0  # dB; identical images have infinite PSNR


@dataclass
class ViewResult:
    camera: str
    bytes: int | None  # None when the codec writes one stream for the group
    bpp: float | None
    psnr: float
    ms_ssim: float


@dataclass
class GroupResult:
    group: str
    views: int
    height: int
    width: int
    bytes: int
    bpp: float  # 8 * bytes / (views * height * width)
    psnr: float  # mean over views
    ms_ssim: float  # mean over views (NaN when the views are too small)
    psnr_gap: float  # max - min PSNR over the views
    encode_s: float
    decode_s: float
    per_view: list[ViewResult]

    @property
    def pixels(self) -> int:
        return self.views * self.height * self.width


@dataclass
class CodedGroup:
    """What coding one group produced: the real bytes, the decoded views and the times."""

    total_bytes: int
    view_bytes: list[int] | None
    decoded: np.ndarray  # (K, H, W, 3) uint8, from decoding the bytes
    encode_s: float
    decode_s: float


def _code_learned(codec: MultiViewCodec, views: np.ndarray, where: str) -> CodedGroup:
    x = to_tensor(views)
    started = time.perf_counter()
    compressed = codec.compress(x)
    encoded = time.perf_counter()
    decoded = codec.decompress(compressed.data, where=where)
    done = time.perf_counter()
    return CodedGroup(len(compressed.data), None, to_uint8(decoded.x_hat), encoded - started, done - encoded)


def _code_baseline(baseline: Baseline, views: np.ndarray, setting: float) -> CodedGroup:
    if baseline.joint:
        started = time.perf_counter()
        data = baseline.encode(views, setting)
        encoded = time.perf_counter()
        decoded = baseline.decode(data)
        done = time.perf_counter()
        return CodedGroup(len(data), baseline.per_view_bytes(data, views.shape[0]), decoded,
                          encoded - started, done - encoded)
    sizes, out = [], []
    encode_s = decode_s = 0.0
    for view in views:
        started = time.perf_counter()
        data = baseline.encode(view, setting)
        encoded = time.perf_counter()
        out.append(baseline.decode(data))
        decode_s += time.perf_counter() - encoded
        encode_s += encoded - started
        sizes.append(len(data))
    return CodedGroup(sum(sizes), sizes, np.stack(out), encode_s, decode_s)


def code_group(coder: MultiViewCodec | Baseline, views: np.ndarray, setting: float | None = None,
               where: str = "group") -> CodedGroup:
    """Encode and decode one ``(K, H, W, 3)`` uint8 group with a learned codec or a baseline."""
    if isinstance(coder, Baseline):
        if setting is None:
            raise ValueError(f"baseline {coder.name!r} needs a setting")
        coded = _code_baseline(coder, views, setting)
    else:
        coded = _code_learned(coder, views, where)
    if coded.decoded.shape != views.shape:
        raise BaselineError(f"{where}: decoded shape {coded.decoded.shape} differs from the input {views.shape}")
    return coded


def _capped_psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    return min(psnr(reference, decoded), PSNR_CAP)


def measure_group(name: str, cameras: Sequence[str], views: np.ndarray, coded: CodedGroup) -> GroupResult:
    """Per-view and per-group metrics of one coded group."""
    k, h, w, _ = views.shape
    per_view = []
    ms_values = views_ms_ssim(views, coded.decoded)
    for i, camera in enumerate(cameras):
        nbytes = coded.view_bytes[i] if coded.view_bytes is not None else None
        per_view.append(ViewResult(
            camera=camera, bytes=nbytes, bpp=None if nbytes is None else 8.0 * nbytes / (h * w),
            psnr=_capped_psnr(views[i], coded.decoded[i]), ms_ssim=ms_values[i],
        ))
    psnrs = [v.psnr for v in per_view]
    ms = [v.ms_ssim for v in per_view if math.isfinite(v.ms_ssim)]
    return GroupResult(
        group=name, views=k, height=h, width=w, bytes=coded.total_bytes, bpp=8.0 * coded.total_bytes / (k * h * w),
        psnr=float(np.mean(psnrs)), ms_ssim=float(np.mean(ms)) if ms else math.nan,
        psnr_gap=float(max(psnrs) - min(psnrs)), encode_s=coded.encode_s, decode_s=coded.decode_s, per_view=per_view,
    )


def summarize_groups(groups: Sequence[GroupResult]) -> dict[str, float]:
    """A rate point's averages: bpp over all pixels, means over all views, mean quality gap, times."""
    if not groups:
        return {"groups": 0.0}
    pixels = float(sum(g.pixels for g in groups))
    total_bytes = float(sum(g.bytes for g in groups))
    psnrs = [v.psnr for g in groups for v in g.per_view]
    ms = [v.ms_ssim for g in groups for v in g.per_view if math.isfinite(v.ms_ssim)]
    ms_mean = float(np.mean(ms)) if ms else math.nan
    encode_s = float(sum(g.encode_s for g in groups))
    decode_s = float(sum(g.decode_s for g in groups))
    return {
        "groups": float(len(groups)),
        "views": float(sum(g.views for g in groups)),
        "bytes": total_bytes,
        "bpp": 8.0 * total_bytes / pixels,
        "psnr": float(np.mean(psnrs)),
        "ms_ssim": ms_mean,
        "ms_ssim_db": ms_ssim_db(ms_mean),
        "psnr_gap": float(np.mean([g.psnr_gap for g in groups])),
        "encode_s": encode_s,
        "decode_s": decode_s,
        "encode_s_per_mpix": encode_s / (pixels / 1e6),
        "decode_s_per_mpix": decode_s / (pixels / 1e6),
    }


@dataclass
class RatePoint:
    codec: str
    label: str
    setting: float | None
    groups: list[GroupResult]
    summary: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # checkpoint, weights digest, preset, ...

    def __post_init__(self) -> None:
        if not self.summary:
            self.summary = summarize_groups(self.groups)


def _load_coder(spec: PointSpec) -> tuple[MultiViewCodec | Baseline, dict[str, Any]]:
    if spec.kind == "baseline":
        baseline = get_baseline(spec.codec)
        baseline.require()
        return baseline, {"implementation": baseline.available().reason}
    from mvarchive.codecs import weights_digest
    from mvarchive.runtime.model_cache import codec_on_worker

    ref = spec.ref
    if ref is None:  # PointSpec refuses a learned point without one; this tells the type checker
        raise ValueError(f"learned rate point {spec.label!r} has no codec reference")
    codec = codec_on_worker(ref)
    return codec, {"preset": ref.preset, "checkpoint": ref.checkpoint, "seed": ref.seed,
                   "weights_digest": weights_digest(codec)}


def evaluate_point(spec: PointSpec, groups: Sequence[GroupRef], storage_options: dict | None = None,
                   cameras: Sequence[str] | None = None) -> RatePoint:
    """Code and measure every group at one rate point (runs where the task runner puts it)."""
    import torch

    coder, info = _load_coder(spec)
    results = []
    with torch.no_grad():
        for group in groups:
            views = load_group(group, storage_options)
            if isinstance(coder, MultiViewCodec):
                check_view_count(coder, views.shape[0])
            where = f"{spec.codec} {spec.label}, group {group.name}"
            coded = code_group(coder, views, spec.setting, where=where)
            results.append(measure_group(group.name, cameras or group.cameras, views, coded))
    return RatePoint(spec.codec, spec.label, spec.setting, results, info=info)
