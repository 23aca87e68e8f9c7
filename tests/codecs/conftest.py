"""Shared by the codec tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One CPU thread: the tiny models gain nothing from threads, and on a busy 2-core machine
    OpenMP spinning made these tests 5-10x slower. Module scope, so module-scoped fixtures that
    encode run under it too. Tests that need other counts set them and restore this one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
