"""The persistent service stack behind ``mvarchive services up | status | down``.

Per-command services die with the command, so their UIs and run history are
gone when one would look at them. ``stack_up`` starts long-lived processes
instead, each in its own session (they outlive the command), bound to
loopback: a Prefect server (told its own URL, so its UI works), an MLflow
tracking server with UI, optionally a SeaweedFS S3 store, and a Dask
scheduler with worker processes that report to that Prefect API and MLflow
server. What was started is recorded in ``<home>/stack/stack.json`` (see
:mod:`mvarchive.infra.stack_state`), logs go to ``<home>/stack/logs``, and
``ServicesConfig.from_env`` points every command at the stack while it runs.
``stack_down`` stops only the processes ``stack_up`` recorded, after checking
that each PID still is that process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mvarchive.infra.dask_cluster import WORKERS_PER_HOST_ENV
from mvarchive.infra.gpu import visible_gpus, worker_resources
from mvarchive.infra.ports import ServiceStartError, free_port, log_tail
from mvarchive.infra.prefect_server import PrefectServer
from mvarchive.infra.settings import ServicesConfig, offline_environment
from mvarchive.infra.stack_state import ServiceRecord, StackState, stack_dir, state_path

__all__ = [
    "DownReport",
    "ServiceStatus",
    "StackOptions",
    "UpReport",
    "stack_down",
    "stack_status",
    "stack_up",
    "ui_lines",
    "visible_gpus",
]

#: Conventional ports, used when free (stable bookmarks); otherwise any free port.
_DEFAULT_PORTS = {"prefect": 4200, "mlflow": 5000, "dask-scheduler": 8786, "dask-dashboard": 8787}
#: Start order; ``down`` stops in reverse.
_ORDER = ("s3", "prefect", "mlflow", "dask-scheduler")
_WORKER_PREFIX = "dask-worker-"


@dataclass(frozen=True)
class StackOptions:
    """What ``stack_up`` starts: worker count, S3 or not, and optional fixed ports."""

    workers: int = 2
    threads_per_worker: int = 1
    s3: bool = False
    bucket: str = "mvarchive"
    prefect_port: int | None = None
    mlflow_port: int | None = None
    scheduler_port: int | None = None
    dashboard_port: int | None = None
    startup_timeout_s: float = 180.0

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.threads_per_worker < 1:
            raise ValueError(f"threads_per_worker must be >= 1, got {self.threads_per_worker}")


@dataclass
class UpReport:
    """What ``stack_up`` did: services it started, found running, or took as configured."""

    state: StackState
    started: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class ServiceStatus:
    """One line of ``status``: a service, where it is, whether it answers."""

    name: str
    url: str
    health: str
    ok: bool
    pid: int | None
    managed: bool
    log: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DownReport:
    """What ``stack_down`` stopped (name, PID) and what it left alone, with the reason."""

    stopped: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    had_state: bool = True


# -- small helpers -----------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _pick_port(
    name: str, wanted: int | None, previous: int | None, conventional: int | None
) -> int:
    """An explicit port (0 means any; ValueError when taken); else the one used before or
    the usual one when free; else any."""
    if wanted:
        if not _port_free(wanted):
            raise ValueError(f"port {wanted} asked for {name} is in use on 127.0.0.1")
        return wanted
    for candidate in (previous, conventional):
        if candidate and _port_free(candidate):
            return candidate
    return free_port()


def _http_status(url: str, timeout_s: float) -> int | None:
    """HTTP status of a GET (error statuses included), None when nothing answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def _http_json(url: str, timeout_s: float) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout_s) as response:
        return json.load(response)


def _tcp_open(address: str, timeout_s: float) -> bool:
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if not parts.hostname or not parts.port:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=timeout_s):
            return True
    except OSError:
        return False


# -- starting ------------------------------------------------------------------


@dataclass
class _Launch:
    """A process started by this ``up`` that still has to pass its readiness check."""

    record: ServiceRecord
    process: subprocess.Popen[bytes]
    ready: Callable[[], bool]


def _spawn(
    name: str, kind: str, url: str, command: list[str], env: dict[str, str], log: Path,
    port: int | None, ready: Callable[[], bool], extra: dict[str, Any] | None = None,
) -> _Launch:  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as handle:
        handle.write(f"\n=== {_now()} {' '.join(command)}\n".encode())
        handle.flush()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=log.parent,
            start_new_session=True,  # outlives `up`; its group is stopped as one
        )
    record = ServiceRecord(
        name=name, url=url, kind=kind, managed=True, pid=process.pid, pgid=process.pid,
        log=str(log), started_at=_now(), port=port, extra=dict(extra or {}),
    )  # fmt: skip
    return _Launch(record, process, ready)


def _identify(record: ServiceRecord) -> None:
    """Record the process's command line and start time, which ``down`` checks before killing."""
    import psutil

    with contextlib.suppress(psutil.Error):
        process = psutil.Process(record.pid)
        record.cmdline = process.cmdline()
        record.create_time = process.create_time()


def _wait_ready(launches: list[_Launch], timeout_s: float) -> None:
    """Wait until every launched process passes its check; fail early when one exits."""
    deadline = time.monotonic() + timeout_s
    pending = list(launches)
    while pending:
        for launch in list(pending):
            if launch.process.poll() is not None:
                raise ServiceStartError(
                    f"{launch.record.name} exited with code {launch.process.returncode} "
                    f"before it was ready; log {launch.record.log}:\n"
                    f"{log_tail(Path(launch.record.log or ''))}"
                )
            try:
                ready = launch.ready()
            except Exception:
                ready = False
            if ready:
                pending.remove(launch)
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(launch.record.name for launch in pending)
            first = pending[0].record
            raise ServiceStartError(
                f"{names} not ready after {timeout_s:.0f} s; log {first.log}:\n"
                f"{log_tail(Path(first.log or ''))}"
            )
        time.sleep(0.2)


def _python() -> str:
    return sys.executable


def _base_env() -> dict[str, str]:
    drop = ("PREFECT_API_URL", "PREFECT_API_KEY", "MLFLOW_TRACKING_URI", "MVARCHIVE_DASK_ADDRESS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(offline_environment())
    return env


def _start_s3(home: Path, options: StackOptions) -> ServiceRecord:
    from mvarchive.infra.seaweedfs import SeaweedS3Server

    server = SeaweedS3Server(home / "s3", bucket=options.bucket, startup_timeout_s=60)
    server.start()
    process, socket_dir = server.detach()
    record = ServiceRecord(
        name="s3", url=server.endpoint_url, kind="seaweedfs", managed=True, pid=process.pid,
        pgid=process.pid, log=str(server.log_path), started_at=_now(),
        port=server.ports.get("s3.port"),
        extra={"bucket": options.bucket, "storage_options": server.storage_options,
               "socket_dir": socket_dir, "data_dir": str(server.data_dir)},
    )  # fmt: skip
    _identify(record)
    return record


def _launch_prefect(home: Path, port: int, logs: Path) -> _Launch:
    server = PrefectServer(home, port=port, log_path=logs / "prefect.log")
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    api_url = server.api_url
    return _spawn(
        "prefect", "prefect-server", server.ui_url, server.command(), server.environment(),
        logs / "prefect.log", port, lambda: _http_status(f"{api_url}/health", 2) == 200,
        extra={"api_url": api_url},
    )  # fmt: skip


def _launch_mlflow(
    home: Path, config: ServicesConfig, port: int, logs: Path, s3: ServiceRecord | None
) -> _Launch:
    env = _base_env()
    if s3 is not None:
        options = s3.extra["storage_options"]
        destination = f"s3://{s3.extra['bucket']}/mlflow-artifacts"
        env.update({
            "MLFLOW_S3_ENDPOINT_URL": s3.url,
            "AWS_ACCESS_KEY_ID": options["key"],
            "AWS_SECRET_ACCESS_KEY": options["secret"],
            "AWS_DEFAULT_REGION": options["client_kwargs"].get("region_name", "us-east-1"),
        })  # fmt: skip
    else:
        destination = str(home / "mlflow-artifacts")
    url = f"http://127.0.0.1:{port}"
    command = [
        _python(), "-m", "mlflow", "server",
        "--backend-store-uri", config.resolved_mlflow_uri(),
        "--serve-artifacts", "--artifacts-destination", destination,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    return _spawn(
        "mlflow", "mlflow-server", url, command, env, logs / "mlflow.log", port,
        lambda: _http_status(f"{url}/health", 2) == 200,
        extra={"artifacts": destination, "backend": config.resolved_mlflow_uri()},
    )  # fmt: skip


def _launch_scheduler(port: int, dashboard_port: int, logs: Path) -> _Launch:
    address = f"tcp://127.0.0.1:{port}"
    dashboard = f"http://127.0.0.1:{dashboard_port}"
    command = [
        _python(), "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
        "--port", str(port), "--dashboard-address", f"127.0.0.1:{dashboard_port}",
    ]  # fmt: skip
    return _spawn(
        "dask-scheduler", "dask-scheduler", address, command, _base_env(),
        logs / "dask-scheduler.log", port, lambda: _http_status(f"{dashboard}/health", 2) == 200,
        extra={"dashboard": dashboard, "dashboard_port": dashboard_port},
    )  # fmt: skip


def _worker_names(dashboard: str, timeout_s: float) -> set[str]:
    identity = _http_json(f"{dashboard}/json/identity.json", timeout_s)
    return {str(info.get("name")) for info in identity.get("workers", {}).values()}


def _launch_worker(
    index: int, home: Path, options: StackOptions, upstream: dict[str, str],
    gpu: str | None, logs: Path, workers: int,
) -> _Launch:  # fmt: skip
    name = f"{_WORKER_PREFIX}{index}"
    env = _base_env()
    env.update({
        "PREFECT_API_URL": upstream["prefect_api_url"],
        "MLFLOW_TRACKING_URI": upstream["mlflow_tracking_uri"],
        "MVARCHIVE_HOME": str(home),
        WORKERS_PER_HOST_ENV: str(workers),
    })  # fmt: skip
    if upstream.get("storage_options"):
        env["MVARCHIVE_STORAGE_OPTIONS"] = upstream["storage_options"]
    command = [
        _python(), "-m", "distributed.cli.dask_worker", upstream["dask_address"],
        "--host", "127.0.0.1", "--nthreads", str(options.threads_per_worker), "--nworkers", "1",
        "--name", name, "--no-dashboard", "--local-directory", str(home / "stack" / "dask"),
    ]  # fmt: skip
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
        command += ["--resources", ",".join(f"{k}={v:g}" for k, v in worker_resources(1).items())]
    dashboard = upstream["dashboard"]
    return _spawn(
        name, "dask-worker", upstream["dask_address"], command, env, logs / f"{name}.log", None,
        lambda: name in _worker_names(dashboard, 2),
        extra={"worker_name": name, "gpu": gpu, "upstream": upstream},
    )  # fmt: skip


def _remote_records(config: ServicesConfig) -> dict[str, ServiceRecord]:
    """Services configured by the environment: recorded for ``status``, never started or stopped."""
    found: dict[str, ServiceRecord] = {}
    if config.prefect_api_url:
        api = config.prefect_api_url.rstrip("/")
        ui = api[: -len("/api")] if api.endswith("/api") else api
        found["prefect"] = ServiceRecord(
            "prefect", ui, "prefect-server", managed=False, extra={"api_url": config.prefect_api_url}
        )
    if config.mlflow_tracking_uri:
        found["mlflow"] = ServiceRecord("mlflow", config.mlflow_tracking_uri, "mlflow", managed=False)
    if config.dask_address:
        found["dask-scheduler"] = ServiceRecord(
            "dask-scheduler", config.dask_address, "dask-scheduler", managed=False
        )
    endpoint = (config.storage_options.get("client_kwargs") or {}).get("endpoint_url")
    if endpoint:
        found["s3"] = ServiceRecord("s3", str(endpoint), "s3", managed=False)
    return found


def _stop_records(records: list[ServiceRecord], timeout_s: float) -> list[tuple[str, int]]:
    """SIGTERM each verified process group, wait, SIGKILL what remains; return what was stopped."""
    targets = [r for r in records if r.managed and r.pid is not None and r.alive()]
    for record in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pgid or record.pid, signal.SIGTERM)  # type: ignore[arg-type]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(r.alive() for r in targets):
        _reap(targets)
        time.sleep(0.1)
    for record in targets:
        if record.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record.pgid or record.pid, signal.SIGKILL)  # type: ignore[arg-type]
    _reap(targets)
    for record in targets:
        socket_dir = record.extra.get("socket_dir")
        if socket_dir:
            shutil.rmtree(socket_dir, ignore_errors=True)
    return [(r.name, int(r.pid)) for r in targets]  # type: ignore[arg-type]


def _reap(records: list[ServiceRecord]) -> None:
    """Collect exit statuses of our own children (when up ran in this process)."""
    for record in records:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(int(record.pid), os.WNOHANG)  # type: ignore[arg-type]


def stack_up(config: ServicesConfig, options: StackOptions) -> UpReport:
    """Start whatever of the stack is not running yet under ``config.home`` and record it.

    Idempotent: services recorded and alive are left running and reported.
    Services that ``config`` already names (a remote Prefect API, MLflow
    server, Dask scheduler or S3 endpoint) are recorded as configured and not
    started (ValueError if one that an earlier ``up`` started still runs).
    Workers are (re)started when the addresses they carry changed. If
    anything fails to start, what this call started is stopped again.
    """
    began = time.monotonic()
    home = config.home
    logs = stack_dir(home) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    previous = StackState.load(home)
    state = StackState(home=str(home), created_at=_now())
    if previous is not None:
        state.created_at = previous.created_at or state.created_at
    old = previous.services if previous is not None else {}
    remote = _remote_records(config)
    if options.s3:
        remote.pop("s3", None)  # --s3 asks for the stack's own store
    for name in remote:
        running = [r for n, r in old.items() if r.managed and r.alive() and (
            n == name or (name == "dask-scheduler" and n.startswith(_WORKER_PREFIX)))]  # fmt: skip
        if running:
            raise ValueError(
                f"{running[0].name} runs from an earlier `up` under {home}, but the configuration "
                f"names another {name} ({remote[name].url}); run `mvarchive services down` first"
            )
    report = UpReport(state=state)
    started_now: list[ServiceRecord] = []

    def keep_if_alive(name: str) -> bool:
        record = old.get(name)
        if record is not None and record.managed and record.alive():
            state.services[name] = record
            report.running.append(name)
            return True
        return False

    def port_of(name: str) -> int | None:
        record = old.get(name)
        return record.port if record is not None else None

    try:
        # S3 first: MLflow may keep its artifacts there. A store started by an
        # earlier `up --s3` keeps running (and serving) without --s3.
        if "s3" in remote:
            state.services["s3"] = remote["s3"]
        elif not keep_if_alive("s3") and options.s3:
            record = _start_s3(home, options)
            state.services["s3"] = record
            started_now.append(record)
            report.started.append("s3")
        s3_record = state.services.get("s3")
        if s3_record is not None and not s3_record.managed:
            s3_record = None

        launches: list[_Launch] = []
        for name in ("prefect", "mlflow", "dask-scheduler"):
            if name in remote:
                state.services[name] = remote[name]
                continue
            if keep_if_alive(name):
                continue
            if name == "prefect":
                port = _pick_port(name, options.prefect_port, port_of(name), _DEFAULT_PORTS[name])
                launches.append(_launch_prefect(home, port, logs))
            elif name == "mlflow":
                port = _pick_port(name, options.mlflow_port, port_of(name), _DEFAULT_PORTS[name])
                launches.append(_launch_mlflow(home, config, port, logs, s3_record))
            else:
                port = _pick_port(name, options.scheduler_port, port_of(name), _DEFAULT_PORTS[name])
                old_dash = old[name].extra.get("dashboard_port") if name in old else None
                dash = _pick_port(
                    "the Dask dashboard", options.dashboard_port, old_dash,
                    _DEFAULT_PORTS["dask-dashboard"],
                )  # fmt: skip
                if dash == port:
                    dash = free_port()
                launches.append(_launch_scheduler(port, dash, logs))
        for launch in launches:
            state.services[launch.record.name] = launch.record
            started_now.append(launch.record)
            report.started.append(launch.record.name)

        worker_launches: list[_Launch] = []
        scheduler = state.services["dask-scheduler"]
        if scheduler.managed:
            upstream = {
                "prefect_api_url": state.client_settings()["prefect_api_url"],
                "mlflow_tracking_uri": state.services["mlflow"].url,
                "dask_address": scheduler.url,
                "dashboard": scheduler.extra["dashboard"],
                "storage_options": json.dumps(s3_record.extra["storage_options"])
                if s3_record is not None
                else "",
            }
            gpus = visible_gpus()
            stale = [
                r for n, r in old.items()
                if n.startswith(_WORKER_PREFIX) and r.extra.get("upstream") != upstream
            ]  # fmt: skip
            _stop_records(stale, 15)
            for index in range(options.workers):
                name = f"{_WORKER_PREFIX}{index}"
                if old.get(name) not in stale and keep_if_alive(name):
                    continue
                gpu = gpus[index] if index < len(gpus) else None
                worker_launches.append(
                    _launch_worker(index, home, options, upstream, gpu, logs, options.workers)
                )
            for n, record in old.items():  # workers beyond --workers keep running
                if n.startswith(_WORKER_PREFIX) and n not in state.services and record not in stale:
                    keep_if_alive(n)
        for launch in worker_launches:
            state.services[launch.record.name] = launch.record
            started_now.append(launch.record)
            report.started.append(launch.record.name)

        _wait_ready(launches + worker_launches, options.startup_timeout_s)
        for launch in launches + worker_launches:
            _identify(launch.record)
    except BaseException:
        for record in started_now:
            if record.create_time is None:
                _identify(record)
        _stop_records(started_now, 15)
        raise
    report.remote = [name for name, record in state.services.items() if not record.managed]
    state.save()
    report.seconds = time.monotonic() - began
    return report


# -- status and stopping -----------------------------------------------------------


def _check(record: ServiceRecord, state: StackState, timeout_s: float) -> tuple[bool, str]:
    """Health of one recorded service: (ok, word)."""
    if record.managed and not record.alive():
        return False, "down"
    if record.kind == "prefect-server":
        api = record.extra.get("api_url", f"{record.url}/api")
        ok = _http_status(f"{api}/health", timeout_s) == 200
    elif record.kind in ("mlflow-server", "mlflow"):
        if urlsplit(record.url).scheme in ("http", "https"):
            ok = _http_status(f"{record.url.rstrip('/')}/health", timeout_s) == 200
        else:
            return True, "configured, local store"
    elif record.kind == "dask-scheduler":
        dashboard = record.extra.get("dashboard")
        if dashboard:
            ok = _http_status(f"{dashboard}/health", timeout_s) == 200
        else:
            ok = _tcp_open(record.url, timeout_s)
    elif record.kind == "dask-worker":
        scheduler = state.services.get("dask-scheduler")
        try:
            ok = scheduler is not None and record.extra["worker_name"] in _worker_names(
                scheduler.extra["dashboard"], timeout_s
            )
        except Exception:
            ok = False
        if not ok:
            return False, "not connected"
    else:  # S3: any HTTP answer (403 without credentials) means it serves
        ok = _http_status(record.url, timeout_s) is not None
    return ok, "healthy" if ok else "unhealthy"


def stack_status(
    config: ServicesConfig, timeout_s: float = 2.0
) -> tuple[StackState | None, list[ServiceStatus]]:
    """The recorded stack under ``config.home`` and one status per service.

    Without a recorded stack, services the configuration names (remote
    Prefect, MLflow, Dask, S3) are still checked and listed.
    """
    state = StackState.load(config.home)
    records = state.services if state is not None else _remote_records(config)
    probe_state = state or StackState(home=str(config.home), services=records)
    lines: list[ServiceStatus] = []
    for record in records.values():
        ok, health = _check(record, probe_state, timeout_s)
        lines.append(
            ServiceStatus(
                name=record.name, url=record.url, health=health, ok=ok,
                pid=record.pid, managed=record.managed, log=record.log,
            )  # fmt: skip
        )
    return state, lines


def stack_down(config: ServicesConfig, timeout_s: float = 20.0) -> DownReport:
    """Stop the processes ``up`` recorded under ``config.home`` and remove the state file.

    Workers go first, then the scheduler, MLflow, Prefect and S3 together. A recorded PID
    whose command line or start time no longer matches is left alone (it is
    another process now). Logs and data (Prefect and MLflow databases, S3
    objects) stay in ``home``.
    """
    state = StackState.load(config.home)
    if state is None:
        return DownReport(had_state=False)
    report = DownReport()
    workers = [r for n, r in state.services.items() if n.startswith(_WORKER_PREFIX)]
    # Workers first (they would otherwise log connection errors), the rest together.
    ordered = [workers, [state.services[n] for n in reversed(_ORDER) if n in state.services]]
    for group in ordered:
        for record in group:
            if not record.managed:
                report.skipped.append((record.name, "configured, not started by up"))
            elif not record.alive():
                report.skipped.append((record.name, "not running"))
        report.stopped += _stop_records(group, timeout_s)
    with contextlib.suppress(FileNotFoundError):
        state_path(config.home).unlink()
    return report


def ui_lines(state: StackState) -> list[str]:
    """Where to point a browser: one short line per UI or endpoint."""
    lines: list[str] = []
    services = state.services
    if "prefect" in services:
        lines.append(f"Prefect UI      {services['prefect'].url}")
    if "mlflow" in services:
        lines.append(f"MLflow UI       {services['mlflow'].url}")
    scheduler = services.get("dask-scheduler")
    if scheduler is not None:
        lines.append(f"Dask scheduler  {scheduler.url}")
        if scheduler.extra.get("dashboard"):
            lines.append(f"Dask dashboard  {scheduler.extra['dashboard']}/status")
    if "s3" in services:
        bucket = services["s3"].extra.get("bucket")
        note = f"  (bucket {bucket})" if bucket else ""
        lines.append(f"S3 endpoint     {services['s3'].url}{note}")
    return lines
