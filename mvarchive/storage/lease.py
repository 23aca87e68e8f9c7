"""One writer at a time per archive: a lease object (``lease.json``) in the archive's store.

The lease is created with a conditional create where the filesystem has one (local files:
``O_EXCL``; S3: ``If-None-Match: *`` through s3fs' ``mode="create"``) and is always read back
afterwards, so a store that ignores the condition still cannot hand the lease to two owners
whose writes are more than the settle delay apart. The holder renews it in a background thread
while the run lives; another run takes it over only after it expired (a killed run's lease).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import ArchiveError
from .location import Location

LEASE_FILE = "lease.json"


class ArchiveBusyError(ArchiveError):
    """Another run holds the archive's lease."""


@dataclass(frozen=True)
class LeaseInfo:
    owner: str  # the run holding it
    host: str
    pid: int
    acquired: float  # epoch seconds
    expires: float

    def describe(self, location: Location) -> str:
        since = datetime.fromtimestamp(self.acquired, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return (f"{location} is being written by run {self.owner} on host {self.host} (pid {self.pid}) "
                f"since {since}; try again later, or pass --wait")


@dataclass(frozen=True)
class LeaseConfig:
    ttl_s: float = 60.0  # a lease not renewed for this long may be taken over
    renew_s: float = 15.0
    settle_s: float = 0.3  # wait before the read-back check (stores without conditional create)
    poll_s: float = 2.0  # --wait: how often to look again


class Lease:
    """Acquire with :meth:`acquire`, give back with :meth:`release` (or use ``with``)."""

    def __init__(self, location: Location, owner: str | None = None, config: LeaseConfig = LeaseConfig()) -> None:
        self.location = location
        self.owner = owner or uuid.uuid4().hex[:12]
        self.config = config
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.held = False

    # -- the object ---------------------------------------------------------------------
    def _path(self) -> tuple[Any, str]:
        fs, root = self.location.filesystem()
        return fs, f"{root.rstrip('/')}/{LEASE_FILE}"

    def read(self) -> LeaseInfo | None:
        """The lease object's record; an unreadable object reads as an expired lease."""
        fs, path = self._path()
        try:
            fs.invalidate_cache()
            data = fs.cat_file(path)
        except FileNotFoundError:
            return None
        try:
            return LeaseInfo(**json.loads(data))
        except (ValueError, TypeError):
            return LeaseInfo("unknown", "unknown", 0, 0.0, 0.0)  # foreign content: taken over

    def _info(self) -> LeaseInfo:
        now = time.time()
        return LeaseInfo(self.owner, socket.gethostname(), os.getpid(), now, now + self.config.ttl_s)

    def _create(self, info: LeaseInfo) -> bool:
        """Conditional create; False when the object exists."""
        fs, path = self._path()
        data = json.dumps(asdict(info)).encode()
        if self.location.is_local:  # written aside, then linked: exclusive and never seen half-written
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{self.owner}.{uuid.uuid4().hex[:6]}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
            return True
        try:
            fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return False
        except (OSError, ValueError) as exc:  # a store that rejects the condition itself
            text = repr(exc)
            if "PreconditionFailed" in text or "pre-condition" in text or "412" in text:
                return False  # SeaweedFS answers a taken name with 412
            if fs.exists(path):
                return False
            fs.pipe_file(path, data)
        return True

    def _write(self, info: LeaseInfo) -> None:
        fs, path = self._path()
        data = json.dumps(asdict(info)).encode()
        if self.location.is_local:
            tmp = f"{path}.{self.owner}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        else:
            fs.pipe_file(path, data)

    # -- acquire / renew / release ------------------------------------------------------
    def try_acquire(self) -> LeaseInfo | None:
        """Take the lease if free or expired; None on success, else the holder's record."""
        current = self.read()
        if current is not None and current.owner != self.owner and current.expires > time.time():
            return current
        if current is not None:  # expired (a killed run) or ours: remove, then create anew
            fs, path = self._path()
            try:
                fs.rm_file(path)
            except FileNotFoundError:
                pass
        mine = self._info()
        if not self._create(mine):
            return self.read() or mine
        time.sleep(self.config.settle_s)
        back = self.read()
        if back is None or back.owner != self.owner:
            return back or mine
        self.held = True
        return None

    def acquire(self, wait: bool = False, timeout_s: float | None = None) -> Lease:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            holder = self.try_acquire()
            if holder is None:
                self._start_renewal()
                return self
            if not wait or (deadline is not None and time.monotonic() > deadline):
                raise ArchiveBusyError(holder.describe(self.location))
            time.sleep(self.config.poll_s)

    def renew(self) -> None:
        current = self.read()
        if current is not None and current.owner != self.owner:
            self.held = False  # taken over after we failed to renew in time
            return
        now = time.time()
        self._write(LeaseInfo(self.owner, socket.gethostname(), os.getpid(),
                              current.acquired if current else now, now + self.config.ttl_s))

    def _start_renewal(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.config.renew_s):
                try:
                    self.renew()
                except Exception:  # noqa: BLE001 - a transient store error; try again next period
                    pass

        self._stop.clear()
        self._thread = threading.Thread(target=loop, name=f"lease-{self.owner}", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Raise if the lease was lost (another run took it over after it expired)."""
        current = self.read()
        if current is None or current.owner != self.owner:
            raise ArchiveBusyError(f"{self.location}: this run lost its write lease"
                                   + (f" to run {current.owner} on host {current.host}" if current else ""))

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held:
            current = self.read()
            if current is not None and current.owner == self.owner:
                fs, path = self._path()
                try:
                    fs.rm_file(path)
                except FileNotFoundError:
                    pass
        self.held = False

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def current_holder(location: Location) -> LeaseInfo | None:
    """The live lease on an archive, if any (expired ones are not holders)."""
    info = Lease(location, owner="reader").read()
    return info if info is not None and info.expires > time.time() else None
