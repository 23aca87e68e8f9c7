"""Terminal tables of an evaluation (rich): every rate point, and one row per codec with its BD."""

from __future__ import annotations

import math

from rich.table import Table

from .evaluate import EvaluationResult

__all__ = ["codec_table", "rd_table"]


def _f(value: float | None, digits: int, signed: bool = False, unit: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return (f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}") + unit


def rd_table(result: EvaluationResult, title: str | None = None) -> Table:
    """One row per rate point: bpp, PSNR, MS-SSIM (and in dB), per-view gap, times per megapixel."""
    table = Table(title=title or f"rate-distortion points on {result.dataset}")
    for column in ("codec", "setting"):
        table.add_column(column, no_wrap=True)
    for column in ("bpp", "PSNR dB", "MS-SSIM", "MS-SSIM dB", "view gap dB", "enc s/MP", "dec s/MP"):
        table.add_column(column, justify="right")
    for curve in result.curves:
        for i, p in enumerate(curve.points):
            s = p.summary
            table.add_row(
                curve.name if i == 0 else "", p.label, _f(s.get("bpp"), 4), _f(s.get("psnr"), 2),
                _f(s.get("ms_ssim"), 4), _f(s.get("ms_ssim_db"), 2), _f(s.get("psnr_gap"), 2),
                _f(s.get("encode_s_per_mpix"), 3), _f(s.get("decode_s_per_mpix"), 3),
                end_section=i == len(curve.points) - 1,
            )
    return table


def codec_table(result: EvaluationResult, title: str | None = None) -> Table:
    """One row per codec: BD against the anchor (interpolation named), mean view gap, mean times."""
    table = Table(title=title or f"BD against {result.anchor} ({result.bd_method} interpolation, bjontegaard)")
    table.add_column("codec", no_wrap=True)
    for column in ("points", "BD-rate PSNR", "BD-PSNR", "BD-rate MS-SSIM", "BD-MS-SSIM", "view gap dB",
                   "enc s/MP", "dec s/MP"):
        table.add_column(column, justify="right")
    table.add_column("note")
    for curve in result.curves:
        series = curve.series()

        def mean(key: str) -> float:
            values = [v for v in series[key] if math.isfinite(v)]
            return sum(values) / len(values) if values else math.nan

        bd = result.bd_for(curve.name)
        if curve.name == result.anchor:
            cells, note = ["anchor"] * 4, ""
        elif bd is None:
            cells, note = ["-"] * 4, "no anchor curve"
        else:
            cells = [_f(bd.bd_rate_psnr, 2, True, " %"), _f(bd.bd_psnr, 2, True, " dB"),
                     _f(bd.bd_rate_ms_ssim, 2, True, " %"), _f(bd.bd_ms_ssim_db, 2, True, " dB")]
            note = bd.note
        table.add_row(curve.name, str(len(curve.points)), *cells, _f(mean("psnr_gap"), 2),
                      _f(mean("encode_s_per_mpix"), 3), _f(mean("decode_s_per_mpix"), 3), note)
    for name, reason in result.unavailable.items():
        table.add_row(name, "0", "-", "-", "-", "-", "-", "-", "-", f"unavailable: {reason}")
    return table
