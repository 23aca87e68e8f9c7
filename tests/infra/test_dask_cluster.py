"""Dask task runner: tasks run on separate worker processes with the run's env."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mvarchive.infra.dask_cluster import (
    WORKERS_PER_HOST_ENV,
    dask_task_runner,
    torch_threads_for_worker,
)
from mvarchive.infra.prefect_server import PrefectServer, prefect_env
from mvarchive.infra.settings import ServicesConfig, offline_environment

MARKER = "MVARCHIVE_TEST_WORKER_MARKER"


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with PrefectServer(tmp_path_factory.mktemp("prefect-home")) as server:
        yield server.api_url


def _probe(delay_s: float) -> dict[str, Any]:
    """What a task sees on its worker."""
    from distributed import get_worker

    time.sleep(delay_s)  # keep both workers busy so each gets one task
    return {
        "pid": os.getpid(),
        "worker": get_worker().address,
        "marker": os.environ.get(MARKER),
        "api_url": os.environ.get("PREFECT_API_URL"),
        "do_not_track": os.environ.get("DO_NOT_TRACK"),
        "torch_threads": torch_threads_for_worker(),
    }


@pytest.mark.slow
def test_flow_tasks_run_on_distinct_workers_with_env(
    api_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import flow, task
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    for name, value in offline_environment().items():
        monkeypatch.setenv(name, value)
    config = ServicesConfig(home=tmp_path, dask_workers=2, threads_per_worker=1)
    worker_env = {**prefect_env(api_url), MARKER: "seen-on-worker"}
    probe = task(_probe)

    @flow(name="infra-dask-smoke", task_runner=dask_task_runner(config, worker_env))
    def smoke() -> list[dict[str, Any]]:
        futures = [probe.submit(1.5), probe.submit(1.5)]
        return [f.result() for f in futures]

    with temporary_settings({PREFECT_API_URL: api_url, PREFECT_HOME: tmp_path / "client"}):
        began = time.monotonic()
        results = smoke()
        elapsed = time.monotonic() - began
    print(f"dask flow (cluster start, 2 tasks, teardown) took {elapsed:.1f} s")

    assert len({r["pid"] for r in results}) == 2
    assert len({r["worker"] for r in results}) == 2
    assert os.getpid() not in {r["pid"] for r in results}
    for r in results:
        assert r["marker"] == "seen-on-worker"
        assert r["api_url"] == api_url
        assert r["do_not_track"] == "true"
        assert r["worker"].startswith("tcp://127.0.0.1:")
        assert r["torch_threads"] == max(1, (os.cpu_count() or 1) // 2)


def test_runner_for_existing_scheduler(tmp_path: Path) -> None:
    config = ServicesConfig(home=tmp_path, dask_address="tcp://10.0.0.5:8786")
    runner = dask_task_runner(config, {"A": "1"})
    assert runner.address == "tcp://10.0.0.5:8786"
    assert runner.cluster_class is None


def test_runner_local_cluster_kwargs(tmp_path: Path) -> None:
    config = ServicesConfig(home=tmp_path, dask_workers=3, threads_per_worker=2)
    runner = dask_task_runner(
        config, {"A": "1"}, dashboard=False, cluster_kwargs={"resources": {"GPU": 1}}
    )
    kwargs = runner.cluster_kwargs
    assert kwargs["n_workers"] == 3 and kwargs["threads_per_worker"] == 2
    assert kwargs["processes"] is True and kwargs["host"] == "127.0.0.1"
    assert kwargs["dashboard_address"] is None
    assert kwargs["env"] == {"A": "1", WORKERS_PER_HOST_ENV: "3"}
    assert kwargs["resources"] == {"GPU": 1}


def test_torch_threads_outside_worker_is_one() -> None:
    assert torch_threads_for_worker() == 1


@pytest.fixture
def fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A driver tool on PATH that lists two GPUs (the detection runs the real executable)."""
    tool = tmp_path / "bin" / "nvidia-smi"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho 'GPU 0: Fake H200 (UUID: GPU-0)'\necho 'GPU 1: Fake H200 (UUID: GPU-1)'\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_gpu_hosts_advertise_gpu_resources(
    fake_nvidia_smi: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mvarchive.infra.gpu import cuda_device_count, visible_gpus, worker_resources

    assert cuda_device_count() == 2 and worker_resources() == {"GPU": 2.0}
    runner = dask_task_runner(ServicesConfig(home=tmp_path, dask_workers=2), {}, dashboard=False)
    assert runner.cluster_kwargs["resources"] == {"GPU": 2.0}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert visible_gpus() == ["1"] and worker_resources() == {"GPU": 1.0}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert worker_resources() == {}
    assert "resources" not in dask_task_runner(ServicesConfig(home=tmp_path), {}, dashboard=False).cluster_kwargs


def test_session_cluster_workers_advertise_gpus(fake_nvidia_smi: None, tmp_path: Path) -> None:
    """The LocalCluster of flows.runtime.dask_session: its workers tell the scheduler they have GPUs."""
    from distributed import Client

    from mvarchive.flows.runtime import dask_session

    config = ServicesConfig(home=tmp_path, dask_workers=1, threads_per_worker=1)
    with dask_session(config, "http://127.0.0.1:9/api") as session:
        with Client(session.dask_address) as client:
            workers = client.scheduler_info(n_workers=-1)["workers"]
    assert [info["resources"] for info in workers.values()] == [{"GPU": 2.0}]
