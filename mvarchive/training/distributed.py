"""Data-parallel training on one machine: ``world_size`` processes, gradients all-reduced.

:func:`launch` starts ``world_size`` processes (``spawn``; gloo on CPU, NCCL on CUDA with
one GPU per rank: ``cuda`` → ``cuda:<rank>``). Every rank builds the same model (same seed,
or the same ``--init`` weights; DDP broadcasts rank 0's at wrap time anyway), draws its own
crops (rank-dependent seed, :mod:`.loader`), and steps its optimizer on the gradient averaged
over all ranks, so all ranks hold identical weights after every step. The effective batch
is ``batch_size × grad_accum × world_size``.

The main parameters go through ``DistributedDataParallel``. CompressAI's auxiliary
parameters (the entropy bottlenecks' ``quantiles``) are excluded from it: they receive no
gradient from the main loss (DDP would wait for them) and are trained by the separate
``aux_loss``, whose gradients :func:`average_gradients` all-reduces after its backward.
``find_unused_parameters=True`` because some codecs leave parameters out of a forward (e.g.
modules used only when coding); buffers are not broadcast (the coding tables that
validation rebuilds on rank 0 change shape, and nothing trained depends on them).

Rank 0 alone logs, validates, and writes ``last.pt``, ``best.pt`` and the final checkpoint;
``last.pt`` carries every rank's random state so a resume with the same ``world_size`` is
exact. Callbacks (``on_log``, ``on_resume``) run in the calling process: rank 0 sends them
through a queue.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Rank:
    """This process's place in the run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def device_for(device: str, rank: Rank) -> torch.device:
    """``cuda`` becomes ``cuda:<rank>`` for a distributed run; other devices are shared."""
    dev = torch.device(device)
    if rank.distributed and dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", rank.rank)
    return dev


def wrap(model: torch.nn.Module, rank: Rank, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel (aux ``quantiles`` left out), or as is."""
    if not rank.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ignored = [name for name, _ in model.named_parameters() if name.endswith(".quantiles")]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, ignored)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False, find_unused_parameters=True)


def no_sync(model: torch.nn.Module, last_micro_step: bool) -> AbstractContextManager[object]:
    """Skip the all-reduce on all but the last micro-batch of a gradient-accumulation step."""
    from torch.nn.parallel import DistributedDataParallel

    if last_micro_step or not isinstance(model, DistributedDataParallel):
        return nullcontext()
    return model.no_sync()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def average_gradients(params: list[torch.nn.Parameter], rank: Rank) -> None:
    """All-reduce (mean) the gradients of parameters DDP does not handle (the aux ones)."""
    if not rank.distributed:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad.div_(rank.world_size)


def gather(value: Any, rank: Rank) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order; ``[value]`` when not distributed."""
    if not rank.distributed:
        return [value]
    values: list[Any] = [None] * rank.world_size
    dist.all_gather_object(values, value)
    return values


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world_size: int, port: int, backend: str, queue: Any, run: Callable[..., Any],
            args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    if backend == "nccl":
        torch.cuda.set_device(rank)  # before the process group, so NCCL binds each rank to its GPU
    # rank 0 validates and checkpoints while the others wait in the next all-reduce
    dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=datetime.timedelta(hours=1))
    try:
        result = run(Rank(rank, world_size), queue, *args)
        if rank == 0:
            queue.put(("result", result))
        dist.barrier()
    except BaseException as exc:
        queue.put(("error", rank, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        raise
    finally:
        dist.destroy_process_group()


def launch(world_size: int, device: str, run: Callable[..., Any], args: tuple,
           on_message: Callable[[tuple], None]) -> Any:
    """Run ``run(Rank, queue, *args)`` in ``world_size`` processes; returns rank 0's result.

    Messages rank 0 puts on the queue (other than its result) are handed to ``on_message``
    in this process. A failure on any rank stops all of them and is raised here.
    """
    import torch.multiprocessing as mp

    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    if backend == "nccl" and torch.cuda.device_count() < world_size:
        raise ValueError(f"world_size {world_size} needs {world_size} GPUs, {torch.cuda.device_count()} visible")
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    port = _free_port()
    processes = [context.Process(target=_worker, args=(r, world_size, port, backend, queue, run, args))
                 for r in range(world_size)]
    for p in processes:
        p.start()
    result: Any = None
    error: tuple | None = None
    try:
        while result is None and error is None:
            if queue.empty():
                if any(p.exitcode not in (None, 0) for p in processes) or all(p.exitcode == 0 for p in processes):
                    break
                time.sleep(0.05)
                continue
            message = queue.get()
            if message[0] == "result":
                result = message[1]
            elif message[0] == "error":
                error = message
            else:
                on_message(message)
    finally:
        if result is None:  # a failed rank leaves the others waiting in a collective
            time.sleep(0.5)
            for p in processes:
                if p.is_alive():
                    p.kill()
        for p in processes:
            p.join()
    while error is None and not queue.empty():
        message = queue.get()
        if message[0] == "error":
            error = message
    if error is not None:
        log.error("training rank %d failed:\n%s", error[1], error[3])
        raise RuntimeError(f"training rank {error[1]} failed: {error[2]}")
    if result is None:
        codes = [p.exitcode for p in processes]
        raise RuntimeError(f"distributed training ended without a result (exit codes {codes})")
    return result
