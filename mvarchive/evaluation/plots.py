"""Rate-distortion curves as PNG files (matplotlib's Agg canvas: no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .results import EvaluationResult

__all__ = ["PLOTS", "rd_figure", "write_rd_plots"]

# file stem -> (summary key, axis label)
PLOTS: dict[str, tuple[str, str]] = {
    "rd_psnr": ("psnr", "PSNR (dB, RGB)"),
    "rd_ms_ssim": ("ms_ssim_db", "MS-SSIM (dB, −10·log10(1 − MS-SSIM))"),
}


def rd_figure(result: EvaluationResult, metric: str, label: str) -> Figure:
    """bpp (x) against ``metric`` (y), one line per codec; learned codecs solid, baselines dashed.

    The figure is drawn on an Agg canvas of its own (not through pyplot): no display is needed,
    the process-wide backend is left alone, and figures are freed with their last reference.
    """
    fig = Figure(figsize=(7.0, 5.0), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    markers = "osD^v<>ph*"
    for i, curve in enumerate(result.curves):
        pts = [(p.summary.get("bpp", math.nan), p.summary.get(metric, math.nan)) for p in curve.points]
        pts = [(x, y) for x, y in pts if math.isfinite(x) and math.isfinite(y)]
        if not pts:
            continue
        xs, ys = zip(*sorted(pts))
        style = "-" if curve.kind == "learned" else "--"
        anchor = " (anchor)" if curve.name == result.anchor else ""
        ax.plot(xs, ys, style, marker=markers[i % len(markers)], markersize=4, linewidth=1.6 if anchor else 1.2,
                label=f"{curve.name}{anchor}")
    ax.set_xlabel("bits per pixel (real bytes, all views)")
    ax.set_ylabel(label)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{Path(result.dataset.rstrip('/')).name or result.dataset}: {len(result.groups)} groups × "
                 f"{len(result.cameras)} views", fontsize=10)
    if ax.lines:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def write_rd_plots(result: EvaluationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``rd_psnr.png`` and ``rd_ms_ssim.png`` into ``out_dir``; returns {stem: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for stem, (metric, label) in PLOTS.items():
        fig = rd_figure(result, metric, label)
        path = out / f"{stem}.png"
        fig.savefig(path)
        paths[stem] = path
    return paths
