"""Free ports and readiness polling for the services mvarchive starts.

Services are started on ephemeral loopback ports so that several runs (or test
sessions) can share one machine; these helpers pick the ports and wait until a
freshly started process really answers, failing early with its log when it dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "ServiceStartError",
    "free_port",
    "free_port_pairs",
    "free_ports",
    "log_tail",
    "stop_process",
    "wait_for_http",
    "wait_until",
]


class ServiceStartError(RuntimeError):
    """A service process did not become ready (it exited, or timed out)."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now.

    The kernel picks it, so two callers rarely collide; a service must still
    be prepared for the port being taken before it binds.
    """
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Return ``count`` distinct free TCP ports on ``host``.

    All sockets stay bound until every port is chosen, so the ports are
    guaranteed distinct (repeated ``free_port`` calls may return a port twice).
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port_pairs(
    count: int, offset: int, host: str = "127.0.0.1", max_tries: int = 1000
) -> list[tuple[int, int]]:
    """Return ``count`` pairs ``(p, p + offset)`` of free, all-distinct ports.

    For servers that derive a second port from the first (SeaweedFS dials
    gRPC at HTTP port + 10000 in places even when told otherwise).
    """
    if offset <= 0:
        raise ValueError(f"offset must be > 0, got {offset}")
    held: list[socket.socket] = []
    pairs: list[tuple[int, int]] = []
    try:
        for _ in range(max_tries):
            if len(pairs) == count:
                return pairs
            first = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            first.bind((host, 0))
            port = int(first.getsockname()[1])
            if port + offset > 65535:
                first.close()
                continue
            second = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                second.bind((host, port + offset))
            except OSError:
                first.close()
                second.close()
                continue
            held += [first, second]
            pairs.append((port, port + offset))
        if len(pairs) == count:
            return pairs
        raise RuntimeError(f"found only {len(pairs)} of {count} free port pairs")
    finally:
        for sock in held:
            sock.close()


def log_tail(path: Path | None, max_lines: int = 40) -> str:
    """Return the last lines of a log file (or a note when it is unreadable)."""
    if path is None:
        return "(no log file)"
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(could not read log {path}: {exc})"
    lines = text.splitlines()[-max_lines:]
    return "\n".join(lines) if lines else "(log is empty)"


def _died_message(
    what: str, process: subprocess.Popen[bytes], log_path: Path | None
) -> str:
    return (
        f"{what} exited with code {process.returncode} before it was ready; "
        f"log {log_path}:\n{log_tail(log_path)}"
    )


def wait_until(
    check: Callable[[], bool],
    timeout_s: float,
    process: subprocess.Popen[bytes] | None = None,
    *,
    log_path: Path | None = None,
    what: str = "service",
    interval_s: float = 0.2,
) -> None:
    """Poll ``check`` until it returns True.

    Raises ServiceStartError as soon as ``process`` has exited (with the tail
    of ``log_path``) instead of waiting out the timeout, and on timeout.
    Exceptions raised by ``check`` count as "not ready yet".
    """
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while True:
        if process is not None and process.poll() is not None:
            raise ServiceStartError(_died_message(what, process, log_path))
        try:
            if check():
                return
        except Exception as exc:  # not ready yet: connection refused, 5xx, ...
            last_error = exc
        if time.monotonic() >= deadline:
            if process is not None and process.poll() is not None:
                raise ServiceStartError(_died_message(what, process, log_path))
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise ServiceStartError(
                f"{what} not ready after {timeout_s:.0f} s{detail}; "
                f"log {log_path}:\n{log_tail(log_path)}"
            )
        time.sleep(interval_s)


def wait_for_http(
    url: str,
    timeout_s: float,
    process: subprocess.Popen[bytes] | None = None,
    *,
    log_path: Path | None = None,
) -> None:
    """Wait until ``url`` answers a GET with HTTP 200.

    If ``process`` dies first, raise ServiceStartError (a RuntimeError)
    including the tail of ``log_path`` so the cause is visible right away.
    """

    # Local services must not be reached through an HTTP proxy from the env.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def answers() -> bool:
        try:
            with opener.open(url, timeout=5) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError:
            return False

    wait_until(answers, timeout_s, process, log_path=log_path, what=url)


def stop_process(
    process: subprocess.Popen[bytes],
    grace_s: float = 10.0,
) -> None:
    """Stop a service: SIGTERM its process group, SIGKILL after ``grace_s``.

    Services are started with ``start_new_session=True`` so that children
    they spawn are stopped with them.
    """
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        process.wait()
        return
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
