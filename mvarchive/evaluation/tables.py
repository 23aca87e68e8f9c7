"""Terminal tables of an evaluation: every rate point, and one row per codec with its BD.

Both fit an 80-column terminal (see :mod:`mvarchive.terminal`); ``--json`` prints everything.
"""

from __future__ import annotations

import math

from rich.console import Group
from rich.table import Table
from rich.text import Text

from mvarchive.terminal import compact_table, footnotes, number, text

from .results import EvaluationResult

__all__ = ["codec_table", "rd_table"]


def _f(value: float | None, digits: int, signed: bool = False, unit: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return (f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}") + unit


def rd_table(result: EvaluationResult, title: str | None = None) -> Table:
    """One row per rate point: bpp, PSNR, MS-SSIM (and in dB), per-view gap, times per megapixel."""
    table = compact_table([
        text("codec"), text("setting"), number("bpp"), number("PSNR\ndB"), number("MS-SSIM"), number("MS-SSIM\ndB"),
        number("view\ngap dB"), number("enc\ns/MP"), number("dec\ns/MP"),
    ], title=title or f"rate-distortion points on {result.dataset}")
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


def codec_table(result: EvaluationResult, title: str | None = None) -> Group:
    """One row per codec: BD against the anchor and the mean view gap (times per point are in
    :func:`rd_table`); notes (the
    interpolation's caveats, why a baseline is unavailable) as footnotes under the table."""
    table = compact_table([
        text("codec"), number("points"), number("BD-rate\nPSNR"), number("BD-PSNR"), number("BD-rate\nMS-SSIM"),
        number("BD-MS-\nSSIM"), number("view\ngap dB"), text(""),
    ], title=title or f"BD against {result.anchor} ({result.bd_method} interpolation, bjontegaard)")
    rows, notes = [], []
    for curve in result.curves:
        gaps = [v for v in curve.series()["psnr_gap"] if math.isfinite(v)]
        mean_gap = sum(gaps) / len(gaps) if gaps else math.nan
        bd = result.bd_for(curve.name)
        if curve.name == result.anchor:
            cells, note = ["anchor"] * 4, ""
        elif bd is None:
            cells, note = ["-"] * 4, "no anchor curve"
        else:
            cells = [_f(bd.bd_rate_psnr, 1, True, " %"), _f(bd.bd_psnr, 2, True),
                     _f(bd.bd_rate_ms_ssim, 1, True, " %"), _f(bd.bd_ms_ssim_db, 2, True)]
            note = bd.note
        rows.append([curve.name, str(len(curve.points)), *cells, _f(mean_gap, 2)])
        notes.append(f"{curve.name}: {note}" if note else "")
    for name, reason in result.unavailable.items():
        rows.append([name, "0", "-", "-", "-", "-", "-"])
        notes.append(f"{name} unavailable: {reason}")
    marks, lines = footnotes(notes)
    for row, mark in zip(rows, marks):
        table.add_row(*row, mark)
    lines.append("BD-PSNR and BD-MS-SSIM in dB; negative BD-rate = fewer bits than the anchor")
    return Group(table, *(Text(line) for line in lines))
