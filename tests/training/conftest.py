from __future__ import annotations

import pytest
import torch

from .odd_sizes import make_odd_dataset


@pytest.fixture(scope="session")
def odd_data(tmp_path_factory: pytest.TempPathFactory):
    """Two stereo groups of 250x370 and 200x264 (group-folders layout)."""
    return make_odd_dataset(tmp_path_factory.mktemp("odd"))


@pytest.fixture
def one_thread():
    """One intra-op thread: fast on 2 cores and bit-reproducible."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
