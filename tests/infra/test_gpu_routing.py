"""GPU placement reaches the Dask scheduler through prefect-dask (Prefect #21608 and
prefect-dask #47 report annotations silently lost).

A real two-worker cluster, one worker advertising a fake ``GPU=1``; a real Prefect flow on
DaskTaskRunner(address=...) submits GPU-placed and plain tasks. Each task reports, from its
worker, where it ran and which resource restriction the worker received for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from mvarchive.infra.gpu import (
    NoGpuWorkerError,
    gpu_placement,
    gpu_workers,
    placement_resources,
    require_gpu_workers,
    worker_resources,
)
from mvarchive.infra.prefect_server import prefect_env


def _where(delay_s: float) -> dict[str, Any]:
    """The worker running this task and the resources the scheduler attached to it."""
    from distributed import get_worker

    worker = get_worker()
    key = worker.get_current_task()
    state = worker.state.tasks.get(key)
    time.sleep(delay_s)  # keep the worker busy so plain tasks spread over both workers
    return {"worker": worker.address, "resources": dict(getattr(state, "resource_restrictions", None) or {})}


@pytest.fixture(scope="module")
def gpu_cluster(flow_env) -> Iterator[tuple[str, str, str]]:
    """(scheduler address, CPU worker address, GPU worker address), workers reporting to the test API."""
    from distributed import Client, Nanny, Scheduler, SpecCluster

    _, api_url = flow_env
    env = {**prefect_env(api_url), "DASK_LOGGING__DISTRIBUTED": "warning"}
    common = {"nthreads": 1, "host": "127.0.0.1", "env": env}
    workers = {
        "cpu": {"cls": Nanny, "options": dict(common)},
        "gpu": {"cls": Nanny, "options": {**common, "resources": worker_resources(count=1)}},
    }
    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": None}}
    with SpecCluster(workers=workers, scheduler=scheduler, name="gpu-routing") as cluster:
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=60)
            infos = client.scheduler_info(n_workers=-1)["workers"]
        gpu = gpu_workers(infos)
        assert len(gpu) == 1
        cpu = [address for address in infos if address not in gpu]
        yield cluster.scheduler_address, cpu[0], gpu[0]


@pytest.mark.slow
def test_gpu_tasks_land_only_on_gpu_workers(gpu_cluster, flow_env) -> None:
    from prefect import flow, task
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_dask import DaskTaskRunner

    address, cpu_worker, gpu_worker = gpu_cluster
    _, api_url = flow_env
    where = task(_where, name="where")

    @flow(name="gpu-routing", task_runner=DaskTaskRunner(address=address))
    def route() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        with gpu_placement("cuda"):
            gpu_futures = [where.submit(0.3) for _ in range(4)]
        with gpu_placement("cpu"):
            cpu_futures = [where.submit(0.3) for _ in range(4)]
        return [f.result() for f in gpu_futures], [f.result() for f in cpu_futures]

    with temporary_settings({PREFECT_API_URL: api_url}):
        gpu_runs, cpu_runs = route()

    assert all(run["resources"] == {"GPU": 1.0} for run in gpu_runs), gpu_runs
    assert {run["worker"] for run in gpu_runs} == {gpu_worker}
    assert all(run["resources"] == {} for run in cpu_runs), cpu_runs
    # plain tasks do not wait for the GPU worker: the other worker runs them (it may share)
    assert cpu_worker in {run["worker"] for run in cpu_runs}


def test_gpu_requirement_checked_before_submitting(gpu_cluster) -> None:
    from distributed import Client, LocalCluster

    address, _, _ = gpu_cluster
    with Client(address) as client:
        require_gpu_workers(client, "cuda:0")
        require_gpu_workers(client, "cpu")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as plain:
        with Client(plain) as client:
            require_gpu_workers(client, "cpu")
            with pytest.raises(NoGpuWorkerError, match="archive x asks .* advertises the GPU resource"):
                require_gpu_workers(client, "cuda", "archive x")


def test_resources_and_devices() -> None:
    assert worker_resources(0) == {}
    assert worker_resources(2) == {"GPU": 2.0}
    assert placement_resources("cpu") == {}
    assert placement_resources("CUDA:1") == {"GPU": 1.0}
    with pytest.raises(ValueError, match="device 'gpu' is not one of"):
        placement_resources("gpu")


@pytest.mark.slow
def test_archive_on_cuda_refused_without_gpu_workers(flow_env, sample_data, tmp_path) -> None:
    """The shared test cluster has no GPU worker: `archive` with device cuda fails at once
    with one clear error, before anything is written (its encode tasks would wait forever)."""
    from mvarchive.flows.archive import ArchiveConfig, archive_dataset
    from mvarchive.flows.runtime import run_on_dask

    services, api_url = flow_env
    dest = tmp_path / "archive"
    config = ArchiveConfig(source=str(sample_data.stereo), dest=str(dest), codec="ldmic-fast", preset="tiny",
                           untrained=True, device="cuda")
    with pytest.raises(NoGpuWorkerError, match=r"^archive .* asks for device 'cuda' but none of the 2"):
        run_on_dask(archive_dataset, services, api_url, config=config, show_progress=False)
    assert not dest.exists()
    with pytest.raises(ValueError, match="device 'tpu' is not one of"):
        ArchiveConfig(source=str(sample_data.stereo), dest=str(dest), untrained=True, device="tpu")


@pytest.mark.slow
def test_cuda_training_is_a_task_on_the_gpu_worker(gpu_cluster, flow_env, sample_data, tmp_path) -> None:
    """`train --device cuda` on a cluster: the training task is placed on the GPU worker. The
    fake GPU worker has no CUDA, so the task fails there in one line, and only that worker's
    log holds the training task; nothing is trained in the flow's process."""
    from distributed import Client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_dask import DaskTaskRunner

    from mvarchive.flows.train import train_codec
    from mvarchive.training import TrainConfig

    address, cpu_worker, gpu_worker = gpu_cluster
    _, api_url = flow_env
    config = TrainConfig(dataset=str(sample_data.stereo), output_dir=str(tmp_path / "ckpt"), codec="ldmic-fast",
                         preset="tiny", steps=1, batch_size=1, crop=64, device="cuda")
    with temporary_settings({PREFECT_API_URL: api_url}):
        with pytest.raises(RuntimeError, match="asks for device 'cuda' but this worker has no usable CUDA device"):
            train_codec.with_options(task_runner=DaskTaskRunner(address=address))(config, None, False)
    with Client(address) as client:
        seen = client.run(lambda dask_worker: sorted({str(entry[0]) for entry in dask_worker.state.log
                                                       if "train" in str(entry[0])}))
    assert seen[gpu_worker] and not seen[cpu_worker], seen  # task keys carry the task's name
    assert not (tmp_path / "ckpt").exists()
