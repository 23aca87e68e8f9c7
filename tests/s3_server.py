"""Pytest fixtures for a real S3 endpoint (SeaweedFS) on ephemeral ports.

Load with ``pytest_plugins = ["tests.s3_server"]`` in the root conftest.
One server runs per test session; every test that asks for ``s3_bucket``
gets its own fresh bucket, so tests cannot see each other's objects.
Tests that stop and restart a server (fault tests) get their own one from
``restartable_s3_server``, so the shared server never goes away.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mvarchive.infra.seaweedfs import SeaweedS3Server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3Server]:
    """One authenticated SeaweedFS S3 server for the whole test session."""
    data_dir = tmp_path_factory.mktemp("seaweedfs")
    with SeaweedS3Server(data_dir, bucket="mvarchive-tests") as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: SeaweedS3Server) -> tuple[str, dict[str, Any]]:
    """A new empty bucket: ``("s3://<bucket>", storage_options)`` for fsspec/zarr."""
    name = s3_server.make_bucket(f"t-{uuid.uuid4().hex[:16]}")
    return f"s3://{name}", copy.deepcopy(s3_server.storage_options)


@pytest.fixture(scope="module")
def restartable_s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3Server]:
    """A SeaweedFS server of the requesting test module alone, which its tests may stop and
    start again (``restart()``, ``stop()`` + ``start(same_ports=True)``): same ports, same
    data. Its access key and secret are random and distinctive, so tests can search
    records for them."""
    data_dir = tmp_path_factory.mktemp("seaweedfs-restartable")
    server = SeaweedS3Server(
        data_dir, bucket="mvarchive-faults",
        access_key=f"AKFAULT{secrets.token_hex(8).upper()}", secret_key=f"sk-{secrets.token_urlsafe(24)}",
    )
    with server:
        yield server
