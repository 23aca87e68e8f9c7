"""Dask task runner for Prefect flows: an existing scheduler or a LocalCluster.

The worker processes must see the run's environment (Prefect API URL,
offline switches) and must not oversubscribe the CPU when each task runs
torch, so both concerns are handled here rather than in every flow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mvarchive.infra.gpu import worker_resources
from mvarchive.infra.settings import ServicesConfig

if TYPE_CHECKING:  # importing prefect takes seconds; do it only when used
    from prefect_dask import DaskTaskRunner

__all__ = ["WORKERS_PER_HOST_ENV", "dask_task_runner", "torch_threads_for_worker"]

#: Set in LocalCluster workers' environment so that a task knows how many
#: sibling worker processes share its host without asking the scheduler.
WORKERS_PER_HOST_ENV = "MVARCHIVE_WORKERS_PER_HOST"


def dask_task_runner(
    config: ServicesConfig,
    worker_env: Mapping[str, str],
    *,
    dashboard: bool = True,
    cluster_kwargs: Mapping[str, Any] | None = None,
) -> DaskTaskRunner:
    """Build the DaskTaskRunner for a flow.

    With ``config.dask_address`` the runner connects to that scheduler (its
    workers must already have ``worker_env``: DaskTaskRunner ignores
    DASK_SCHEDULER_ADDRESS, hence the explicit address). Otherwise it starts a
    process-based LocalCluster on loopback whose Nannies put ``worker_env``
    into each worker process's environment; on a CUDA host each of its workers
    advertises ``GPU=<n>`` (:func:`mvarchive.infra.gpu.worker_resources`) so tasks placed
    with :func:`~mvarchive.infra.gpu.gpu_placement` can run there. ``cluster_kwargs`` adds
    or replaces LocalCluster arguments (e.g. ``resources={"GPU": 1}``).
    """
    from prefect_dask import DaskTaskRunner

    if config.dask_address:
        return DaskTaskRunner(address=config.dask_address)
    env = {str(k): str(v) for k, v in worker_env.items()}
    env.setdefault(WORKERS_PER_HOST_ENV, str(config.dask_workers))
    kwargs: dict[str, Any] = {
        "n_workers": config.dask_workers,
        "threads_per_worker": config.threads_per_worker,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": "127.0.0.1:0" if dashboard else None,
        "env": env,
    }
    resources = worker_resources()
    if resources:
        kwargs["resources"] = resources
    kwargs.update(cluster_kwargs or {})
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=kwargs)


def _workers_on_host(worker: Any) -> int:
    """Count the worker processes on this worker's host (at least 1)."""
    configured = os.environ.get(WORKERS_PER_HOST_ENV, "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    try:
        from distributed import get_client

        host = urlsplit(worker.address).hostname
        infos = get_client().scheduler_info(n_workers=-1)["workers"]
        same_host = [addr for addr in infos if urlsplit(addr).hostname == host]
        return max(1, len(same_host))
    except Exception:
        return 1


def torch_threads_for_worker() -> int:
    """How many threads one task on this Dask worker should give torch.

    Dask's Nanny sets OMP_NUM_THREADS=1, so torch would use one core even
    when the host has more; conversely, letting every task use all cores
    oversubscribes the host. The host's cores are split between its worker
    processes and then between each worker's concurrent task threads.
    Call it inside a task, e.g. ``torch.set_num_threads(torch_threads_for_worker())``.
    Outside a Dask worker it returns 1.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return 1
    cores = os.cpu_count() or 1
    per_worker = cores // _workers_on_host(worker)
    nthreads = int(getattr(worker.state, "nthreads", 0) or getattr(worker, "nthreads", 1) or 1)
    return max(1, per_worker // max(1, nthreads))
