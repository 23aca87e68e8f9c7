"""The gradients of one optimizer step: accumulation, autocast, clipping, the aux loss."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

from .accelerate import autocast, first_call
from .distributed import Rank, average_gradients, no_sync, unwrap
from .loss import RateDistortionLoss

if TYPE_CHECKING:
    from .loop import TrainConfig


class Batches(Protocol):
    def next(self) -> torch.Tensor: ...


@runtime_checkable
class HasAuxLoss(Protocol):
    """A codec with entropy bottlenecks: CompressAI's auxiliary loss trains their quantiles."""

    def aux_loss(self) -> torch.Tensor: ...


def compute_gradients(
    trained: torch.nn.Module, forward: Callable[..., Any], source: Batches, criterion: RateDistortionLoss,
    optimizer: torch.optim.Optimizer, aux_optimizer: torch.optim.Optimizer | None, main: list, aux: list,
    config: TrainConfig, device: torch.device, dtype: torch.dtype | None, rank: Rank, first: bool,
) -> tuple[dict[str, float], float]:
    """Gradients of one optimizer step: ``grad_accum`` micro-batches (loss divided by it, DDP
    all-reduce on the last only), gradient clipping, then the aux loss of the entropy
    bottlenecks (once per optimizer step). Returns the batch metrics (mean over micro-batches)."""
    optimizer.zero_grad(set_to_none=True)
    if aux_optimizer:
        aux_optimizer.zero_grad(set_to_none=True)
    sums: dict[str, Any] = {}
    for micro in range(config.grad_accum):
        batch = source.next().to(device, non_blocking=True)
        with no_sync(trained, micro == config.grad_accum - 1):
            with autocast(device, dtype):
                if first and micro == 0:
                    output = first_call(forward, batch, config.compile, config.codec)
                else:
                    output = forward(batch)
            losses = criterion(output, batch)
            (losses["loss"] / config.grad_accum).backward()
        for key, value in losses.items():
            sums[key] = sums.get(key, 0) + value.detach()
    if config.clip_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(main, config.clip_grad_norm)
    model = unwrap(trained)
    if not isinstance(model, HasAuxLoss):
        raise TypeError(f"{type(model).__name__} has no aux_loss(): not a CompressAI-based codec")
    aux_loss = model.aux_loss()
    if aux_optimizer:
        aux_loss.backward()
        average_gradients(aux, rank)
    means = {key: value / config.grad_accum for key, value in sums.items()}
    view_bpp, view_mse = means.pop("view_bpp").tolist(), means.pop("view_mse").tolist()
    metrics = {key: float(value.item()) for key, value in means.items()}
    for k, (bpp, mse) in enumerate(zip(view_bpp, view_mse)):
        metrics[f"view{k}/bpp"] = bpp
        metrics[f"view{k}/psnr"] = -10.0 * math.log10(max(mse, 1e-10))
    return metrics, float(aux_loss.detach().item())
