"""The persistent stack (`mvarchive services up | status | down`) with real services.

One stack (Prefect, MLflow, Dask scheduler + 1 worker, SeaweedFS S3) runs for the module,
started and stopped through the CLI in a subprocess like a user would; the last test stops it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from mvarchive.infra.ports import free_ports
from mvarchive.infra.prefect_server import PrefectServer
from mvarchive.infra.settings import ServicesConfig
from mvarchive.infra.stack import StackOptions, stack_down, visible_gpus
from mvarchive.infra.stack_state import ServiceRecord, StackState, state_path

# Settings that would make `up` treat a service as remote, or commands bypass the stack.
_CONFIG_VARS = tuple(ServicesConfig.env_vars().values())


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _CONFIG_VARS}


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mvarchive.cli", "services", *args],
        capture_output=True, text=True, timeout=timeout, env=_clean_env(),
    )  # fmt: skip


def _get(url: str, accept: str = "application/json") -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"Accept": accept})
    with opener.open(request, timeout=10) as response:
        return response.status, response.read()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, StackState]]:
    home = tmp_path_factory.mktemp("stack-home")
    prefect, mlflow, dask, dashboard = free_ports(4)
    began = time.monotonic()
    result = _cli(
        "up", "--home", str(home), "--workers", "1", "--s3", "--bucket", "stack-tests",
        "--prefect-port", str(prefect), "--mlflow-port", str(mlflow),
        "--dask-port", str(dask), "--dashboard-port", str(dashboard),
    )  # fmt: skip
    print(f"services up took {time.monotonic() - began:.1f} s")
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        state = StackState.load(home)
        assert state is not None
        yield home, state
    finally:
        if state_path(home).exists():
            _cli("down", "--home", str(home))


@pytest.mark.slow
def test_up_prints_the_uis_and_status_is_healthy(stack: tuple[Path, StackState]) -> None:
    home, state = stack
    assert set(state.services) == {"s3", "prefect", "mlflow", "dask-scheduler", "dask-worker-0"}
    assert all(record.managed and record.alive() for record in state.services.values())
    result = _cli("status", "--home", str(home), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["running"] is True
    assert {s["name"]: s["health"] for s in report["services"]} == dict.fromkeys(state.services, "healthy")
    text = _cli("status", "--home", str(home))
    assert text.returncode == 0
    assert len(text.stdout.splitlines()) == len(state.services)
    assert all(len(line) <= 80 for line in text.stdout.splitlines())


@pytest.mark.slow
def test_prefect_ui_calls_its_own_api(stack: tuple[Path, StackState]) -> None:
    _, state = stack
    prefect = state.services["prefect"]
    api_url = prefect.extra["api_url"]
    assert api_url == f"{prefect.url}/api"
    assert _get(f"{api_url}/health") == (200, b"true")
    status, body = _get(f"{prefect.url}/ui-settings")
    assert status == 200 and json.loads(body)["api_url"] == api_url
    status, page = _get(f"{prefect.url}/", accept="text/html")
    assert status == 200 and b"<html" in page.lower()
    status, _ = _get(f"{state.services['dask-scheduler'].extra['dashboard']}/health")
    assert status == 200


@pytest.mark.slow
def test_from_env_uses_the_running_stack(stack: tuple[Path, StackState]) -> None:
    home, state = stack
    config = ServicesConfig.from_env({"MVARCHIVE_HOME": str(home)})
    assert config.prefect_api_url == state.services["prefect"].extra["api_url"]
    assert config.mlflow_tracking_uri == state.services["mlflow"].url
    assert config.dask_address == state.services["dask-scheduler"].url
    endpoint = config.storage_options["client_kwargs"]["endpoint_url"]
    assert endpoint == state.services["s3"].url
    # explicit beats stack; the stack's workers only come with the stack's Prefect API
    other = ServicesConfig.from_env(
        {"MVARCHIVE_HOME": str(home), "PREFECT_API_URL": "http://10.0.0.9:4200/api"},
        mlflow_tracking_uri="sqlite:///x.db",
    )
    assert other.prefect_api_url == "http://10.0.0.9:4200/api"
    assert other.mlflow_tracking_uri == "sqlite:///x.db" and other.dask_address is None
    off = ServicesConfig.from_env({"MVARCHIVE_HOME": str(home), "MVARCHIVE_STACK": "off"})
    assert (off.prefect_api_url, off.dask_address, off.storage_options) == (None, None, {})


def _where(x: int) -> dict[str, Any]:
    return {"double": 2 * x, "pid": os.getpid(), "api": os.environ.get("PREFECT_API_URL"),
            "mlflow": os.environ.get("MLFLOW_TRACKING_URI"),
            "per_host": os.environ.get("MVARCHIVE_WORKERS_PER_HOST")}  # fmt: skip


@pytest.mark.slow
def test_flow_runs_on_the_stack_and_logs_to_its_mlflow(stack: tuple[Path, StackState]) -> None:
    import cloudpickle
    from prefect import flow, get_client, task

    from mvarchive.flows.runtime import prefect_session, run_on_dask
    from mvarchive.infra.mlflow_store import ensure_experiment, mlflow_client

    home, state = stack
    config = ServicesConfig.from_env({"MVARCHIVE_HOME": str(home)})
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    try:
        where = task(_where, name="where")

        @flow(name="stack-smoke")
        def smoke(x: int) -> dict[str, Any]:
            return where.submit(x).result()

        with prefect_session(config) as api_url:
            state_ = run_on_dask(smoke, config, api_url, x=21, return_state=True)
            result = state_.result()
            with get_client(sync_client=True) as client:
                stored = client.read_flow_run(state_.state_details.flow_run_id)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert api_url == state.services["prefect"].extra["api_url"]
    assert stored.state is not None and stored.state.is_completed()
    worker = psutil.Process(state.services["dask-worker-0"].pid)
    assert result["double"] == 42
    assert result["pid"] in {p.pid for p in worker.children(recursive=True)}
    assert (result["api"], result["mlflow"], result["per_host"]) == (api_url, config.mlflow_tracking_uri, "1")

    client = mlflow_client(config)
    run = client.create_run(ensure_experiment(client, "stack-test"))
    client.log_metric(run.info.run_id, "bpp", 0.25)
    client.log_text(run.info.run_id, "hello", "notes/hello.txt")
    client.set_terminated(run.info.run_id)
    reread = mlflow_client(ServicesConfig.from_env({"MVARCHIVE_HOME": str(home)})).get_run(run.info.run_id)
    assert reread.data.metrics == {"bpp": 0.25} and reread.info.status == "FINISHED"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "notes")] == ["notes/hello.txt"]
    import fsspec  # artifacts went through the server into the stack's bucket

    found = fsspec.filesystem("s3", **config.storage_options).find("stack-tests/mlflow-artifacts")
    assert any(path.endswith(f"{run.info.run_id}/artifacts/notes/hello.txt") for path in found)


@pytest.mark.slow
def test_up_again_starts_nothing(stack: tuple[Path, StackState]) -> None:
    home, state = stack
    result = _cli("up", "--home", str(home), "--workers", "1", "--s3", "--bucket", "stack-tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing to start" in result.stdout
    assert result.stdout.count("already running") == len(state.services)
    again = StackState.load(home)
    assert again is not None
    assert {n: r.pid for n, r in again.services.items()} == {n: r.pid for n, r in state.services.items()}


@pytest.mark.slow
def test_down_stops_exactly_what_up_started(stack: tuple[Path, StackState]) -> None:
    home, state = stack
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    try:
        result = _cli("down", "--home", str(home))
        assert result.returncode == 0, result.stdout + result.stderr
        stopped = {int(line.split("pid ")[1].rstrip(")")) for line in result.stdout.splitlines() if "(pid" in line}
        assert stopped == {record.pid for record in state.services.values()}
        assert not any(psutil.pid_exists(pid) and record.alive() for pid, record in
                       ((r.pid, r) for r in state.services.values()))  # fmt: skip
        assert unrelated.poll() is None
    finally:
        unrelated.kill()
        unrelated.wait()
    assert not state_path(home).exists()
    config = ServicesConfig.from_env({"MVARCHIVE_HOME": str(home)})
    assert (config.prefect_api_url, config.mlflow_tracking_uri, config.dask_address) == (None, None, None)
    assert config.storage_options == {}
    assert _cli("status", "--home", str(home)).returncode == 3


# -- without services -------------------------------------------------------------


def test_down_never_signals_a_reused_pid(tmp_path: Path) -> None:
    """A recorded PID that now belongs to another program is left alone."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        created = psutil.Process(other.pid).create_time()
        state = StackState(home=str(tmp_path), services={
            "prefect": ServiceRecord("prefect", "http://127.0.0.1:1", "prefect-server", True, pid=other.pid,
                                     pgid=other.pid, cmdline=["python", "-m", "prefect"], create_time=created),
            "mlflow": ServiceRecord("mlflow", "http://127.0.0.1:2", "mlflow-server", True, pid=other.pid,
                                    pgid=other.pid, cmdline=psutil.Process(other.pid).cmdline(),
                                    create_time=created - 100),
        })  # fmt: skip
        state.save()
        assert oct(state_path(tmp_path).stat().st_mode & 0o777) == "0o600"  # it may hold S3 keys
        assert ServicesConfig.from_env({"MVARCHIVE_HOME": str(tmp_path)}).prefect_api_url is None
        report = stack_down(ServicesConfig(home=tmp_path, use_stack=False), timeout_s=1)
        assert report.stopped == []
        assert sorted(report.skipped) == [("mlflow", "not running"), ("prefect", "not running")]
        time.sleep(0.2)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_status_fails_when_a_recorded_service_is_down(tmp_path: Path) -> None:
    """A finished process recorded as a service makes `status` exit 1; a configured remote
    service is listed as such (and checked: nothing listens on its port)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead_port, remote_port = free_ports(2)
    StackState(home=str(tmp_path), services={
        "mlflow": ServiceRecord("mlflow", f"http://127.0.0.1:{dead_port}", "mlflow-server", True,
                                pid=gone.pid, pgid=gone.pid),
        "prefect": ServiceRecord("prefect", f"http://127.0.0.1:{remote_port}", "prefect-server", False,
                                 extra={"api_url": f"http://127.0.0.1:{remote_port}/api"}),
    }).save()  # fmt: skip
    result = _cli("status", "--home", str(tmp_path), "--json", timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    health = {s["name"]: (s["health"], s["ok"]) for s in json.loads(result.stdout)["services"]}
    assert health == {"mlflow": ("down", False), "prefect": ("unhealthy", False)}
    text = _cli("status", "--home", str(tmp_path), timeout=60).stdout
    assert "remote" in text.splitlines()[1] and "configured" in text.splitlines()[-1]


def test_stack_setting_and_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MVARCHIVE_STACK"):
        ServicesConfig.from_env({"MVARCHIVE_HOME": str(tmp_path), "MVARCHIVE_STACK": "maybe"})
    assert ServicesConfig.from_env({"MVARCHIVE_STACK": "off"}).use_stack is False
    with pytest.raises(ValueError, match="workers"):
        StackOptions(workers=0)
    assert visible_gpus() == [] or os.path.exists("/dev/nvidia0")


def test_per_command_prefect_server_knows_its_url(tmp_path: Path) -> None:
    env = PrefectServer(tmp_path, port=43210).environment()
    assert env["PREFECT_UI_API_URL"] == "http://127.0.0.1:43210/api"
    assert (env["PREFECT_SERVER_API_HOST"], env["PREFECT_SERVER_API_PORT"]) == ("127.0.0.1", "43210")
    assert "PREFECT_API_URL" not in env


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys; from mvarchive.cli.services import services_app; "
        "heavy = [m for m in ('prefect', 'mlflow', 'distributed', 'torch') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_up_refuses_a_taken_port_before_starting_anything(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _cli("up", "--home", str(tmp_path), "--prefect-port", str(port), timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: port {port} asked for prefect is in use on 127.0.0.1"
    assert not state_path(tmp_path).exists()
