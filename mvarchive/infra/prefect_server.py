"""A Prefect API server for one run, or the address of an existing one.

Tasks that run on Dask worker processes need a real Prefect API: without
one, every worker starts its own temporary server, which is slow and can
outlive the workers. A run therefore either connects to PREFECT_API_URL or
starts ``prefect server start`` on a free loopback port for its duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from mvarchive.infra.ports import ServiceStartError, free_port, stop_process, wait_for_http
from mvarchive.infra.settings import ServicesConfig, offline_environment

__all__ = ["PrefectServer", "connect_prefect", "prefect_env"]

# Variables of the parent that must not leak into the server process: the
# server is its own API and should not be told to talk to another one.
_DROP_FROM_SERVER_ENV = ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING")


def prefect_env(api_url: str) -> dict[str, str]:
    """Environment that processes running Prefect tasks (Dask workers) need.

    Points them at the run's API server and keeps them offline.
    """
    return {**offline_environment(), "PREFECT_API_URL": api_url}


def _drain_prefect_clients(timeout_s: float = 5.0) -> None:
    """Send this process's queued Prefect logs and events before the API stops.

    Otherwise Prefect's background workers try after the server is gone and
    print "Error logging to API" at interpreter exit.
    """
    if "prefect" not in sys.modules:
        return
    try:
        asyncio.get_running_loop()
        return  # draining would need awaiting; async callers drain themselves
    except RuntimeError:
        pass
    try:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker
    except ImportError:
        return
    for service in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            service.drain_all(timeout=timeout_s)


def _port_taken(log_path: Path) -> bool:
    text = log_path.read_text(encoding="utf-8", errors="replace").lower()
    return "already in use" in text


class PrefectServer:
    """``prefect server start`` on a free loopback port, as a context manager.

    State (SQLite database) lives in ``<home>/prefect`` so run history stays
    inspectable after the run; the server log goes to ``log_path``
    (default ``<home>/prefect-server.log``). The server is told its own
    address, so its UI calls the right API and the "View at" links that
    flow runs print open working pages.
    """

    def __init__(
        self,
        home: Path,
        *,
        port: int | None = None,
        startup_timeout_s: float = 120.0,
        stop_timeout_s: float = 10.0,
        log_path: Path | None = None,
    ) -> None:
        self.home = Path(home).expanduser().resolve()
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.log_path = Path(log_path) if log_path else self.home / "prefect-server.log"
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The server process while started, else None."""
        return self._process

    @property
    def api_url(self) -> str:
        """The API URL clients set as PREFECT_API_URL."""
        if self.port is None:
            raise RuntimeError("PrefectServer is not started")
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        """The address of the Prefect UI in a browser."""
        return self.api_url[: -len("/api")]

    def command(self) -> list[str]:
        """The command line that starts the server (using this interpreter's Prefect)."""
        return [
            sys.executable, "-m", "prefect", "server", "start",
            "--host", "127.0.0.1", "--port", str(self.port), "--analytics-off",
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        """The server process's environment: offline, its own home, its own address.

        Without PREFECT_UI_API_URL the UI would call the default port 4200
        (the server's API URL setting is not derived from ``--port``).
        """
        if self.port is None:
            raise RuntimeError("the port is chosen by start()")
        env = {k: v for k, v in os.environ.items() if k not in _DROP_FROM_SERVER_ENV}
        env.update(offline_environment())
        env.update({
            "PREFECT_HOME": str(self.home / "prefect"),
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(self.port),
            "PREFECT_UI_API_URL": self.api_url,
            "PREFECT_UI_URL": self.ui_url,
        })  # fmt: skip
        return env

    def start(self) -> PrefectServer:
        """Start the server and wait until ``/api/health`` answers.

        A port picked here can be taken by someone else before the server
        binds it; then another free port is tried (up to three times).
        """
        if self._process is not None:
            raise RuntimeError("PrefectServer already started")
        (self.home / "prefect").mkdir(parents=True, exist_ok=True)
        pick_port = self.port is None
        began = time.monotonic()
        for attempt in range(3 if pick_port else 1):
            if pick_port:
                self.port = free_port()
            try:
                self._launch()
                break
            except ServiceStartError:
                if attempt == 2 or not pick_port or not _port_taken(self.log_path):
                    raise
        self.startup_seconds = time.monotonic() - began
        return self

    def _launch(self) -> None:
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                start_new_session=True,  # own process group: stop kills all of it
            )
        try:
            wait_for_http(
                f"{self.api_url}/health",
                self.startup_timeout_s,
                self._process,
                log_path=self.log_path,
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``stop_timeout_s``.

        Pending Prefect logs/events of this process are sent first.
        """
        if self._process is not None:
            if self._process.poll() is None:
                _drain_prefect_clients()
            stop_process(self._process, self.stop_timeout_s)
            self._process = None

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def connect_prefect(config: ServicesConfig) -> Iterator[str]:
    """Yield the Prefect API URL for a run, starting a local server if needed.

    With ``config.prefect_api_url`` set nothing is started; otherwise a
    PrefectServer under ``config.home`` runs for the duration of the block.
    """
    if config.prefect_api_url:
        yield config.prefect_api_url
        return
    with PrefectServer(config.home) as server:
        yield server.api_url

