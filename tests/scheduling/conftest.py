"""A Prefect server and one Dask worker for each scheduling test module (each serves its own
`mvarchive serve`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mvarchive.infra import PrefectServer, ServicesConfig


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sched-home")


@pytest.fixture(scope="module")
def api_url(home: Path) -> Iterator[str]:
    """A persistent-style Prefect server; its scheduler looks for due schedules every second."""
    saved = os.environ.get("PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS")
    os.environ["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = "1"
    try:
        with PrefectServer(home / "server") as server:
            yield server.api_url
    finally:
        if saved is None:
            os.environ.pop("PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS", None)
        else:
            os.environ["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = saved


@pytest.fixture(scope="module")
def dask_address(home: Path, api_url: str) -> Iterator[str]:
    """One Dask worker for all served runs (as with `services up`), not a LocalCluster per run."""
    from mvarchive.flows.runtime import dask_session

    services = ServicesConfig.from_env(home=home, dask_workers=1, prefect_api_url=api_url)
    with dask_session(services, api_url) as cluster:
        yield cluster.dask_address


