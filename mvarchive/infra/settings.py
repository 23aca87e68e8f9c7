"""Where mvarchive's services live, read from the environment.

A single ServicesConfig object tells a run whether to connect to existing
services (Dask scheduler, Prefect API, MLflow store) or to start local ones,
so that the same code runs on a laptop and against shared infrastructure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["ServicesConfig", "offline_environment"]


def _default_home() -> Path:
    return Path(".mvarchive").resolve()


def _parse_path(value: str) -> Path:
    return Path(value).expanduser().resolve()


def _parse_positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"expected an integer >= 1, got {value!r}")
    return number


def _parse_json_dict(value: str) -> dict[str, Any]:
    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise ValueError(f"expected a JSON object, got {type(parsed).__name__}")
    return parsed


def _parse_str(value: str) -> str:
    return value


_TRUE = {"1", "true", "yes", "on", "auto"}
_FALSE = {"0", "false", "no", "off"}


def _parse_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected on/off (or true/false, 1/0), got {value!r}")


_PARSERS = {
    "path": _parse_path,
    "int": _parse_positive_int,
    "json": _parse_json_dict,
    "str": _parse_str,
    "bool": _parse_bool,
}


def _env_field(env: str, kind: str, doc: str, **kwargs: Any) -> Any:
    return field(metadata={"env": env, "kind": kind, "doc": doc}, **kwargs)


@dataclass
class ServicesConfig:
    """How to reach (or start) the services a run needs.

    Every field can be set with the environment variable named in its
    metadata (``ServicesConfig.env_vars()`` lists them); ``from_env`` reads
    them, and explicit overrides beat the environment.
    """

    home: Path = _env_field(
        "MVARCHIVE_HOME",
        "path",
        "Directory for local state: MLflow SQLite store, Prefect home, logs.",
        default_factory=_default_home,
    )
    dask_address: str | None = _env_field(
        "MVARCHIVE_DASK_ADDRESS",
        "str",
        "Address of an existing Dask scheduler (tcp://host:port); "
        "None starts a LocalCluster for the run.",
        default=None,
    )
    dask_workers: int = _env_field(
        "MVARCHIVE_DASK_WORKERS",
        "int",
        "Worker processes of the LocalCluster (ignored with dask_address).",
        default=2,
    )
    threads_per_worker: int = _env_field(
        "MVARCHIVE_DASK_THREADS_PER_WORKER",
        "int",
        "Threads per LocalCluster worker; 1 keeps torch from oversubscribing.",
        default=1,
    )
    prefect_api_url: str | None = _env_field(
        "PREFECT_API_URL",
        "str",
        "Prefect API of a running server (http://host:port/api); "
        "None starts a local Prefect server for the run.",
        default=None,
    )
    mlflow_tracking_uri: str | None = _env_field(
        "MLFLOW_TRACKING_URI",
        "str",
        "MLflow tracking store; None means sqlite:///<home>/mlflow.db.",
        default=None,
    )
    mlflow_experiment: str = _env_field(
        "MVARCHIVE_MLFLOW_EXPERIMENT",
        "str",
        "MLflow experiment that runs are logged to.",
        default="mvarchive",
    )
    storage_options: dict[str, Any] = _env_field(
        "MVARCHIVE_STORAGE_OPTIONS",
        "json",
        "fsspec storage options (JSON object) for the archive URL, e.g. "
        'S3 keys and {"client_kwargs": {"endpoint_url": ...}}.',
        default_factory=dict,
    )
    use_stack: bool = _env_field(
        "MVARCHIVE_STACK",
        "bool",
        "Use the services of `mvarchive services up` under home while they run "
        "(for settings not given explicitly); off never does.",
        default=True,
    )

    def __post_init__(self) -> None:
        self.home = Path(self.home).expanduser().resolve()
        for name in ("dask_workers", "threads_per_worker"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def env_vars(cls) -> dict[str, str]:
        """Map each field name to the environment variable that sets it."""
        return {f.name: f.metadata["env"] for f in fields(cls)}

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> ServicesConfig:
        """Build a config from environment variables plus explicit overrides.

        Overrides that are None are dropped, so optional CLI arguments can be
        passed straight through; empty environment variables count as unset.
        While the persistent stack (``mvarchive services up``) runs under
        ``home``, its Prefect API, MLflow server, Dask scheduler and S3 options
        fill the settings that neither the environment nor an override gave
        (explicit beats stack beats default); ``MVARCHIVE_STACK=off`` or
        ``use_stack=False`` turns that off. The stack's Dask scheduler is used
        only together with its Prefect API, because its workers report to it.
        """
        env = os.environ if environ is None else environ
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown ServicesConfig fields: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"], "")
            if raw.strip() == "":
                continue
            try:
                values[f.name] = _PARSERS[f.metadata["kind"]](raw.strip())
            except ValueError as exc:
                raise ValueError(
                    f"invalid {f.metadata['env']}={raw!r}: {exc}"
                ) from exc
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values.get("use_stack", True):
            home = _parse_path(str(values["home"])) if "home" in values else _default_home()
            _fill_from_stack(values, home)
        return cls(**values)

    def resolved_mlflow_uri(self) -> str:
        """The MLflow tracking URI to use: the configured one or the local SQLite store."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.home / 'mlflow.db').as_posix()}"


def _fill_from_stack(values: dict[str, Any], home: Path) -> None:
    """Add the running stack's settings under ``home`` to ``values`` where missing."""
    from mvarchive.infra.stack_state import StackState

    state = StackState.load(home)
    if state is None or not state.all_alive():
        return
    found = state.client_settings()
    stack_api = found.pop("prefect_api_url", None)
    if stack_api is not None:
        values.setdefault("prefect_api_url", stack_api)
    if values.get("prefect_api_url") != stack_api:
        found.pop("dask_address", None)  # its workers report to the stack's Prefect API
    for name, value in found.items():
        values.setdefault(name, value)


def offline_environment() -> dict[str, str]:
    """Environment variables that keep Prefect and MLflow offline and quiet.

    Nothing here may phone home: the machines mvarchive runs on are often
    air-gapped, and telemetry calls then only add timeouts. The longer
    ephemeral-server timeout avoids spurious failures on loaded 2-core hosts.
    """
    return {
        "DO_NOT_TRACK": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
