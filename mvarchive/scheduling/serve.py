"""``mvarchive serve``: one long-running process that executes every mvarchive deployment.

Why a process worker on the ``mvarchive`` work pool, not ``flow.serve()``/``Runner``:

* A worker polls its *pool* for due runs of every deployment in it, so a schedule added,
  changed or removed while ``serve`` runs takes effect at the next poll — no re-sync, no
  restart. A ``Runner`` only polls the deployments it registered (re-applied) at start.
* A worker never touches schedules: stopping it (SIGINT/SIGTERM) leaves them active, and due
  runs wait (``Late``) for the next ``serve``. ``Runner``/``serve()`` pause them on shutdown
  unless ``pause_on_shutdown=False``.
* Deployments are created by ``schedule add`` with their own parameters; ``serve`` does not
  rewrite them (``Runner.add_deployment`` re-applies every deployment it serves).

Each flow run is a child process (``python -m prefect.engine``) that inherits this process's
environment: the services config resolved here (Prefect API, Dask scheduler or LocalCluster
per run, MLflow store, MVARCHIVE_HOME, storage options with their keys) — the same code path as
``mvarchive archive``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from mvarchive.infra.settings import ServicesConfig, offline_environment
from mvarchive.scheduling.spec import TAG, WORK_POOL

log = logging.getLogger("mvarchive.serve")

RETRAIN_FLOW_NAME = "retrain"  # the wrapper flow in retrain_flow.py
RETRAIN_DEPLOYMENT = "auto"


@dataclass
class ServeConfig:
    """How ``serve`` executes runs."""

    pool: str = WORK_POOL
    limit: int | None = 1  # flow runs at once; each archive run already uses every Dask worker
    poll_seconds: float = 10.0  # how often the pool is polled for due runs (PREFECT_WORKER_QUERY_SECONDS)
    retrain: bool = True  # also deploy retrain/auto with its drift trigger
    name: str | None = None  # worker name shown in the UI; default mvarchive-serve-<host>
    retrain_parameters: dict[str, Any] = field(default_factory=dict)  # defaults of retrain/auto (steps, crop, ...)

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {self.limit}")
        if self.poll_seconds <= 0:
            raise ValueError(f"--poll-seconds must be > 0, got {self.poll_seconds}")


def serve_environment(services: ServicesConfig, api_url: str) -> dict[str, str]:
    """Environment every flow run of this process inherits: resolved service locations (the
    runs start in a temporary working directory, so nothing may stay relative)."""
    env = {
        **offline_environment(),
        "PREFECT_API_URL": api_url,
        "MVARCHIVE_HOME": str(services.home),
        "MLFLOW_TRACKING_URI": services.resolved_mlflow_uri(),
        "MVARCHIVE_MLFLOW_EXPERIMENT": services.mlflow_experiment,
        "MVARCHIVE_DASK_WORKERS": str(services.dask_workers),
        "MVARCHIVE_DASK_THREADS_PER_WORKER": str(services.threads_per_worker),
    }
    if services.dask_address:
        env["MVARCHIVE_DASK_ADDRESS"] = services.dask_address
    return env


def apply_triggered_deployment(api_url: str, flow: Any, name: str, pool: str = WORK_POOL, tags: tuple[str, ...] = (),
                               parameters: dict[str, Any] | None = None) -> UUID:
    """Deploy ``flow`` as ``<flow>/<name>`` in the pool with the drift trigger (its accepted
    payload keys become parameters; ``parameters`` are the deployment's defaults for the
    others). Used for retrain/auto, and by tests with a tiny flow."""
    from prefect.deployments.runner import EntrypointType, RunnerDeployment

    from mvarchive.scheduling.deployments import ensure_work_pool, prefect_api, register_deployment
    from mvarchive.scheduling.events import drift_trigger, flow_parameter_names

    with prefect_api(api_url) as client:
        ensure_work_pool(client, pool)
    deployment = RunnerDeployment.from_flow(
        flow, name=name, triggers=[drift_trigger(flow_parameter_names(flow), name=f"{flow.name}/{name} on drift")],
        tags=[TAG, *tags], work_pool_name=pool, entrypoint_type=EntrypointType.MODULE_PATH,
        parameters=dict(parameters or {}),
        description="runs on every mvarchive.drift.detected event, with the event's payload as parameters",
    )
    return register_deployment(api_url, deployment)


def find_retrain_flow() -> Any | None:
    """The ``retrain`` wrapper flow, or None (with a warning) while mvarchive.flows.retrain,
    which it runs, cannot be imported."""
    try:
        import mvarchive.flows.retrain  # noqa: F401  (heavy: imported once, at serve start)
    except ImportError as exc:
        log.warning("retrain/auto not deployed: mvarchive.flows.retrain cannot be imported (%s)", exc)
        return None
    from mvarchive.scheduling.retrain_flow import triggered_retrain

    return triggered_retrain


STOPPED_MESSAGE = (
    "`mvarchive serve` stopped while this run was in flight; the next run resumes from its finished shards"
)


async def _mark_interrupted(pool: str, pids: set[int]) -> list[str]:
    """Runs of this pool executed by our (now stopped) child processes, and their subflows:
    proposed Crashed, so none stays "Running" in the UI and holds its deployment's slot."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        FlowRunFilterState,
        FlowRunFilterStateType,
        WorkPoolFilter,
        WorkPoolFilterName,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    live = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING]))
    marked: list[str] = []
    async with get_client() as client:
        runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(state=live),
                                           work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])))
        ours = [r for r in runs
                if r.infrastructure_pid and r.infrastructure_pid.split(":")[-1] in {str(p) for p in pids}]
        if ours:
            children = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
                state=live, parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[r.id for r in ours])))
            for run in [*children, *ours]:
                await client.set_flow_run_state(run.id, Crashed(message=STOPPED_MESSAGE), force=True)
                marked.append(run.name)
    return marked


async def _run_worker(config: ServeConfig, printer: Callable[[str], None]) -> None:
    import psutil
    from prefect.workers.process import ProcessWorker

    worker = ProcessWorker(
        work_pool_name=config.pool, limit=config.limit, name=config.name or f"mvarchive-serve-{socket.gethostname()}",
        create_pool_if_not_found=True,
    )
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    in_flight: set[int] = set()

    def stop() -> None:
        in_flight.update(child.pid for child in psutil.Process().children())  # flow-run processes
        task.cancel()  # type: ignore[union-attr]

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        await worker.start(printer=printer)
    except asyncio.CancelledError:
        marked = await _mark_interrupted(config.pool, in_flight) if in_flight else []
        if marked:
            printer(f"marked {len(marked)} interrupted run(s) Crashed: {', '.join(marked)}")
        printer(f"stopped serving work pool {config.pool!r}; schedules stay active, due runs wait for the next `serve`")


def serve(config: ServeConfig, services: ServicesConfig, api_url: str, printer: Callable[[str], None] = print) -> None:
    """Execute the pool's runs until SIGINT/SIGTERM. Schedules are never paused."""
    from prefect.settings import PREFECT_API_URL, PREFECT_WORKER_QUERY_SECONDS, temporary_settings

    from mvarchive.flows.runtime import scoped_environ

    with scoped_environ(serve_environment(services, api_url)), temporary_settings(
        {PREFECT_API_URL: api_url, PREFECT_WORKER_QUERY_SECONDS: config.poll_seconds}
    ):
        if config.retrain:
            retrain = find_retrain_flow()
            if retrain is not None:
                apply_triggered_deployment(api_url, retrain, RETRAIN_DEPLOYMENT, config.pool, tags=("retrain",),
                                           parameters=config.retrain_parameters)
                printer(f"deployed {RETRAIN_FLOW_NAME}/{RETRAIN_DEPLOYMENT} (runs on mvarchive.drift.detected)")
        printer(f"serving work pool {config.pool!r} of {api_url} (poll every {config.poll_seconds:g} s, "
                f"{config.limit or 'unlimited'} run(s) at a time); Ctrl-C stops, schedules stay active")
        asyncio.run(_run_worker(config, printer))
