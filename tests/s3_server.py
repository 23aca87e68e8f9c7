"""Pytest fixtures for a real S3 endpoint (SeaweedFS) on ephemeral ports.

Load with ``pytest_plugins = ["tests.s3_server"]`` in the root conftest.
One server runs per test session; every test that asks for ``s3_bucket``
gets its own fresh bucket, so tests cannot see each other's objects.
"""

from __future__ import annotations

import copy
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
