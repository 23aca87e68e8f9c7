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
    # the same job typed differently, from elsewhere: nothing to add, not "a different job"
    again = cli("archive", str(tmp_path / "data" / "stereo"), "../arch", "--codec", "ldmic-fast", "--preset", "tiny",
                "--checkpoint", "../model.pt", "--shard-size", "2", cwd=tmp_path / "x")
    assert "nothing to add (4 groups archived, 0 changed, 0 no longer in the source)" in again.stdout

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


def test_archive_grows_with_the_source(cli, sample_data, tmp_path):
    """Archive 3 groups; the source gains 2: only those are encoded, earlier shards untouched;
    a changed group is reported and skipped (re-encoded with --reencode), a vanished one
    reported and kept; restore of one group reads the newest bytes; a second writer is refused."""
    from PIL import Image, ImageOps

    src = tmp_path / "data"
    names = sorted(p.name for p in sample_data.stereo.iterdir() if p.is_dir())
    for name in names[:3]:
        shutil.copytree(sample_data.stereo / name, src / name)
    job = ["--codec", "single-view-mbt2018-mean", "--preset", "tiny", "--untrained", "--shard-size", "2"]
    cli("archive", "data", "arch", *job, cwd=tmp_path)
    shards = tmp_path / "arch" / "shards"
    first = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in shards.glob("*.bin")}
    assert len(first) == 2

    shutil.copytree(sample_data.stereo / names[3], src / names[3])
    shutil.copytree(sample_data.stereo / names[0], src / "extra")
    grown = cli("archive", "data", "arch", *job, cwd=tmp_path)
    assert "2 group(s) encoded (0 again)" in grown.stdout
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in shards.glob("*.bin") if p.name in first} == first
    assert len(list(shards.glob("*.bin"))) == 4  # the 2 new groups: one shard per worker (balanced shards)
    info = json.loads(cli("info", "arch", "--json", cwd=tmp_path).stdout)
    assert [(r["added"], r["status"]) for r in info["runs"]] == [(3, "finished"), (2, "finished")]
    assert sorted(info["group_names"]) == sorted([*names, "extra"]) and info["groups"] == 5

    # one group changes, one vanishes: reported in one line each, nothing encoded
    changed = src / names[1] / "left.png"
    with Image.open(changed) as img:
        ImageOps.mirror(img.convert("RGB")).save(changed, compress_level=1)
    shutil.rmtree(src / names[2])
    skipped = cli("archive", "data", "arch", *job, cwd=tmp_path)
    drift = [line for line in skipped.stderr.splitlines() if "changed in the source" in line]
    assert len(drift) == 1 and names[1] in drift[0] and "--reencode" in drift[0]
    assert any("no longer in the source" in line and names[2] in line for line in skipped.stderr.splitlines())
    assert "nothing to add" in skipped.stdout and len(list(shards.glob("*.bin"))) == 4

    reencoded = cli("archive", "data", "arch", *job, "--reencode", cwd=tmp_path)
    assert "1 group(s) encoded (1 again), 1 changed, 1 no longer in the source" in reencoded.stdout
    unchanged = {p.name: p.read_bytes() for p in shards.glob("*.bin") if p.name in first}
    assert unchanged == {k: v[0] for k, v in first.items()}
    assert len(list(shards.glob("*.bin"))) == 5
    info = json.loads(cli("info", "arch", "--json", cwd=tmp_path).stdout)
    assert [(r["added"], r["reencoded"], r["vanished"]) for r in info["runs"]][-1] == (0, 1, 1)
    assert info["groups"] == 5  # the vanished group stays

    cli("restore", "arch", "out", "--groups", names[1], "--cameras", "left", cwd=tmp_path)
    restored = load_image(str(tmp_path / "out" / names[1] / "left.png"))
    from mvarchive.integrity import pixel_digest
    from mvarchive.storage import ArchiveReader, Location

    reader = ArchiveReader(Location(str(tmp_path / "arch")))
    newest = reader.read_groups(reader.select([names[1]]))[0]
    assert newest.run == info["runs"][-1]["id"]  # the re-encoded copy, not the first
    assert pixel_digest(restored) == newest.fingerprint.pixels[0]
    assert files_under(tmp_path / "out") == [f"{names[1]}/left.png"]

    # another run holds the archive's lease: refused in one line, nothing written
    from mvarchive.storage import Lease

    shutil.copytree(sample_data.stereo / names[2], src / "late")
    with Lease(Location(str(tmp_path / "arch")), owner="other-run").acquire():
        busy = cli("archive", "data", "arch", *job, cwd=tmp_path, ok=False)
    assert busy.returncode == 2 and "is being written by run other-run on host" in busy.stderr
    assert "Traceback" not in busy.stderr and len(list(shards.glob("*.bin"))) == 5  # 4 + the re-encoded group's
