"""``mvarchive train`` refuses bad options with one ``error:`` line before any service starts
(no Prefect server, no cluster, nothing written under MVARCHIVE_HOME or --out)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.bad_inputs import run_cli


@pytest.mark.parametrize(("options", "message"), [
    (["--lmbda", "128", "--lmbda", "0"], "error: --lmbda must be > 0, got 0"),
    (["--lmbda", "128", "--lmbda", "128"], "error: --lmbda values repeat: 128, 128"),
    (["--metric", "foo"], "error: --metric must be one of mse, ms-ssim, got 'foo'"),
    (["--world-size", "0"], "error: --world-size must be >= 1, got 0"),
])
def test_train_refuses_bad_options_before_any_service(sample_data, tmp_path: Path, options, message):
    home = tmp_path / "home"
    run = run_cli(["train", str(sample_data.stereo), "--out", "ckpt", "--preset", "tiny", *options], tmp_path, home,
                  timeout=120)
    assert run.returncode == 2, run.describe()
    assert run.error_lines == [message], run.describe()
    assert "Traceback" not in run.output
    assert not home.exists() and not (tmp_path / "ckpt").exists()


def test_train_help_names_the_loop_options(tmp_path: Path):
    run = run_cli(["train", "--help"], tmp_path, tmp_path / "home", timeout=60)
    assert run.returncode == 0, run.describe()
    for option in ("--lmbda", "--metric", "--lr-schedule", "--val-every", "--val-dataset", "--grad-accum",
                   "--precision", "--compile", "--loader-workers", "--world-size", "--init"):
        assert option in run.stdout
