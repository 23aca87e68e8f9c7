"""The persistent stack's state file, and whether its processes are still alive.

``mvarchive services up`` records each service it manages (URL, PID, process
group, command line, log, start time) in ``<home>/stack/stack.json``. Commands
read that record to decide whether to use the stack, so this module is cheap to
import (no Prefect, MLflow or Dask) and checks liveness without network calls:
a PID counts as the recorded process only if its command line and start time
still match, so a reused PID is never mistaken for (or killed as) a service.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "STATE_VERSION",
    "ServiceRecord",
    "StackState",
    "process_matches",
    "stack_dir",
    "state_path",
]

STATE_VERSION = 1


def stack_dir(home: Path) -> Path:
    """Where the stack keeps its state file and logs: ``<home>/stack``."""
    return Path(home) / "stack"


def state_path(home: Path) -> Path:
    """The state file of the stack under ``home``."""
    return stack_dir(home) / "stack.json"


@dataclass
class ServiceRecord:
    """One service of the stack: a process ``up`` started, or a configured remote one.

    ``pid`` is None for services that are only configured (``managed`` False);
    ``cmdline`` and ``create_time`` identify the process so that ``down`` never
    signals a PID that has been reused by something else.
    """

    name: str
    url: str
    kind: str
    managed: bool
    pid: int | None = None
    pgid: int | None = None
    cmdline: list[str] = field(default_factory=list)
    create_time: float | None = None
    log: str | None = None
    started_at: str | None = None
    port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def alive(self) -> bool:
        """Whether the recorded process still runs (False for unmanaged services)."""
        if self.pid is None:
            return False
        return process_matches(self.pid, self.cmdline, self.create_time)


@dataclass
class StackState:
    """Everything ``up`` recorded: services by name, in start order."""

    home: str
    services: dict[str, ServiceRecord] = field(default_factory=dict)
    created_at: str | None = None
    version: int = STATE_VERSION

    @classmethod
    def load(cls, home: Path) -> StackState | None:
        """Read the state file under ``home``; None when there is none or it is unreadable."""
        path = state_path(home)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            services = {
                name: ServiceRecord(**record) for name, record in raw.pop("services").items()
            }
            return cls(services=services, **raw)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def save(self) -> Path:
        """Write the state file atomically (a reader never sees half a file)."""
        path = state_path(Path(self.home))
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {**asdict(self), "services": {n: asdict(r) for n, r in self.services.items()}}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".stack-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2)
        os.replace(tmp, path)
        return path

    def managed(self) -> list[ServiceRecord]:
        """The services whose processes ``up`` started."""
        return [record for record in self.services.values() if record.managed]

    def client_settings(self) -> dict[str, Any]:
        """ServicesConfig field values that point a command at this stack."""
        found: dict[str, Any] = {}
        prefect = self.services.get("prefect")
        if prefect is not None:
            found["prefect_api_url"] = prefect.extra.get("api_url", f"{prefect.url}/api")
        mlflow = self.services.get("mlflow")
        if mlflow is not None:
            found["mlflow_tracking_uri"] = mlflow.url
        scheduler = self.services.get("dask-scheduler")
        if scheduler is not None:
            found["dask_address"] = scheduler.url
        s3 = self.services.get("s3")
        if s3 is not None and s3.extra.get("storage_options"):
            found["storage_options"] = dict(s3.extra["storage_options"])
        return found

    def all_alive(self) -> bool:
        """Whether every process ``up`` started is still running."""
        managed = self.managed()
        return bool(managed) and all(record.alive() for record in managed)


def process_matches(pid: int, cmdline: list[str], create_time: float | None) -> bool:
    """Whether ``pid`` runs and is the recorded process (same command line and start time).

    Zombies count as dead: a stopped child of the current process stays in the
    process table until it is reaped.
    """
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        if cmdline and process.cmdline() != cmdline:
            return False
        if create_time is not None and abs(process.create_time() - create_time) > 1.0:
            return False
        return True
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
