"""A registered version's RD figures on a dataset, measured with real bytes.

The coding and the metrics are the evaluation package's (:func:`mvarchive.evaluation.measuring.
evaluate_point`: ``compress()``, bytes counted, PSNR and MS-SSIM per view), so a version's figures,
``mvarchive eval`` and the classical baselines price the same thing. Added here only what the gate
needs: ``mse``, the distortion of the training loss (MSE on [0, 1], mean over pixels of every view),
recovered exactly from each view's PSNR (``10^(-PSNR/10)``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mvarchive.datasets import DatasetIndex
    from mvarchive.evaluation.bd import BDResult
    from mvarchive.evaluation.measuring import RatePoint
    from mvarchive.evaluation.planning import PointSpec
    from mvarchive.evaluation.results import EvaluationResult

__all__ = ["EvalSet", "baseline_rate_points", "bd_against_baselines", "evaluate_checkpoint", "evaluate_version",
           "figures_from_point", "learned_rate_point", "rd_against_baselines", "rd_curve", "rd_curve_against_baselines",
           "write_rd_plot"]

#: Baselines drawn against a freshly trained version (x265 only where ffmpeg has libx265).
PLOT_BASELINES = ("jpeg", "x265-intra")


@dataclass(frozen=True)
class EvalSet:
    """The evaluation data: the first ``max_groups`` groups of ``dataset`` (the same ones every time)."""

    dataset: str
    layout: str = "auto"
    max_groups: int = 8
    storage_options: dict = field(default_factory=dict)

    def index(self) -> DatasetIndex:
        from mvarchive.datasets import discover_dataset

        index = discover_dataset(self.dataset, self.layout, self.storage_options)
        if not index.groups:
            raise ValueError(f"evaluation dataset {self.dataset} has no groups")
        return index.select(groups=[g.name for g in index.groups[: self.max_groups]])


def figures_from_point(point: RatePoint) -> dict[str, float]:
    """bpp (real bytes), PSNR, MS-SSIM, MSE on [0, 1], bytes, groups and views of one rate point."""
    pixels = 0.0
    weighted = 0.0
    for group in point.groups:
        for view in group.per_view:
            pixels += group.height * group.width
            weighted += group.height * group.width * 10.0 ** (-view.psnr / 10.0)
    summary = point.summary
    return {
        "bpp": float(summary["bpp"]), "psnr": float(summary["psnr"]), "ms_ssim": float(summary["ms_ssim"]),
        "mse": weighted / pixels if pixels else math.nan, "bytes": float(summary["bytes"]),
        "groups": float(summary["groups"]), "views": float(summary["views"]),
    }


def _learned_spec(checkpoint: str | Path, label: str) -> PointSpec:
    from mvarchive.evaluation.planning import PointSpec
    from mvarchive.runtime.checkpoints import CodecRef, fetch_checkpoint

    held = fetch_checkpoint(checkpoint)
    return PointSpec(held.codec, "learned", label, ref=CodecRef(held.codec, held.preset, str(checkpoint)))


def evaluate_checkpoint(checkpoint: str | Path, data: EvalSet, label: str = "checkpoint") -> dict[str, float]:
    """Figures (:func:`figures_from_point`) of a local checkpoint on ``data``, coded in this process."""
    return figures_from_point(learned_rate_point(checkpoint, label, data))


def evaluate_version(uri: str, data: EvalSet | str, tracking_uri: str | None = None) -> dict[str, Any]:
    """Figures of the registered version ``uri`` on ``data`` (real bytes), plus its name,
    pinned version, λ and weights digest."""
    from .registry import checkpoint_path, resolve_model_uri, version_tags

    data = EvalSet(data) if isinstance(data, str) else data
    ref = resolve_model_uri(uri, tracking_uri)
    tags = version_tags(ref.uri, tracking_uri)
    figures: dict[str, Any] = dict(evaluate_checkpoint(checkpoint_path(ref.uri, tracking_uri), data,
                                                       f"{ref.name} v{ref.version}"))
    figures.update({"name": ref.name, "version": ref.version, "uri": ref.uri, "dataset": data.dataset,
                    "weights_digest": tags.get("weights_digest", ""),
                    "lmbda": float(tags["lmbda"]) if tags.get("lmbda") else math.nan})
    return figures


def learned_rate_point(checkpoint: str | Path, label: str, data: EvalSet) -> RatePoint:
    """The checkpoint's rate point on ``data``, coded in this process (e.g. on the worker that trained it)."""
    from mvarchive.evaluation.measuring import evaluate_point

    index = data.index()
    return evaluate_point(_learned_spec(checkpoint, label), index.groups, data.storage_options, index.cameras)


def baseline_rate_points(data: EvalSet,
                         baselines: Sequence[str] = PLOT_BASELINES) -> tuple[list[RatePoint], dict[str, str]]:
    """Every setting of the available ``baselines`` on ``data`` (in this process), and
    ``{name: reason}`` for those this machine cannot run."""
    from mvarchive.evaluation.measuring import evaluate_point
    from mvarchive.evaluation.planning import baseline_points

    index = data.index()
    specs, unavailable = baseline_points(baselines)
    return [evaluate_point(spec, index.groups, data.storage_options, index.cameras) for spec in specs], unavailable


def _spec_of(point: RatePoint) -> PointSpec:
    """A PointSpec naming a measured point's curve (assembling needs the kind and the name only)."""
    from mvarchive.evaluation.baselines import BASELINE_NAMES
    from mvarchive.evaluation.planning import PointSpec
    from mvarchive.runtime.checkpoints import CodecRef

    if point.codec in BASELINE_NAMES:
        return PointSpec(point.codec, "baseline", point.label, setting=point.setting)
    return PointSpec(point.codec, "learned", point.label,
                     ref=CodecRef(point.codec, str(point.info.get("preset") or "paper"), point.info.get("checkpoint")))


def rd_curve(data: EvalSet, learned: Sequence[RatePoint], baselines: Sequence[RatePoint] = (),
             unavailable: Mapping[str, str] | None = None) -> EvaluationResult:
    """Measured points (learned ones, e.g. one per λ of a sweep, measured on workers; and the
    baselines') as one evaluation on ``data``: the learned codec's points form its RD curve.
    BD is computed against the first baseline (see :func:`bd_against_baselines` for all)."""
    from mvarchive.evaluation.results import assemble_result
    from mvarchive.tracking import environment_params

    points = list(learned) + list(baselines)
    specs = [_spec_of(p) for p in points]
    anchor = baselines[0].codec if baselines else (learned[0].codec if learned else "")
    return assemble_result(data.index(), specs, points, dict(unavailable or {}), anchor,
                           environment=environment_params())


def rd_curve_against_baselines(checkpoints: Sequence[tuple[str | Path, str]], data: EvalSet,
                               baselines: Sequence[str] = PLOT_BASELINES) -> EvaluationResult:
    """``(checkpoint, label)`` pairs (several λ of one codec make its curve) and the available
    baselines' curves on ``data``, all coded in this process; unavailable baselines are listed
    in ``result.unavailable``."""
    learned = [learned_rate_point(path, label, data) for path, label in checkpoints]
    classic, unavailable = baseline_rate_points(data, baselines)
    return rd_curve(data, learned, classic, unavailable)


def rd_against_baselines(checkpoint: str | Path, label: str, data: EvalSet,
                         baselines: Sequence[str] = PLOT_BASELINES) -> EvaluationResult:
    """The checkpoint's rate point and the available baselines' curves on ``data`` (in this
    process); unavailable baselines are listed in ``result.unavailable``."""
    return rd_curve_against_baselines([(checkpoint, label)], data, baselines)


def bd_against_baselines(result: EvaluationResult, codec: str) -> dict[str, BDResult]:
    """BD of ``codec``'s curve against every baseline curve of ``result`` (NaN deltas with a
    note where they cannot be computed, e.g. a single learned point has no curve to integrate)."""
    from mvarchive.evaluation.bd import compare_curves

    test = result.curve(codec).series()
    return {curve.name: compare_curves(curve.name, curve.series(), codec, test, result.bd_method)
            for curve in result.curves if curve.kind == "baseline"}


def write_rd_plot(result: EvaluationResult, path: str | Path, plot: str = "rd_psnr", note: str = "") -> Path:
    """bpp against PSNR (``plot="rd_ms_ssim"``: MS-SSIM in dB), the learned points against the
    baselines; the title adds ``note`` (e.g. BD-rates) and names any baseline that could not
    run on this machine."""
    from mvarchive.evaluation.plots import PLOTS, rd_figure

    metric, label = PLOTS[plot]
    fig = rd_figure(result, metric, label)
    ax = fig.axes[0]
    title = ax.get_title() + (f"\n{note}" if note else "")
    if result.unavailable:
        title += "\n" + "; ".join(f"{name} unavailable: {reason}" for name, reason in result.unavailable.items())
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
