"""Local Prefect server: starts on a free port, flows run against it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mvarchive.infra.ports import ServiceStartError, free_port, free_ports, wait_for_http
from mvarchive.infra.prefect_server import PrefectServer, connect_prefect, prefect_env
from mvarchive.infra.settings import ServicesConfig, offline_environment


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with PrefectServer(tmp_path_factory.mktemp("prefect-home")) as server:
        print(f"prefect server ready in {server.startup_seconds:.1f} s")
        yield server


@pytest.mark.slow
def test_health_and_layout(prefect_server: PrefectServer) -> None:
    assert prefect_server.api_url == f"http://127.0.0.1:{prefect_server.port}/api"
    with urllib.request.urlopen(f"{prefect_server.api_url}/health", timeout=10) as response:
        assert response.status == 200
        assert json.load(response) is True
    assert (prefect_server.home / "prefect" / "prefect.db").exists()
    assert prefect_server.log_path.exists()


@pytest.mark.slow
def test_ui_calls_this_server(prefect_server: PrefectServer) -> None:
    """The UI is told this server's API (not the default port 4200), so "View at" links work."""
    with urllib.request.urlopen(f"{prefect_server.ui_url}/ui-settings", timeout=10) as response:
        assert json.load(response)["api_url"] == prefect_server.api_url


@pytest.mark.slow
def test_flow_runs_against_server(
    prefect_server: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import flow, get_client, task
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    for name, value in offline_environment().items():
        monkeypatch.setenv(name, value)

    @task
    def double(x: int) -> int:
        return 2 * x

    @flow(name="infra-smoke")
    def smoke(x: int) -> int:
        return double(x)

    with temporary_settings(
        {PREFECT_API_URL: prefect_server.api_url, PREFECT_HOME: tmp_path / "client"}
    ):
        began = time.monotonic()
        state = smoke(21, return_state=True)
        elapsed = time.monotonic() - began
        assert state.is_completed() and state.result() == 42
        with get_client(sync_client=True) as client:
            stored = client.read_flow_run(state.state_details.flow_run_id)
    assert stored.state is not None and stored.state.is_completed()
    print(f"first flow call against the server took {elapsed:.1f} s")


@pytest.mark.slow
def test_port_in_use_fails_with_log(tmp_path: Path) -> None:
    server = PrefectServer(tmp_path)
    server.port = free_port()
    occupied = socket.socket()
    occupied.bind(("127.0.0.1", server.port))
    occupied.listen()
    try:
        with pytest.raises(ServiceStartError, match="already in use"):
            server.start()  # explicit port: no retry on another one
    finally:
        occupied.close()
    assert server._process is None


def test_connect_prefect_uses_configured_url(tmp_path: Path) -> None:
    config = ServicesConfig(home=tmp_path, prefect_api_url="http://prefect.example:4200/api")
    with connect_prefect(config) as url:
        assert url == "http://prefect.example:4200/api"
    assert not (tmp_path / "prefect").exists()  # nothing was started


def test_prefect_env_points_workers_at_api() -> None:
    env = prefect_env("http://127.0.0.1:1234/api")
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:1234/api"
    assert env["DO_NOT_TRACK"] == "true"
    assert all(isinstance(v, str) for v in env.values())


def test_wait_for_http_reports_dead_process(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "print('listening failed: boom'); raise SystemExit(4)"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    port = free_port()
    with pytest.raises(RuntimeError, match="boom") as info:
        wait_for_http(f"http://127.0.0.1:{port}/", 30, process, log_path=log)
    assert "code 4" in str(info.value)


def test_wait_for_http_times_out() -> None:
    port = free_port()
    began = time.monotonic()
    with pytest.raises(ServiceStartError, match="not ready"):
        wait_for_http(f"http://127.0.0.1:{port}/", 0.5)
    assert time.monotonic() - began < 5


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    for port in ports[:3]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
