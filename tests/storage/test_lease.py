"""One writer per archive: the lease object, locally and on S3 (SeaweedFS)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from mvarchive.storage import ArchiveBusyError, Lease, LeaseConfig, Location, current_holder

FAST = LeaseConfig(ttl_s=2.0, renew_s=0.5, settle_s=0.2, poll_s=0.1)


def race(location: Location, writers: int = 4) -> tuple[list[str], list[str]]:
    """Start ``writers`` acquisitions at once; (winners, one-line refusals)."""
    barrier = threading.Barrier(writers)
    won, refused, leases = [], [], []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        lease = Lease(location, owner=f"writer{n}", config=FAST)
        barrier.wait()
        try:
            lease.acquire()
        except ArchiveBusyError as exc:
            with lock:
                refused.append(str(exc))
            return
        with lock:
            won.append(lease.owner)
            leases.append(lease)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for lease in leases:
        lease.release()
    return won, refused


def check_lease_rules(location: Location) -> None:
    won, refused = race(location)
    assert len(won) == 1 and len(refused) == 3, (won, refused)
    assert all("is being written by run writer" in r and "try again later" in r and "\n" not in r for r in refused)
    assert current_holder(location) is None  # released

    first = Lease(location, owner="first", config=FAST).acquire()
    try:
        holder = current_holder(location)
        assert holder is not None and holder.owner == "first"
        time.sleep(FAST.ttl_s + 0.5)  # renewed meanwhile: still held
        with pytest.raises(ArchiveBusyError, match="being written by run first on host"):
            Lease(location, owner="second", config=FAST).acquire()
        waited = {}

        def waiter() -> None:
            began = time.monotonic()
            lease = Lease(location, owner="waiter", config=FAST).acquire(wait=True, timeout_s=20)
            waited["s"] = time.monotonic() - began
            lease.release()

        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.6)
        assert "s" not in waited
    finally:
        first.release()
    thread.join(timeout=30)
    assert waited["s"] >= 0.5

    # a killed run's lease (never renewed) is taken over once it expired, not before
    dead = Lease(location, owner="dead", config=FAST)
    assert dead.try_acquire() is None  # acquired without the renewal thread: it will expire
    with pytest.raises(ArchiveBusyError):
        Lease(location, owner="next", config=FAST).acquire()
    time.sleep(FAST.ttl_s + 0.2)
    taker = Lease(location, owner="next", config=FAST).acquire()
    assert current_holder(location).owner == "next"
    with pytest.raises(ArchiveBusyError, match="lost its write lease"):
        dead.check()
    taker.release()


def test_lease_local(tmp_path):
    location = Location(str(tmp_path / "archive"))
    check_lease_rules(location)
    assert not (tmp_path / "archive" / "lease.json").exists()


def test_lease_s3(s3_bucket):
    url, options = s3_bucket
    location = Location(f"{url}/archives/leased", options)
    check_lease_rules(location)


def test_a_torn_lease_object_does_not_block(tmp_path):
    location = Location(str(tmp_path / "archive"))
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "lease.json").write_text("{not json")
    lease = Lease(location, owner="me", config=FAST).acquire()
    assert json.loads((tmp_path / "archive" / "lease.json").read_text())["owner"] == "me"
    lease.release()


def test_a_new_archive_is_created_under_its_lease(tmp_path, s3_bucket):
    from mvarchive.storage import ArchiveReader, ArchiveWriter
    from tests.storage.test_archive import make_meta

    url, options = s3_bucket
    for location in (Location(str(tmp_path / "new")), Location(f"{url}/new", options)):
        with Lease(location, config=FAST).acquire():
            ArchiveWriter.check_destination(location, make_meta())  # the lease alone is not "something else"
            ArchiveWriter.create_or_resume(location, make_meta())
        assert ArchiveReader(location).names == []
