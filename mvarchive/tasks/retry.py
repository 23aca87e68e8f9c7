"""Which task failures are worth a retry: transient I/O, never bad input or a bad bitstream.

A restarted or flaky object store shows up as connection errors (botocore's
``EndpointConnectionError`` after s3fs's own retries, aiohttp's disconnects), read
timeouts, 5xx answers or generic ``OSError`` (s3fs maps unknown S3 errors to ``EIO``).
Missing objects, refused credentials and existing files are answers, not accidents: a
second attempt only delays the one clear message, as it would for a ``DatasetError`` or a
``BitstreamError``.
"""

from __future__ import annotations

from typing import Any

from mvarchive.codecs import BitstreamError, CheckpointError
from mvarchive.datasets import DatasetError
from mvarchive.storage import ArchiveError

#: Errors that a second attempt cannot fix: retrying only delays the one clear message.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (DatasetError, BitstreamError, ArchiveError, CheckpointError)

#: Prefect task options of every data task (encode a shard, restore groups): two retries with
#: back-off, only for failures :func:`retry_transient` judges transient.
TRANSIENT_RETRIES: dict[str, Any] = {}  # filled below, once retry_transient exists

#: OSErrors that are answers (the object is missing, access is refused), not outages.
PERMANENT_OS_ERRORS: tuple[type[OSError], ...] = (
    FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError,
)

#: Network errors of the S3 stack (botocore, aiohttp) by class name, matched anywhere in the
#: error's class hierarchy so that subclasses count too; no import of either package needed.
TRANSIENT_CLASS_NAMES = frozenset({
    # botocore.exceptions: ConnectionError is the base of EndpointConnectionError,
    # ConnectionClosedError, ReadTimeoutError, ConnectTimeoutError, ProxyConnectionError
    "ConnectionError", "EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError",
    "ConnectTimeoutError", "HTTPClientError", "IncompleteReadError", "ResponseStreamingError",
    # aiohttp: ClientConnectionError is the base of ServerDisconnectedError, ClientOSError, ...
    "ClientConnectionError", "ServerDisconnectedError", "ClientOSError", "ClientConnectorError",
    "ClientPayloadError", "ServerTimeoutError",
    # http.client / urllib3
    "IncompleteRead", "RemoteDisconnected", "ProtocolError", "NewConnectionError",
})

#: S3 error codes of an overloaded or restarting server.
TRANSIENT_S3_CODES = frozenset({
    "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "Throttling",
    "ThrottlingException", "RequestLimitExceeded", "BadGateway", "GatewayTimeout",
})


def _class_names(error: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(error).__mro__}


def _http_answer_is_transient(error: BaseException) -> bool | None:
    """For an HTTP error answer (botocore ``ClientError``, aiohttp ``ClientResponseError``):
    transient for 5xx, 429 and throttling codes, permanent for other answers; None when the
    error is not an HTTP answer."""
    response = getattr(error, "response", None)
    if isinstance(response, dict) and "Error" in response:  # botocore ClientError
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in TRANSIENT_S3_CODES or (isinstance(status, int) and (status >= 500 or status == 429))
    status = getattr(error, "status", None)
    if "ClientResponseError" in _class_names(error) and isinstance(status, int):  # aiohttp
        return status >= 500 or status == 429
    return None


def _is_transient_one(error: BaseException) -> bool | None:
    """True/False when this error alone decides, None when only its cause can tell."""
    if isinstance(error, PERMANENT_ERRORS) or isinstance(error, PERMANENT_OS_ERRORS):
        return False
    answer = _http_answer_is_transient(error)
    if answer is not None:
        return answer
    if isinstance(error, (ConnectionError, TimeoutError)):  # builtin; includes fsspec's FSTimeoutError
        return True
    if _class_names(error) & TRANSIENT_CLASS_NAMES:
        return True
    if isinstance(error, OSError):  # other I/O errors: EIO from s3fs, a reset socket, a full pipe
        return True
    return None


def is_transient(error: BaseException) -> bool:
    """I/O and network errors (a flaky object store, a restarted server) are transient;
    bad input, bad bitstreams, wrong archives, missing objects and refused access are not.

    An error that does not decide by itself (e.g. a library's wrapper) is judged by the
    error it was raised from; a permanent error stays permanent whatever caused it.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        verdict = _is_transient_one(current)
        if verdict is not None:
            return verdict
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return False


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry a failed task run only for a transient error."""
    try:
        state.result()
    except BaseException as error:  # noqa: BLE001 - we classify whatever the task raised
        return is_transient(error)
    return False


TRANSIENT_RETRIES.update(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_transient)
