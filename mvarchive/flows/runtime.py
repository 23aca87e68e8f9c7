"""Wiring a flow to its services: Prefect API, Dask task runner, MLflow store."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator, TypeVar

from prefect.settings import PREFECT_API_URL, temporary_settings

from mvarchive.infra import ServicesConfig, connect_prefect, dask_task_runner, offline_environment, prefect_env

T = TypeVar("T")


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Telemetry off for this process and the processes it starts; restored afterwards."""
    saved = {key: os.environ.get(key) for key in offline_environment()}
    os.environ.update(offline_environment())
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_on_dask(flow: Any, services: ServicesConfig, **parameters: Any) -> Any:
    """Run a flow with its tasks on Dask, against a Prefect API every worker can reach.

    Without a configured API this starts one local Prefect server for the run, so Dask
    worker processes do not each start their own temporary API.
    """
    with offline(), connect_prefect(services) as api_url, temporary_settings({PREFECT_API_URL: api_url}):
        runner = dask_task_runner(services, worker_env=prefect_env(api_url))
        return flow.with_options(task_runner=runner)(**parameters)


def run_local(flow: Callable[..., T], services: ServicesConfig, **parameters: Any) -> T:
    """Run a flow whose work stays in this process (e.g. training on the local device)."""
    with offline(), connect_prefect(services) as api_url, temporary_settings({PREFECT_API_URL: api_url}):
        return flow(**parameters)
