"""Wiring flows to their services: one Prefect API for a session, Dask task runners, offline mode."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import Any

from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

from mvarchive.infra import ServicesConfig, connect_prefect, dask_task_runner, offline_environment, prefect_env


@contextlib.contextmanager
def scoped_environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (child processes inherit them); restore after."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def offline() -> contextlib.AbstractContextManager[None]:
    """Telemetry off for this process and the processes it starts; restored afterwards."""
    return scoped_environ(offline_environment())


@contextlib.contextmanager
def prefect_session(services: ServicesConfig) -> Iterator[str]:
    """A Prefect API every process of the session can reach (started locally if none is
    configured), so Dask worker processes do not each start a temporary API of their own.

    The UI URL is set with it, so the "View at" links of flow runs open that server's UI
    (the persistent stack's, or the per-command server's while the command runs)."""
    with offline(), connect_prefect(services) as api_url, temporary_settings(
        {PREFECT_API_URL: api_url, PREFECT_UI_URL: ui_url_for(api_url)}
    ):
        yield api_url


def ui_url_for(api_url: str) -> str:
    """The Prefect UI address that belongs to an API URL (``http://host:port/api`` -> ``http://host:port``)."""
    base = api_url.rstrip("/")
    return base[: -len("/api")] if base.endswith("/api") else base


def run_on_dask(flow: Any, services: ServicesConfig, api_url: str, **parameters: Any) -> Any:
    """Run a flow with its tasks on Dask (a LocalCluster, or the configured scheduler)."""
    worker_env = {**prefect_env(api_url), "DASK_LOGGING__DISTRIBUTED": "warning"}
    runner = dask_task_runner(services, worker_env=worker_env)
    return flow.with_options(task_runner=runner)(**parameters)


@contextlib.contextmanager
def dask_session(services: ServicesConfig, api_url: str) -> Iterator[ServicesConfig]:
    """One Dask cluster shared by several flows (saves a cluster start per flow).

    With a configured scheduler nothing is started; otherwise a LocalCluster with the
    worker environment of :func:`run_on_dask` runs for the block (its workers advertise
    ``GPU=<n>`` on a CUDA host), and the returned config points at it.
    """
    if services.dask_address:
        yield services
        return
    from distributed import LocalCluster

    from mvarchive.infra import WORKERS_PER_HOST_ENV
    from mvarchive.infra.gpu import worker_resources

    env = {**prefect_env(api_url), "DASK_LOGGING__DISTRIBUTED": "warning",
           WORKERS_PER_HOST_ENV: str(services.dask_workers)}
    with LocalCluster(
        n_workers=services.dask_workers, threads_per_worker=services.threads_per_worker, processes=True,
        host="127.0.0.1", dashboard_address="127.0.0.1:0", env=env, resources=worker_resources() or None,
    ) as cluster:
        yield dataclasses.replace(services, dask_address=cluster.scheduler_address)
