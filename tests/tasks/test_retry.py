"""Tasks retry transient I/O errors only: bad input and bad bitstreams fail at once."""

from __future__ import annotations

import pytest

from mvarchive.codecs import BitstreamError, CheckpointError
from mvarchive.datasets import DatasetError
from mvarchive.storage import ArchiveError
from mvarchive.tasks.retry import is_transient


@pytest.mark.parametrize("error", [DatasetError("x.png: corrupt"), BitstreamError("group 'a': truncated"),
                                   ArchiveError("different job"), CheckpointError("not a checkpoint"),
                                   ValueError("bad"), KeyError("k")])
def test_permanent_errors_are_not_retried(error):
    assert not is_transient(error)


@pytest.mark.parametrize("error", [OSError("connection reset"), ConnectionError("refused"), TimeoutError("slow")])
def test_io_errors_are_retried(error):
    assert is_transient(error)
