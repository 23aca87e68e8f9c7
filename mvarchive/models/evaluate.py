"""A registered version's RD figures on a dataset, measured with real bytes.

The coding and the metrics are the evaluation package's (:func:`mvarchive.evaluation.evaluate.
evaluate_point`: ``compress()``, bytes counted, PSNR and MS-SSIM per view), so a version's figures,
``mvarchive eval`` and the classical baselines price the same thing. Added here only what the gate
needs: ``mse``, the distortion of the training loss (MSE on [0, 1], mean over pixels of every view),
recovered exactly from each view's PSNR (``10^(-PSNR/10)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from mvarchive.datasets import DatasetIndex
    from mvarchive.evaluation.evaluate import EvaluationResult, RatePoint

__all__ = ["EvalSet", "evaluate_checkpoint", "evaluate_version", "figures_from_point", "rd_against_baselines",
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

    def index(self) -> "DatasetIndex":
        from mvarchive.datasets import discover_dataset

        index = discover_dataset(self.dataset, self.layout, self.storage_options)
        if not index.groups:
            raise ValueError(f"evaluation dataset {self.dataset} has no groups")
        return index.select(groups=[g.name for g in index.groups[: self.max_groups]])


def figures_from_point(point: "RatePoint") -> dict[str, float]:
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


def _learned_spec(checkpoint: str | Path, label: str):
    import torch

    from mvarchive.codecs import CodecRef
    from mvarchive.evaluation.evaluate import PointSpec

    payload = torch.load(Path(checkpoint), map_location="cpu", weights_only=True)
    return PointSpec(payload["codec"], "learned", label, ref=CodecRef(payload["codec"], payload["preset"], str(checkpoint)))


def evaluate_checkpoint(checkpoint: str | Path, data: EvalSet, label: str = "checkpoint") -> dict[str, float]:
    """Figures (:func:`figures_from_point`) of a local checkpoint on ``data``, coded in this process."""
    from mvarchive.evaluation.evaluate import evaluate_point

    index = data.index()
    point = evaluate_point(_learned_spec(checkpoint, label), index.groups, data.storage_options, index.cameras)
    return figures_from_point(point)


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


def rd_against_baselines(checkpoint: str | Path, label: str, data: EvalSet,
                         baselines: Sequence[str] = PLOT_BASELINES) -> "EvaluationResult":
    """The checkpoint's rate point and the available baselines' curves on ``data`` (in this
    process); unavailable baselines are listed in ``result.unavailable``."""
    from mvarchive.evaluation.evaluate import baseline_points, run_evaluation

    learned = _learned_spec(checkpoint, label)
    classic, unavailable = baseline_points(baselines)
    anchor = next((b for b in baselines if b not in unavailable), learned.codec)
    return run_evaluation(data.index(), [learned] + classic, unavailable, anchor=anchor,
                          storage_options=data.storage_options)


def write_rd_plot(result: "EvaluationResult", path: str | Path) -> Path:
    """bpp against PSNR, the learned point against the baselines; the title names any baseline
    that could not run on this machine."""
    from mvarchive.evaluation.plots import PLOTS, rd_figure

    metric, label = PLOTS["rd_psnr"]
    fig = rd_figure(result, metric, label)
    ax = fig.axes[0]
    title = ax.get_title()
    if result.unavailable:
        title += "\n" + "; ".join(f"{name} unavailable: {reason}" for name, reason in result.unavailable.items())
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
