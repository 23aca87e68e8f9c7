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


def test_finetune_takes_the_source_lambda_unless_the_user_sets_one(sample_data, tmp_path: Path):
    """VEMIC from MLIC++ keeps the λ its source was trained with (the paper's recipe); a typed
    --lmbda wins. A bad --eval-baselines stops the command right after, before any service."""
    from mvarchive.codecs import create_codec, save_checkpoint

    save_checkpoint(create_codec("single-view-mlicpp", "tiny"), tmp_path / "mlicpp.pt", extra={"lmbda": 845.3})
    common = ["train", str(sample_data.stereo), "--codec", "vemic", "--preset", "tiny", "--init", "mlicpp.pt",
              "--eval-baselines", "nonesuch"]
    taken = run_cli(common, tmp_path, tmp_path / "home", timeout=180)
    assert "fine-tuning defaults from the init's paper: lmbda=845.3" in taken.stdout, taken.describe()
    assert "init (vemic-from-mlicpp) from mlicpp.pt [single-view-mlicpp:tiny]" in taken.stdout
    typed = run_cli([*common, "--lmbda", "300"], tmp_path, tmp_path / "home", timeout=180)
    assert typed.returncode == 2 and "fine-tuning defaults" not in typed.stdout, typed.describe()
    foreign = run_cli([*common[:2], "--codec", "camsic", "--preset", "tiny", "--init", "mlicpp.pt"], tmp_path,
                      tmp_path / "home", timeout=180)
    assert foreign.returncode == 2 and len(foreign.error_lines) == 1, foreign.describe()
    assert "holds single-view-mlicpp:tiny" in foreign.error_lines[0] and "camsic" in foreign.error_lines[0]
