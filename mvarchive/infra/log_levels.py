"""Quiet defaults for the services' loggers and named third-party warnings, in one place.

Without ``-v`` a user sees mvarchive's own lines and progress bars only: no Prefect run states, no
MLflow database set-up, no Dask worker chatter (starts, stops, restarts of killed workers,
"event loop was unresponsive"), no HTTP client lines, no deprecation notices about code the user
cannot change. ``-v`` skips :func:`quiet_cluster_logs` and shows them all. Importing this module
imports none of the services.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Mapping, MutableMapping

__all__ = [
    "CLUSTER_LOGGERS",
    "QUIET_ENVIRONMENT",
    "QUIET_LOGGERS",
    "QUIET_WARNINGS",
    "quiet_cluster_logs",
    "quiet_environment",
    "quiet_warnings",
]

#: Loggers that report every worker start and stop at INFO and restarts of killed workers at WARNING;
#: a task whose worker died fails with its own error line, which is what a user needs.
CLUSTER_LOGGERS = (
    "distributed", "distributed.scheduler", "distributed.nanny", "distributed.worker", "distributed.core",
)

#: Logger levels without -v. Prefect's loggers keep their level (their records also feed the Prefect
#: API and UI); only Prefect's console handler is raised, through the environment below.
QUIET_LOGGERS: Mapping[str, int] = {
    **{name: logging.CRITICAL for name in CLUSTER_LOGGERS},
    "mlflow": logging.WARNING,  # "Creating initial MLflow database tables...", "Updating database tables"
    "alembic": logging.WARNING,  # MLflow's schema migrations, one INFO line per revision
    "httpx": logging.WARNING,  # one INFO line per request to the Prefect API
    "httpcore": logging.WARNING,
    "uvicorn": logging.WARNING,  # an in-process Prefect server's access log
}

#: Named third-party warnings about code mvarchive does not control: (literal start of the message,
#: category). Every other warning still shows.
QUIET_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # CompressAI scripts helpers with torch.jit at import; torch 2.14 deprecates that on every command
    ("`torch.jit.script", FutureWarning),
)

#: Environment read by libraries when they set up their logging, here (imports made later) and in
#: every process started from here (Dask workers, a per-command Prefect server), which inherit it.
#: Values already set (by the user) are kept.
QUIET_ENVIRONMENT: Mapping[str, str] = {
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # MLflow configures its own handler at import from this
    "DASK_LOGGING__DISTRIBUTED": "critical",  # a worker process initialises distributed's logging from this
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",  # run states and tracebacks stay in the API
    # the named warnings in worker processes too (Python reads this at start-up; literal prefixes)
    "PYTHONWARNINGS": ",".join(f"ignore:{start}:{category.__name__}" for start, category in QUIET_WARNINGS),
}


#: Set by the CLI's ``--debug`` (before it quiets the logs): failed flows' tracebacks stay on the console.
DEBUG_ENV = "MVARCHIVE_DEBUG"

#: What ``--debug`` keeps: Prefect's console handler, which prints a failed flow's traceback.
_DEBUG_KEEPS = ("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL",)


def _debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def quiet_environment(environ: MutableMapping[str, str] | None = None, debug: bool = False) -> dict[str, str]:
    """Set :data:`QUIET_ENVIRONMENT` in ``environ`` (default ``os.environ``) where not set (with
    ``debug``, Prefect's console level is left alone); returns what was added."""
    target = os.environ if environ is None else environ
    added = {k: v for k, v in QUIET_ENVIRONMENT.items() if k not in target and not (debug and k in _DEBUG_KEEPS)}
    target.update(added)
    return added


def quiet_warnings() -> None:
    """Ignore the :data:`QUIET_WARNINGS` (named ones only; every other warning still shows)."""
    for start, category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(start), category=category)


def quiet_cluster_logs(debug: bool | None = None) -> None:
    """Show warnings and errors of mvarchive only: third-party loggers to :data:`QUIET_LOGGERS`,
    the environment of later imports and child processes to :data:`QUIET_ENVIRONMENT`, and the
    named third-party warnings ignored. Called by the CLI unless ``-v``/``--verbose``; ``debug``
    (default: the ``--debug`` flag, through :data:`DEBUG_ENV`) keeps Prefect's console output."""
    quiet_environment(debug=_debugging() if debug is None else debug)
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    quiet_warnings()
