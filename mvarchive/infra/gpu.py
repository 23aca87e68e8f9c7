"""GPU workers: how many CUDA devices a host has, what its Dask workers advertise, and
how a flow routes a task to them.

Placement uses Dask worker *resources*: a worker on a CUDA host advertises
``GPU=<n>``; a task submitted inside :func:`gpu_placement` ("cuda…") asks the
scheduler for ``GPU=1`` and so runs only on such workers, while CPU tasks carry
no requirement and never wait for them. A task asking for a resource no worker
has would stay Pending forever, so :func:`require_gpu_workers` checks first.

Nothing here imports torch or initialises CUDA: counting devices asks
``nvidia-smi`` (or NVML through torch when torch is already imported), so a
parent process that forks workers afterwards keeps a usable CUDA.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "GPU_RESOURCE",
    "NoGpuWorkerError",
    "cuda_device_count",
    "gpu_placement",
    "gpu_workers",
    "is_cuda_device",
    "placement_resources",
    "require_gpu_for_flow",
    "require_gpu_workers",
    "validate_device",
    "visible_gpus",
    "worker_resources",
]

#: The Dask worker resource name a GPU worker advertises and a GPU task requires.
GPU_RESOURCE = "GPU"


class NoGpuWorkerError(ValueError):
    """A task needs a GPU worker and the Dask cluster has none (a configuration mistake: one
    error line, like every ValueError the CLI reports)."""


def is_cuda_device(device: str) -> bool:
    """True for "cuda" and "cuda:N" (the devices that need a GPU worker)."""
    return device.strip().lower().startswith("cuda")


def validate_device(device: str) -> str:
    """Return ``device`` normalised ("cpu", "cuda", "cuda:N") or raise ValueError naming the fix."""
    value = device.strip().lower()
    if value == "cpu" or value == "cuda":
        return value
    if value.startswith("cuda:") and value[5:].isdigit():
        return value
    raise ValueError(f"device {device!r} is not one of 'cpu', 'cuda', 'cuda:N'")


def visible_gpus() -> list[str]:
    """CUDA device ids this host's processes may use (empty without CUDA).

    Asks ``nvidia-smi -L`` (importing torch would cost seconds and may initialise
    CUDA) and honours CUDA_VISIBLE_DEVICES; no driver tool means no GPU, except
    when torch is already imported, whose NVML count is then used.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return []
    count = _smi_count()
    if count is None:
        count = _torch_nvml_count()
    ids = [str(i) for i in range(count)]
    if visible is not None:
        ids = [d.strip() for d in visible.split(",") if d.strip()][:count]
    return ids


def _smi_count() -> int | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))


def _torch_nvml_count() -> int:
    """torch's NVML device count (no CUDA context), only if torch is imported already."""
    torch = sys.modules.get("torch")
    if torch is None:
        return 0
    try:
        if torch.cuda.is_initialized():
            return int(torch.cuda.device_count())
        nvml = getattr(torch.cuda, "_device_count_nvml", None)
        return max(0, int(nvml())) if nvml is not None else 0
    except Exception:
        return 0


def cuda_device_count() -> int:
    """How many CUDA devices this process may use (0 without a driver or torch CUDA)."""
    return len(visible_gpus())


def worker_resources(count: int | None = None) -> dict[str, float]:
    """The Dask resources a worker on this host advertises: ``{"GPU": n}`` or ``{}``.

    ``count`` overrides detection (e.g. a worker pinned to one device passes 1).
    """
    n = cuda_device_count() if count is None else int(count)
    return {GPU_RESOURCE: float(n)} if n > 0 else {}


def placement_resources(device: str) -> dict[str, float]:
    """The resources one task on ``device`` requires (``{"GPU": 1}`` for CUDA, else none)."""
    return {GPU_RESOURCE: 1.0} if is_cuda_device(validate_device(device)) else {}


@contextlib.contextmanager
def gpu_placement(device: str) -> Iterator[None]:
    """Route Prefect tasks ``.submit()``-ted in the block to GPU workers when ``device`` is CUDA.

    The requirement travels as a Dask annotation: prefect-dask's client calls
    ``distributed.Client.submit`` synchronously in the submitting thread, which
    merges ``dask.get_annotations()`` (a context variable) into the task's
    annotations (checked by tests/infra/test_gpu_routing.py, since annotations
    were reported lost in other versions: Prefect #21608, prefect-dask #47).
    For "cpu" the block adds nothing.
    """
    resources = placement_resources(device)
    if not resources:
        yield
        return
    import dask

    with dask.annotate(resources=resources):
        yield


def gpu_workers(workers: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Addresses of the workers (``scheduler_info()["workers"]``) that advertise a GPU."""
    return [
        address for address, info in workers.items()
        if float((info.get("resources") or {}).get(GPU_RESOURCE, 0) or 0) >= 1
    ]  # fmt: skip


def require_gpu_workers(client: Any, device: str, what: str = "task") -> None:
    """Raise :class:`NoGpuWorkerError` when ``device`` is CUDA and no worker of ``client``'s
    cluster advertises a GPU (such tasks would otherwise wait forever)."""
    if not placement_resources(device):
        return
    workers = client.scheduler_info(n_workers=-1)["workers"]
    if not gpu_workers(workers):
        raise NoGpuWorkerError(
            f"{what} asks for device {device!r} but none of the {len(workers)} Dask worker(s) at "
            f"{client.scheduler.address} advertises the {GPU_RESOURCE} resource (start workers on a "
            "CUDA host, e.g. `mvarchive services up` there, or use device 'cpu')"
        )


def require_gpu_for_flow(device: str, what: str = "task") -> None:
    """Inside a flow: refuse a CUDA ``device`` the flow's tasks cannot get, before anything runs.

    On a DaskTaskRunner some worker must advertise the GPU resource; on any other runner
    tasks run in this process, which must see a CUDA device. Nothing is checked for "cpu".
    """
    if not placement_resources(device):
        return
    from prefect.context import FlowRunContext
    from prefect_dask import DaskTaskRunner

    context = FlowRunContext.get()
    runner = getattr(context, "task_runner", None)
    if isinstance(runner, DaskTaskRunner):
        require_gpu_workers(runner.client, device, what)  # the client the tasks are submitted with
    elif cuda_device_count() == 0:
        raise NoGpuWorkerError(
            f"{what} asks for device {device!r} but this process sees no CUDA device and the flow "
            "runs its tasks here (no Dask task runner); use device 'cpu' or run on a CUDA host"
        )
