"""Quiet defaults for the services' loggers (importing this does not import the services)."""

from __future__ import annotations

import logging

#: Loggers that report every worker start and stop at INFO; users need their warnings only.
CLUSTER_LOGGERS = ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.worker", "distributed.core")


def quiet_cluster_logs() -> None:
    """Dask logs every worker start and stop at INFO; show warnings and errors only."""
    for name in CLUSTER_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
