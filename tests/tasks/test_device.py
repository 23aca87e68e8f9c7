"""Encode tasks and CUDA: a worker without a usable device refuses with one line, before writing."""

from __future__ import annotations

import pytest
import torch

from mvarchive.tasks.worker import check_device


def test_cpu_always_allowed() -> None:
    check_device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has CUDA")
def test_cuda_refused_without_a_device() -> None:
    with pytest.raises(RuntimeError, match=r"^task asks for device 'cuda:0' but this worker has no usable CUDA"):
        check_device("cuda:0")
