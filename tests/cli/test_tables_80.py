"""Every terminal table stays readable in an 80-column terminal: no number cut to ``0.…``, no
line longer than 80 characters, every value printed in full (folded names allowed)."""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from mvarchive.evaluation import CodecCurve, EvaluationResult, RatePoint
from mvarchive.evaluation.bd import BDResult
from mvarchive.evaluation.tables import codec_table, rd_table
from mvarchive.reporting import summary_table

SUMMARY = {"groups": 1234.0, "views": 2468.0, "bytes": 123456789.0, "bpp": 0.24263, "psnr": 26.4213,
           "ms_ssim": 0.91234, "encode_s": 12345.67, "decode_s": 9876.54}
POINT = {"bpp": 0.242631, "psnr": 26.4213, "ms_ssim": 0.912345, "ms_ssim_db": 10.5678, "psnr_gap": 1.2345,
         "encode_s_per_mpix": 12.3456, "decode_s_per_mpix": 23.4567}


def render(renderable, width: int = 80) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"), color_system=None)
    console.print(renderable)
    return console.export_text()


def check(textout: str, *values: str) -> None:
    lines = textout.splitlines()
    assert max(len(line) for line in lines) <= 80, textout
    assert "…" not in textout, textout
    body = lines[next((i for i, line in enumerate(lines) if "─" in line), -1) + 1:]  # below the header
    tokens = " ".join(body).split()
    for value in values:  # a folded cell reads in order, its pieces interleaved with other columns
        rest = re.sub(r"\s+", "", value)
        if rest in tokens:
            continue
        for token in tokens:
            if rest.startswith(token) and (len(token) > 1 or not token.isalnum() or token == rest):
                rest = rest[len(token):]
        assert not rest, (value, textout)


def evaluation() -> EvaluationResult:
    def curve(name: str, kind: str, labels: list[str]) -> CodecCurve:
        return CodecCurve(name, kind, "", "q", [RatePoint(name, label, None, [], dict(POINT)) for label in labels])

    bd = BDResult("single-view-mbt2018-mean", "x265-intra", "akima", -12.345, 0.6789, -23.456, 1.2345, 0.8, 0.9, 2, 7,
                  note="curves share only 40% of the PSNR range: extrapolated")
    return EvaluationResult(
        dataset="s3://fleet-archive/recordings/2026-11-30/stereo", layout="camera-folders", cameras=["left", "right"],
        groups=["g"], anchor="x265-intra", bd_method="akima",
        curves=[curve("single-view-mbt2018-mean", "learned", ["models:/mvarchive-single-view-mbt2018-mean/12"]),
                curve("x265-intra", "baseline", ["QP 46", "QP 42"])],
        unavailable={"jxl": "cjxl not found (Debian package libjxl-tools; run scripts/install-system-deps.sh)"},
        bd=[bd],
    )


def test_rd_table_fits_80_columns() -> None:
    check(render(rd_table(evaluation())), "0.2426", "26.42", "0.9123", "10.57", "12.346", "23.457",
          "models:/mvarchive-single-view-mbt2018-mean/12", "single-view-mbt2018-mean")


def test_codec_table_fits_80_columns() -> None:
    out = render(codec_table(evaluation()))
    check(out, "-12.3 %", "+0.68", "-23.5 %", "+1.23", "extrapolated", "cjxl not found")


@pytest.mark.parametrize("name", ["ldmic-fast", "single-view-mbt2018-mean / stereo"])
def test_summary_table_fits_80_columns(name: str) -> None:
    check(render(summary_table([(name, SUMMARY)], title="archive s3://bucket/a/very/long/archive/location/name")),
          "1234", "2468", "0.2426", "26.42", "0.9123", "12345.67", "9876.54", name)


def test_models_list_fits_80_columns() -> None:
    from mvarchive.cli.models import versions_table

    rows = [{"name": "mvarchive-single-view-mbt2018-mean", "version": "12", "aliases": ["champion", "previous"],
             "created": "2026-12-02 08:41:07",
             "tags": {"lmbda": "4096", "bpp": "0.24263", "psnr": "26.4213", "eval_dataset": "/data/fleet/stereo-eval",
                      "weights_digest": "0123456789abcdef0123"}}]
    check(render(versions_table(rows, "registered codec versions (sqlite:////home/user/.mvarchive/mlflow.db)")),
          "single-view-mbt2018-mean", "@champion,", "4096", "0.2426", "26.42", "stereo-eval",
          "0123456789ab", "2026-12-02 08:41")


def test_schedules_list_fits_80_columns() -> None:
    from mvarchive.cli.schedule import schedules_table
    from mvarchive.scheduling.deployments import ScheduleRow

    row = ScheduleRow("nightly-fleet", "cron 0 2 * * * (Europe/Berlin)", True, "s3://fleet/recordings/stereo",
                      "s3://fleet-archive/stereo", "models:/mvarchive-ldmic-fast@champion", "2026-12-03T01:00:00+00:00",
                      "2026-12-02T01:00:00+00:00", "COMPLETED", "d")
    check(render(schedules_table([row])), "nightly-fleet", "s3://fleet/recordings/stereo",
          "models:/mvarchive-ldmic-fast@champion", "COMPLETED")


def test_sweep_table_fits_80_columns() -> None:
    from types import SimpleNamespace

    from mvarchive.cli.train import sweep_table

    points = [SimpleNamespace(lmbda=4096.0, figures={"bpp": 0.28561, "psnr": 23.514, "ms_ssim": 0.83512},
                              model_uri="models:/mvarchive-single-view-mbt2018-mean/13", reused=True,
                              worker="tcp://127.0.0.1:34243")]
    check(render(sweep_table(points)), "4096", "0.2856", "23.51", "0.8351",
          "models:/mvarchive-single-view-mbt2018-mean/13(reused)", "tcp://127.0.0.1:34243")
