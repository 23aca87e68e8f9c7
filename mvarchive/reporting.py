"""Summaries of archives and runs: numbers, Markdown tables, terminal tables."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from rich.table import Table

from mvarchive.storage import METRIC_COLUMNS, ArchiveReader, IndexRow
from mvarchive.terminal import compact_table, number, text

SUMMARY_COLUMNS = ("groups", "views", "bpp", "psnr", "ms_ssim", "encode_s", "decode_s")


def archive_summary(reader: ArchiveReader) -> dict[str, float]:
    """Dataset-level numbers over the archive's groups: bpp over all pixels (real bytes),
    mean per-group PSNR, mean MS-SSIM over the groups where it was measured (``ms_ssim_groups``
    of them: a sampled fraction by default), total encode seconds."""
    return table_summary(reader.metrics_table(), reader.meta.metrics, len(reader.cameras))


def rows_summary(rows: Sequence[IndexRow], cameras: int, metrics: Sequence[str] = METRIC_COLUMNS) -> dict[str, float]:
    """The same numbers over some index rows (one run's groups)."""
    table = np.array([[r.metrics.get(c, np.nan) for c in metrics] for r in rows], dtype=np.float64)
    return table_summary(table.reshape(len(rows), len(metrics)), metrics, cameras)


def table_summary(table: np.ndarray, metrics: Sequence[str], cameras: int) -> dict[str, float]:
    if not len(table):
        return {"groups": 0.0, "views": 0.0}
    col = {name: table[:, i] for i, name in enumerate(metrics)}
    pixels = float(np.sum(8.0 * col["bytes"] / col["bpp"]))
    ms = col["ms_ssim"][np.isfinite(col["ms_ssim"])]
    return {
        "groups": float(len(table)),
        "views": float(len(table) * cameras),
        "bytes": float(col["bytes"].sum()),
        "bpp": float(8.0 * col["bytes"].sum() / pixels),
        "psnr": float(np.mean(col["psnr"])),
        "ms_ssim": float(ms.mean()) if ms.size else math.nan,
        "ms_ssim_groups": float(ms.size),  # groups the MS-SSIM mean is over (NaN elsewhere: not measured)
        "encode_s": float(col["encode_s"].sum()),
    }


def _fmt(name: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if name in ("groups", "views"):
        return f"{int(value)}"
    if name == "ms_ssim":
        return f"{value:.4f}"
    if name == "bpp":
        return f"{value:.4f}"
    return f"{value:.2f}"


def summary_markdown(rows: Sequence[tuple[str, dict[str, float]]], columns: Iterable[str] = SUMMARY_COLUMNS) -> str:
    columns = list(columns)
    lines = ["| codec | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, values in rows:
        lines.append(f"| {name} | " + " | ".join(_fmt(c, values.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


HEADERS = {"ms_ssim": "MS-SSIM", "psnr": "PSNR dB", "encode_s": "encode s", "decode_s": "decode s"}


def summary_table(rows: Sequence[tuple[str, dict[str, float]]], title: str,
                  columns: Iterable[str] = SUMMARY_COLUMNS) -> Table:
    """The terminal form of :func:`summary_markdown` (fits 80 columns: names fold, numbers stay whole)."""
    columns = list(columns)
    headers = [number(HEADERS.get(c, c).replace(" ", "\n")) for c in columns]
    table = compact_table([text("codec"), *headers], title=title)
    for name, values in rows:
        table.add_row(name, *(_fmt(c, values.get(c)) for c in columns))
    return table
