"""The installed `mvarchive` script as a user runs it: relative paths, other working directories,
moved checkpoints, existing files. Commands reach the test session's Prefect API and Dask
cluster through the same environment variables a user would set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mvarchive.datasets import load_image

pytestmark = pytest.mark.slow

SCRIPT = str(Path(sys.executable).parent / "mvarchive")


@pytest.fixture
def cli(flow_env, tmp_path):
    services, api_url = flow_env
    env = {**os.environ, "PREFECT_API_URL": api_url, "MVARCHIVE_DASK_ADDRESS": services.dask_address,
           "MVARCHIVE_HOME": str(tmp_path / "home"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}

    def run(*args: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
        cwd.mkdir(parents=True, exist_ok=True)
        result = subprocess.run([SCRIPT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        if ok:
            assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result

    return run


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_archive_restore_verify_with_relative_paths_from_other_folders(cli, sample_data, trained_checkpoint, tmp_path):
    shutil.copytree(sample_data.stereo, tmp_path / "data" / "stereo")
    shutil.copy(trained_checkpoint, tmp_path / "model.pt")
    source_files = files_under(tmp_path / "data" / "stereo")
    assert len(source_files) == 8

    # no model: refused before anything starts, one line, nothing written
    refused = cli("archive", "data/stereo", "arch", "--codec", "ldmic-fast", "--preset", "tiny", cwd=tmp_path, ok=False)
    assert refused.returncode == 2 and "--checkpoint" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "arch").exists()

    # the README's form: relative source and destination
    cli("archive", "data/stereo", "arch", "--codec", "ldmic-fast", "--preset", "tiny", "--checkpoint", "model.pt",
        "--shard-size", "2", cwd=tmp_path)
    # the same job typed differently, from elsewhere: resumes (nothing to do), not "a different job"
    again = cli("archive", str(tmp_path / "data" / "stereo"), "../arch", "--codec", "ldmic-fast", "--preset", "tiny",
                "--checkpoint", "../model.pt", "--shard-size", "2", cwd=tmp_path / "x")
    assert "already complete 2" in again.stdout

    info = json.loads(cli("info", "../arch", "--json", cwd=tmp_path / "y").stdout)
    assert sorted(info["group_names"]) == sorted({f.split("/")[0] for f in source_files})

    # the checkpoint is gone: the archive carries its own copy
    (tmp_path / "model.pt").rename(tmp_path / "moved.pt")
    cli("restore", "../arch", "out", cwd=tmp_path / "y")
    out = tmp_path / "y" / "out"
    assert files_under(out) == source_files  # every file, under its original relative name
    for name in source_files:
        assert load_image(str(out / name)).shape == load_image(str(tmp_path / "data" / "stereo" / name)).shape

    # existing files are never replaced unless asked, and nothing is written on refusal
    victim = out / source_files[0]
    victim.write_bytes(b"user data")
    (out / source_files[1]).unlink()
    refused = cli("restore", "../arch", "out", cwd=tmp_path / "y", ok=False)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr and source_files[0] in refused.stderr
    assert victim.read_bytes() == b"user data" and not (out / source_files[1]).exists()
    cli("restore", "../arch", "out", "--overwrite", cwd=tmp_path / "y")
    assert victim.read_bytes() != b"user data" and files_under(out) == source_files

    verified = json.loads(cli("verify", "arch", "--json", cwd=tmp_path).stdout)
    assert verified["counts"]["ok"] == 4 and verified["counts"]["mismatch"] == 0
    assert files_under(tmp_path / "data" / "stereo") == source_files  # the source is untouched


def test_archive_without_embedded_model_names_the_missing_checkpoint(cli, sample_data, trained_checkpoint, tmp_path):
    shutil.copytree(sample_data.stereo, tmp_path / "data")
    shutil.copy(trained_checkpoint, tmp_path / "model.pt")
    cli("archive", "data", "arch", "--codec", "ldmic-fast", "--preset", "tiny", "--checkpoint", "model.pt",
        "--no-embed-model", cwd=tmp_path)
    (tmp_path / "model.pt").rename(tmp_path / "moved.pt")
    failed = cli("restore", "../arch", "out", cwd=tmp_path / "elsewhere", ok=False)
    assert failed.returncode == 2
    assert "model.pt" in failed.stderr and "--checkpoint" in failed.stderr and "Traceback" not in failed.stderr
    assert not (tmp_path / "elsewhere" / "out").exists()
    cli("restore", "../arch", "out", "--checkpoint", "../moved.pt", cwd=tmp_path / "elsewhere")
    assert len(files_under(tmp_path / "elsewhere" / "out")) == 8


def test_train_with_relative_paths_and_checkpoint_cadence(cli, sample_data, tmp_path):
    shutil.copytree(sample_data.stereo, tmp_path / "data")
    result = cli("train", "../data", "--codec", "ldmic-fast", "--preset", "tiny", "--steps", "4", "--batch-size", "1",
                 "--crop", "64", "--checkpoint-every", "2", "--out", "ck", cwd=tmp_path / "work")
    assert (tmp_path / "work" / "ck" / "ldmic-fast-tiny.pt").exists(), result.stdout
    typo = cli("train", "../data", "--codec", "ldmic-fats", cwd=tmp_path / "work", ok=False)
    assert typo.returncode == 2 and "unknown codec 'ldmic-fats'" in typo.stderr and "Traceback" not in typo.stderr
