"""Restore on demand: the installed `mvarchive` restores a few groups without starting services.

Without a stack, one group decodes in the command's own process (no Prefect server, no
LocalCluster, no MLflow store created); with a configured cluster, the job runs on one of its
warm workers, which answers first and records the Prefect flow run and the MLflow run after.
Either way the images equal a full restore by the flow, existing files are refused, and a damaged
group fails loudly with nothing written for it."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mvarchive.datasets import load_image
from mvarchive.flows.archive import ArchiveConfig
from mvarchive.integrity import Status
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


def request_of(stdout: str) -> str:
    """The request id the stack's worker records the job under (last line of restore/verify)."""
    found = re.search(r"after this answer \(request ([0-9a-f]+)\)", stdout)
    assert found, stdout
    return found.group(1)


def wait_for(read, deadline_s: float = 180.0):
    """Poll ``read()`` until it returns something (the worker records after answering)."""
    deadline = time.monotonic() + deadline_s
    while True:
        found = read()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def final_flow_run(api_url: str, name: str):
    """The Prefect flow run called ``name`` once it is in a final state, else None."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
        if runs and runs[0].state is not None and runs[0].state.is_final():
            return runs[0], client.read_flow(runs[0].flow_id).name
    return None


def ended_mlflow_runs(tracking_uri: str, request: str) -> list:
    """The ended MLflow runs tagged with ``request``."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("mvarchive")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], f"tags.`mvarchive.request` = '{request}'")
    return [r for r in runs if r.info.status in ("FINISHED", "FAILED")]


def test_a_running_cluster_answers_first_and_records_the_runs_after(odd_archive, full_restore, flow_env, tmp_path):
    services, api_url = flow_env
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "PREFECT_API_URL": api_url, "MVARCHIVE_DASK_ADDRESS": services.dask_address,
           "MVARCHIVE_HOME": str(tmp_path / "home"), "MLFLOW_TRACKING_URI": mlflow_uri}
    group = ArchiveReader(Location(str(odd_archive))).names[0]
    cwd = tmp_path / "somewhere" / "else"
    archive = os.path.relpath(odd_archive, cwd)
    done = mvarchive("restore", archive, "out", "--groups", group, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    assert f"decoded on a worker of the running cluster {services.dask_address}" in done.stdout
    request = request_of(done.stdout)
    out = cwd / "out"
    assert files_under(out) == [f"{group}/left.png", f"{group}/right.png"]
    assert all(same_pixels(out / n, full_restore / n) for n in files_under(out))

    # the records appear after the answer: a completed flow run of restore-on-demand, a finished MLflow run
    found = wait_for(lambda: final_flow_run(api_url, f"restore-{request}"))
    assert found, f"no final Prefect flow run restore-{request}"
    run, flow_name = found
    assert flow_name == "restore-on-demand" and run.state.is_completed(), run.state
    assert run.start_time <= run.end_time and run.parameters["config"]["groups"] == [group]
    ended = wait_for(lambda: ended_mlflow_runs(mlflow_uri, request))
    assert len(ended) == 1 and ended[0].info.status == "FINISHED"
    mlflow_run = ended[0].data
    assert mlflow_run.params["placement"] == "stack" and mlflow_run.params["groups"] == "1"
    assert mlflow_run.metrics["groups_ok"] == 1 and mlflow_run.metrics["images"] == 2
    assert 0 < mlflow_run.metrics["decode_s"] <= mlflow_run.metrics["wall_s"]
    assert mlflow_run.tags["mvarchive.prefect_flow_run"] == str(run.id)
    if "; MLflow run " in done.stdout:  # ids opened before the answer was ready are shown with it
        assert f"MLflow run {ended[0].info.run_id}" in done.stdout

    # refusals unchanged: one line, nothing written; the flow run records the failure, no MLflow run
    refused = mvarchive("restore", archive, "out", "--groups", group, cwd=cwd, env=env)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr and "Traceback" not in refused.stderr
    assert files_under(out) == [f"{group}/left.png", f"{group}/right.png"]

    verified = mvarchive("verify", archive, "--json", cwd=cwd, env=env)
    checked = json.loads(verified.stdout)
    assert checked["placement"] == "stack" and checked["counts"]["ok"] == 3 and checked["request"]
    found = wait_for(lambda: final_flow_run(api_url, f"verify-{checked['request']}"))
    assert found and found[1] == "verify-on-demand" and found[0].state.is_completed()
    assert wait_for(lambda: ended_mlflow_runs(mlflow_uri, checked["request"]))

    # the refusal's flow run: failed with the refusal's message
    def refused_run() -> list:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
        from prefect.client.schemas.objects import StateType
        from prefect.settings import PREFECT_API_URL, temporary_settings

        failed = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.FAILED])))
        with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=failed)
        return [r for r in runs if r.parameters.get("config", {}).get("out") == str(out)]

    failed = wait_for(refused_run)
    assert len(failed) == 1 and "--overwrite" in failed[0].state.message


def test_a_recording_failure_leaves_the_restore_successful(odd_archive, full_restore, flow_env, tmp_path):
    """Neither the Prefect API nor the MLflow store can be written: the restore still answers,
    exit 0, the files written and verified."""
    services, _ = flow_env
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("a file where the MLflow store's folder should be")
    env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{closed_port()}/api",
           "MVARCHIVE_DASK_ADDRESS": services.dask_address, "MVARCHIVE_HOME": str(tmp_path / "home"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{not_a_folder / 'mlflow.db'}"}
    group = ArchiveReader(Location(str(odd_archive))).names[2]
    done = mvarchive("restore", str(odd_archive), "out", "--groups", group, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "restored 2 images of 1 groups" in done.stdout and "1 exact" in done.stdout
    assert "; Prefect flow run" not in done.stdout and "; MLflow run" not in done.stdout
    out = tmp_path / "out"
    assert files_under(out) == [f"{group}/left.png", f"{group}/right.png"]
    assert all(same_pixels(out / n, full_restore / n) for n in files_under(out))


def test_the_worker_logs_what_it_could_not_record(odd_archive, tmp_path):
    """The task function itself, in this process: the answer is the restore's; the failed
    records are logged (on a worker: in its log) once the recording thread is done."""
    import logging
    import threading

    from mvarchive.flows.on_demand import OnDemandJob, run_on_worker
    from mvarchive.flows.restore_config import RestoreConfig

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    group = ArchiveReader(Location(str(odd_archive))).names[1]
    job = OnDemandJob(RestoreConfig(str(odd_archive), str(tmp_path / "out"), groups=[group]),
                      tracking_uri=f"sqlite:///{not_a_folder / 'mlflow.db'}",
                      prefect_api_url=f"http://127.0.0.1:{closed_port()}/api")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("mvarchive.restore.record")
    logger.addHandler(handler)
    try:
        outcome = run_on_worker(job)
        assert outcome.error is None and outcome.report.groups == 1 and outcome.report.count(Status.OK) == 1
        assert outcome.report.flow_run_id is None and outcome.report.mlflow_run_id is None
        for thread in threading.enumerate():
            if thread.name == f"mvarchive-record-{job.request}":
                thread.join(120)
                assert not thread.is_alive()
    finally:
        logger.removeHandler(handler)
    messages = [r.getMessage() for r in records]
    assert any("could not open the Prefect flow run" in m and job.request in m for m in messages), messages
    assert any("could not open the MLflow run" in m for m in messages), messages
    assert all(r.levelno == logging.ERROR and r.exc_info for r in records)
    assert files_under(tmp_path / "out") == [f"{group}/left.png", f"{group}/right.png"]


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
