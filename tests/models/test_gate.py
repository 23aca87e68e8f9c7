"""The gate's decision rule on given figures (the measuring is tested in test_lifecycle)."""

from __future__ import annotations

import math

import pytest

from mvarchive.models.gate import decide, rd_cost
from mvarchive.models.registry import is_model_uri, registered_name


def _figures(version: str, bpp: float, psnr: float, lmbda: float = 1024.0, **extra) -> dict:
    return {"name": "mvarchive-ldmic-fast", "version": version, "bpp": bpp, "psnr": psnr,
            "mse": 10 ** (-psnr / 10), "lmbda": lmbda, **extra}


def test_no_champion_promotes():
    decision = decide(_figures("1", 0.5, 30.0), None)
    assert decision.promote and decision.method == "no-champion" and "no champion yet" in decision.reason


def test_rd_cost_at_the_champions_lambda():
    champion = _figures("1", 0.30, 30.0, lmbda=256.0)
    # fewer bits but worse quality: at λ=256 the saving wins, at the candidate's λ=4096 it would not
    candidate = _figures("2", 0.20, 29.0, lmbda=4096.0)
    assert rd_cost(candidate, 256) < rd_cost(champion, 256) and rd_cost(candidate, 4096) > rd_cost(champion, 4096)
    decision = decide(candidate, champion)
    assert decision.promote and decision.method == "rd-cost"
    assert "at λ=256" in decision.reason and decision.candidate["rd_cost"] == pytest.approx(rd_cost(candidate, 256))
    assert not decide(candidate, champion, lmbda=4096).promote
    # a required relative improvement larger than the gain rejects
    gain = 1 - rd_cost(candidate, 256) / rd_cost(champion, 256)
    assert not decide(candidate, champion, min_improvement=gain + 0.01).promote
    assert decide(candidate, champion, min_improvement=gain - 0.01).promote


def test_bd_rate_when_versions_carry_curves():
    curve = [{"bpp": b, "psnr": p, "ms_ssim": m} for b, p, m in
             [(0.1, 26.0, 0.90), (0.2, 28.5, 0.93), (0.4, 31.0, 0.95), (0.8, 33.5, 0.97)]]
    cheaper = [{**p, "bpp": p["bpp"] * 0.8} for p in curve]
    champion = _figures("1", 0.4, 31.0, points=curve)
    better = decide(_figures("2", 0.32, 31.0, points=cheaper), champion)
    assert better.promote and better.method == "bd-rate"
    assert better.candidate["bd_rate_psnr"] == pytest.approx(-20, abs=1)
    worse = decide(champion | {"version": "3"}, _figures("2", 0.32, 31.0, points=cheaper))
    assert not worse.promote and "rejected: BD-rate +" in worse.reason


def test_names_and_uris():
    assert registered_name("ldmic-fast") == "mvarchive-ldmic-fast"
    assert is_model_uri("models:/mvarchive-ldmic-fast@champion") and not is_model_uri("/tmp/x.pt")
    assert not is_model_uri(None) and math.isfinite(rd_cost({"bpp": 1, "mse": 0.01}, 100))


def test_models_cli_imports_nothing_heavy():
    """`mvarchive models --help` must stay instant: the group imports no torch/mlflow/prefect."""
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from mvarchive.cli.models import models_app; "
            "r = CliRunner().invoke(models_app, ['promote', '--help']); assert r.exit_code == 0, r.output; "
            "assert '--force' in r.output; "
            "print(sorted(m for m in ('torch', 'mlflow', 'prefect') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
