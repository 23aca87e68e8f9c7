"""Which task failures are worth a retry: transient I/O, never bad input or a bad bitstream."""

from __future__ import annotations

from typing import Any

from mvarchive.codecs import BitstreamError, CheckpointError
from mvarchive.datasets import DatasetError
from mvarchive.storage import ArchiveError

#: Errors that a second attempt cannot fix: retrying only delays the one clear message.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (DatasetError, BitstreamError, ArchiveError, CheckpointError)


def is_transient(error: BaseException) -> bool:
    """I/O and network errors (a flaky object store, a restarted server) are transient."""
    if isinstance(error, PERMANENT_ERRORS):
        return False
    return isinstance(error, (OSError, ConnectionError, TimeoutError)) or type(error).__name__ in (
        "ClientError", "EndpointConnectionError", "ReadTimeoutError", "ConnectTimeoutError", "ServerDisconnectedError",
    )


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry a failed task run only for a transient error."""
    try:
        state.result()
    except BaseException as error:  # noqa: BLE001 - we classify whatever the task raised
        return is_transient(error)
    return False
