"""Restore on demand: the installed `mvarchive` restores a few groups without starting services.

Without a stack, one group decodes in the command's own process (no Prefect server, no
LocalCluster, no MLflow store created); with a configured cluster, the job runs on one of its
warm workers and records a Prefect flow run. Either way the images equal a full restore by the
flow, existing files are refused, and a damaged group fails loudly with nothing written for it."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mvarchive.datasets import load_image
from mvarchive.flows.archive import ArchiveConfig
from mvarchive.storage import ArchiveReader, Location
from tests.archive_helpers import archive_in_process

pytestmark = pytest.mark.slow

SCRIPT = str(Path(sys.executable).parent / "mvarchive")
SERVICE_VARS = ("PREFECT_API_URL", "MVARCHIVE_DASK_ADDRESS", "MLFLOW_TRACKING_URI")


@pytest.fixture(scope="module")
def scaled_checkpoint(tmp_path_factory) -> str:
    """ldmic-fast (tiny) with its analysis transforms scaled up: about half the coded symbols
    are non-zero (an untrained codec codes zeros), in a second instead of a training run."""
    import torch

    from mvarchive.codecs import create_codec, save_checkpoint

    with torch.random.fork_rng():
        torch.manual_seed(3)
        model = create_codec("ldmic-fast", "tiny")
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith(("g_a.", "h_a.")) and parameter.dim() > 1:
                parameter.mul_(2.5)
    path = tmp_path_factory.mktemp("ckpt") / "scaled.pt"
    save_checkpoint(model, path)
    return str(path)


@pytest.fixture(scope="module")
def odd_archive(sample_data, scaled_checkpoint, tmp_path_factory) -> Path:
    """Three stereo groups of 67x93 pixels (odd, not a multiple of the codec's stride), encoded
    with non-trivial latents."""
    root = tmp_path_factory.mktemp("odd")
    for name in sorted(p.name for p in sample_data.stereo.iterdir() if p.is_dir())[:3]:
        for camera in ("left", "right"):
            image = Image.open(sample_data.stereo / name / f"{camera}.png").convert("RGB")
            (root / "data" / name).mkdir(parents=True, exist_ok=True)
            image.crop((11, 7, 11 + 93, 7 + 67)).save(root / "data" / name / f"{camera}.png")
    archive_in_process(ArchiveConfig(str(root / "data"), str(root / "arch"), codec="ldmic-fast", preset="tiny",
                                     checkpoint=scaled_checkpoint, shard_size=2))
    symbols = ArchiveReader(Location(str(root / "arch"))).read_latents(0)
    assert np.mean(np.concatenate([np.ravel(v) for v in symbols.values()]) != 0) > 0.2
    return root / "arch"


@pytest.fixture(scope="module")
def full_restore(odd_archive, flow_env, tmp_path_factory) -> Path:
    """Every group restored by the Prefect flow on the test cluster: the reference images."""
    from mvarchive.flows.restore import RestoreConfig, restore_dataset
    from mvarchive.flows.runtime import run_on_dask

    services, api_url = flow_env
    out = tmp_path_factory.mktemp("full") / "out"
    report = run_on_dask(restore_dataset, services, api_url, show_progress=False,
                         config=RestoreConfig(archive=str(odd_archive), out=str(out)))
    assert report.placement == "flow" and report.groups == 3
    return out


def mvarchive(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run([SCRIPT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def no_services_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    return {**env, "MVARCHIVE_HOME": str(home), "MVARCHIVE_STACK": "off"}


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def same_pixels(a: Path, b: Path) -> bool:
    return np.array_equal(load_image(str(a)), load_image(str(b)))


def test_one_group_restores_in_process_like_the_flow(odd_archive, full_restore, tmp_path):
    group = ArchiveReader(Location(str(odd_archive))).names[1]
    home = tmp_path / "home"
    cwd = tmp_path / "somewhere" / "else"
    archive = os.path.relpath(odd_archive, cwd)
    env = no_services_env(home)

    done = mvarchive("restore", archive, "out", "--groups", group, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    assert "restored 2 images of 1 groups" in done.stdout and "1 exact" in done.stdout
    assert "decoded in this process (no Prefect or MLflow run" in done.stdout
    # nothing was started or created: no Prefect home or server log, no MLflow store
    assert not home.exists()
    out = cwd / "out"
    assert files_under(out) == [f"{group}/left.png", f"{group}/right.png"]
    for name in files_under(out):
        assert load_image(str(out / name)).shape == (67, 93, 3)
        assert same_pixels(out / name, full_restore / name)

    # never overwrite: refused before anything is written, one line, the file untouched
    victim = out / group / "left.png"
    victim.write_bytes(b"user data")
    (out / group / "right.png").unlink()
    refused = mvarchive("restore", archive, "out", "--groups", group, cwd=cwd, env=env)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr and "Traceback" not in refused.stderr
    assert victim.read_bytes() == b"user data" and not (out / group / "right.png").exists()


def test_a_damaged_group_fails_loudly_in_process_and_is_not_written(odd_archive, full_restore, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(odd_archive, damaged)
    reader = ArchiveReader(Location(str(damaged)))
    good, bad = reader.names[0], reader.names[2]
    row = reader.row(2)
    blob = damaged / "shards" / f"{row.blob}.bin"
    data = bytearray(blob.read_bytes())
    head = struct.unpack_from("<I", data, row.record[0])[0]
    data[row.record[0] + 4 + head + 4 + 40] ^= 1  # one bit inside the group's stream
    blob.write_bytes(bytes(data))
    env = no_services_env(tmp_path / "home")

    failed = mvarchive("restore", "damaged", "out", "--groups", f"{good},{bad}", cwd=tmp_path, env=env)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    error = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and f"group {bad!r}" in error[0], failed.stderr
    assert "1 of 2 group(s) failed verification" in failed.stderr and "Traceback" not in failed.stderr
    out = tmp_path / "out"
    assert files_under(out) == [f"{good}/left.png", f"{good}/right.png"]  # the good group only
    assert all(same_pixels(out / n, full_restore / n) for n in files_under(out))
    assert not (tmp_path / "home").exists()


def test_a_running_cluster_restores_on_a_warm_worker_and_records_the_flow(odd_archive, full_restore, flow_env,
                                                                           tmp_path):
    services, api_url = flow_env
    env = {**os.environ, "PREFECT_API_URL": api_url, "MVARCHIVE_DASK_ADDRESS": services.dask_address,
           "MVARCHIVE_HOME": str(tmp_path / "home"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    group = ArchiveReader(Location(str(odd_archive))).names[0]
    done = mvarchive("restore", str(odd_archive), "out", "--groups", group, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert f"decoded on a worker of the running cluster {services.dask_address}" in done.stdout
    assert "Prefect flow run" in done.stdout and "MLflow run" in done.stdout
    out = tmp_path / "out"
    assert files_under(out) == [f"{group}/left.png", f"{group}/right.png"]
    assert all(same_pixels(out / n, full_restore / n) for n in files_under(out))

    refused = mvarchive("restore", str(odd_archive), "out", "--groups", group, cwd=tmp_path, env=env)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr and "Traceback" not in refused.stderr

    checked = json.loads(mvarchive("verify", str(odd_archive), "--json", cwd=tmp_path, env=env).stdout)
    assert checked["placement"] == "stack" and checked["counts"]["ok"] == 3 and checked["prefect_flow_run"]

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        run = client.read_flow_run(checked["prefect_flow_run"])  # recorded by the worker in the harness API
    assert run.state.is_completed()
