"""The training loop: main/aux optimizers, gradient clipping, checkpoints, resume."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from mvarchive.codecs import MultiViewCodec, create_codec, save_checkpoint, weights_digest
from mvarchive.datasets import discover_dataset

from .data import CropSampler
from .loss import RateDistortionLoss


@dataclass
class TrainConfig:
    """A training run. Defaults follow LDMIC's recipe scaled down for short runs."""

    dataset: str
    output_dir: str
    codec: str = "ldmic-fast"
    preset: str = "paper"
    steps: int = 1000
    batch_size: int = 8
    crop: int = 256
    lmbda: float = 1024.0
    learning_rate: float = 1e-4
    aux_learning_rate: float = 1e-3
    clip_grad_norm: float = 1.0
    checkpoint_every: int = 200
    log_every: int = 10
    seed: int = 0
    layout: str = "auto"
    device: str = "cpu"
    storage_options: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    checkpoint: str
    weights_digest: str
    steps: int
    final: dict[str, float]
    seconds: float


def split_parameters(model: torch.nn.Module) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """CompressAI's split: entropy-bottleneck quantiles train on the aux loss only."""
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles") and p.requires_grad]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles") and p.requires_grad]
    return main, aux


def train_codec_loop(
    config: TrainConfig, on_log: Callable[[int, dict[str, float]], None] | None = None,
    model: MultiViewCodec | None = None,
) -> TrainResult:
    """Train and checkpoint; a run killed midway resumes from ``last.pt`` in ``output_dir``."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = discover_dataset(config.dataset, config.layout, config.storage_options)
    model = model or create_codec(config.codec, config.preset)
    model.check_views(len(index.cameras))
    device = torch.device(config.device)
    model.to(device).train()
    main, aux = split_parameters(model)
    optimizer = torch.optim.Adam(main, lr=config.learning_rate)
    # codecs without a factorized prior (e.g. ECSIC's Laplace prior) have no aux parameters
    aux_optimizer = torch.optim.Adam(aux, lr=config.aux_learning_rate) if aux else None
    criterion = RateDistortionLoss(config.lmbda)
    sampler = CropSampler(index, config.crop, seed=config.seed, storage_options=config.storage_options)
    step = 0
    resume = out / "last.pt"
    if resume.exists():
        state = torch.load(resume, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if aux_optimizer:
            aux_optimizer.load_state_dict(state["aux_optimizer"])
        step = int(state["step"])
        sampler.rng = state["rng"]
    final: dict[str, float] = {}
    while step < config.steps:
        batch = sampler.sample(config.batch_size).to(device)
        optimizer.zero_grad(set_to_none=True)
        if aux_optimizer:
            aux_optimizer.zero_grad(set_to_none=True)
        output = model(batch)
        losses = criterion(output, batch)
        losses["loss"].backward()
        if config.clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(main, config.clip_grad_norm)
        optimizer.step()
        aux_loss = model.aux_loss()
        if aux_optimizer:
            aux_loss.backward()
            aux_optimizer.step()
        step += 1
        if not math.isfinite(losses["loss"].item()):
            raise FloatingPointError(f"training diverged at step {step}: loss {losses['loss'].item()}")
        final = {
            "loss": losses["loss"].item(), "bpp": losses["bpp"].item(), "mse": losses["mse"].item(),
            "psnr": -10.0 * math.log10(max(losses["mse"].item(), 1e-10)), "aux_loss": aux_loss.detach().item(),
        }
        if on_log and (step % config.log_every == 0 or step == config.steps):
            on_log(step, final)
        if step % config.checkpoint_every == 0 or step == config.steps:
            tmp = resume.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "aux_optimizer": aux_optimizer.state_dict() if aux_optimizer else None, "step": step, "rng": sampler.rng}, tmp)
            tmp.replace(resume)
    model.to("cpu").eval()
    checkpoint = out / f"{config.codec}-{config.preset}.pt"
    save_checkpoint(model, checkpoint, extra={"steps": step, "lmbda": config.lmbda, "dataset": config.dataset})
    return TrainResult(str(checkpoint), weights_digest(model), step, final, time.perf_counter() - started)
