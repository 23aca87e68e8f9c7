"""The training loop: main/aux optimizers, gradient clipping, checkpoints, resume.

Resume
------
Every ``checkpoint_every`` steps (and at the last one) the loop writes ``last.pt`` in
``output_dir``: weights, optimizer states, the step, the random states (sampler and torch,
as plain data) and the settings that define the run (:func:`run_settings`). Calling the
loop again with the same ``output_dir`` continues from there, and the result is the same as
an uninterrupted run on the same device. A ``last.pt`` written with different settings
(another ``lmbda``, codec, crop, ...) is refused with :class:`TrainingConfigMismatch`
instead of silently training on from the other run's weights.

Every ``torch.load`` here uses ``weights_only=True``: ``last.pt`` holds only tensors and
plain Python data.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from mvarchive.codecs import MultiViewCodec, create_codec, save_checkpoint, weights_digest
from mvarchive.datasets import discover_dataset

from .data import CropSampler
from .loss import RateDistortionLoss

log = logging.getLogger(__name__)

#: Format of ``last.pt``; older files (a pickled numpy Generator, no settings) are refused.
RESUME_FORMAT = 2

#: Settings that may change between a run and its resume; every other field of
#: :class:`TrainConfig` defines the run and must match ``last.pt``. ``steps`` extends (or
#: ends) a run; checkpoint/log cadence and the device do not change what is trained (on a
#: new device the run continues, but bit-exact equality with an uninterrupted run is only
#: kept on the same device); ``output_dir`` is where ``last.pt`` was found (the folder may
#: have been moved); ``storage_options`` are credentials and endpoints, never written to disk.
RESUMABLE_FIELDS = frozenset({"steps", "checkpoint_every", "log_every", "device", "output_dir", "storage_options",
                              "eval_dataset", "eval_groups", "eval_baselines"})


class TrainingConfigMismatch(ValueError):
    """``last.pt`` in the output folder belongs to a run with other settings (or to an older
    mvarchive that did not record them): resuming would mix two runs."""


@dataclass
class TrainConfig:
    """A training run. Defaults follow LDMIC's recipe scaled down for short runs.

    ``checkpoint_every=None`` (the default) checkpoints every ``steps // 10`` steps, at least
    every step and at most every 200, so a short run killed midway still leaves ``last.pt``;
    :attr:`checkpoint_interval` is the resolved value. The last step is always checkpointed.
    """

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
    checkpoint_every: int | None = None
    log_every: int = 10
    seed: int = 0
    layout: str = "auto"
    device: str = "cpu"
    storage_options: dict = field(default_factory=dict)
    #: Start from these weights (a checkpoint path/URL or a ``models:/`` URI; pin aliases first):
    #: fine-tuning and retraining. Must hold the same codec and preset.
    init: str | None = None
    #: Where the trained version's RD point is measured (default: ``dataset``), on its first
    #: ``eval_groups`` groups, plotted against ``eval_baselines`` (comma-separated, or "none").
    eval_dataset: str | None = None
    eval_groups: int = 8
    eval_baselines: str = "jpeg,x265-intra"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "crop", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < (0 if name == "steps" else 1):
                raise ValueError(f"training {name} must be an integer >= {0 if name == 'steps' else 1}, got {value!r}")
        if self.checkpoint_every is not None and (
            not isinstance(self.checkpoint_every, numbers.Integral) or self.checkpoint_every < 1
        ):
            raise ValueError(f"training checkpoint_every must be an integer >= 1 (or unset), got {self.checkpoint_every!r}")
        if not self.lmbda > 0:
            raise ValueError(f"training lmbda must be > 0, got {self.lmbda!r}")

    @property
    def checkpoint_interval(self) -> int:
        """``checkpoint_every``, or when unset ``min(200, max(1, steps // 10))``."""
        if self.checkpoint_every is not None:
            return self.checkpoint_every
        return min(200, max(1, self.steps // 10))


@dataclass
class TrainResult:
    checkpoint: str
    weights_digest: str
    steps: int
    final: dict[str, float]
    seconds: float
    #: The step ``last.pt`` was at when this call resumed from it; None for a fresh run.
    resumed_from: int | None = None


def split_parameters(model: torch.nn.Module) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """CompressAI's split: entropy-bottleneck quantiles train on the aux loss only."""
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles") and p.requires_grad]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles") and p.requires_grad]
    return main, aux


def _dataset_key(dataset: str) -> str:
    """A local dataset path made absolute, so ``data/x`` and ``/work/data/x`` are one dataset."""
    if "://" in dataset or "::" in dataset:
        return dataset
    return os.path.abspath(os.path.expanduser(dataset))


def run_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings that define a run (all of :class:`TrainConfig` but
    :data:`RESUMABLE_FIELDS`), as plain data stored in ``last.pt``."""
    settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in RESUMABLE_FIELDS}
    settings["dataset"] = _dataset_key(config.dataset)
    if settings.get("init") is None:
        settings.pop("init", None)  # runs without --init keep the settings older last.pt files recorded
    return settings


def _format_settings(settings: dict[str, Any], names: list[str]) -> str:
    return ", ".join(f"{name}={settings.get(name, '(unset)')}" for name in names)


def _check_settings(where: str, stored: dict[str, Any], wanted: dict[str, Any]) -> None:
    differing = [name for name in wanted if name not in stored or stored[name] != wanted[name]]
    differing += [name for name in stored if name not in wanted]
    if differing:
        raise TrainingConfigMismatch(
            f"{where} was trained with {_format_settings(stored, differing)}, this run asks "
            f"{_format_settings(wanted, differing)}; use another --out or the same settings"
        )


def _resume_path(config: TrainConfig) -> Path:
    return Path(config.output_dir) / "last.pt"


def load_resume_state(config: TrainConfig, model: MultiViewCodec | None = None) -> dict[str, Any] | None:
    """``last.pt`` of ``config.output_dir`` checked against ``config`` (None if there is none).

    Raises :class:`TrainingConfigMismatch` when it was written by a run with other settings,
    by an older mvarchive, or for a model with another codec config.
    """
    path = _resume_path(config)
    if not path.exists():
        return None
    where = str(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise TrainingConfigMismatch(
            f"{where} was written by an older mvarchive and does not record its training settings "
            f"(cannot resume it safely: {str(exc).splitlines()[0]}); use another --out or delete it"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT or "settings" not in state:
        raise TrainingConfigMismatch(
            f"{where} was written by an older mvarchive and does not record its training settings; "
            "use another --out or delete it"
        )
    _check_settings(where, state["settings"], run_settings(config))
    if model is not None and model.identity is not None and state.get("codec_config") is not None:
        _check_settings(where, {"codec_config": state["codec_config"]}, {"codec_config": model.identity.config})
    return state


def check_resume(config: TrainConfig) -> int | None:
    """The step a run with ``config`` would resume from (None: starts afresh), or
    :class:`TrainingConfigMismatch` if ``last.pt`` belongs to another run. Cheap enough to
    call before starting a tracked run, so a refused resume leaves no failed run behind."""
    state = load_resume_state(config)
    return None if state is None else int(state["step"])


def _torch_rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_torch_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    # a run moved to another device keeps training, only not bit-identically
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def initial_model(config: TrainConfig) -> MultiViewCodec:
    """A fresh codec from its preset, or the weights of ``config.init`` (same codec and preset)."""
    if config.init is None:
        return create_codec(config.codec, config.preset)
    from mvarchive.codecs.registry import codec_from_checkpoint_bytes, read_checkpoint_bytes

    model = codec_from_checkpoint_bytes(read_checkpoint_bytes(config.init, config.storage_options), config.init)
    identity = model.identity
    if identity is None or (identity.name, identity.preset) != (config.codec, config.preset):
        held = f"{identity.name}:{identity.preset}" if identity else "unknown"
        raise ValueError(f"--init {config.init} holds {held}, this run trains {config.codec}:{config.preset}")
    return model


def train_codec_loop(
    config: TrainConfig, on_log: Callable[[int, dict[str, float]], None] | None = None,
    model: MultiViewCodec | None = None, on_resume: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train and checkpoint; a run killed midway resumes from ``last.pt`` in ``output_dir``.

    ``on_resume(step)`` is called (and ``resumed from step N`` logged) when it does; a
    ``last.pt`` from a run with other settings raises :class:`TrainingConfigMismatch`.
    """
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = discover_dataset(config.dataset, config.layout, config.storage_options)
    if model is None:
        model = initial_model(config)
    model.check_views(len(index.cameras))
    state = load_resume_state(config, model)
    device = torch.device(config.device)
    model.to(device).train()
    main, aux = split_parameters(model)
    optimizer = torch.optim.Adam(main, lr=config.learning_rate)
    # codecs without a factorized prior (e.g. ECSIC's Laplace prior) have no aux parameters
    aux_optimizer = torch.optim.Adam(aux, lr=config.aux_learning_rate) if aux else None
    criterion = RateDistortionLoss(config.lmbda)
    sampler = CropSampler(index, config.crop, seed=config.seed, storage_options=config.storage_options)
    step = 0
    resumed_from: int | None = None
    final: dict[str, float] = {}
    resume = out / "last.pt"
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if aux_optimizer:
            aux_optimizer.load_state_dict(state["aux_optimizer"])
        step = resumed_from = int(state["step"])
        sampler.set_rng_state(state["rng"]["sampler"])
        _set_torch_rng_state(state["rng"]["torch"], device)
        final = dict(state.get("final") or {})
        log.info("resumed from step %d (%s)", step, resume)
        if on_resume:
            on_resume(step)
    settings = run_settings(config)
    codec_config = model.identity.config if model.identity is not None else None
    interval = config.checkpoint_interval
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
        if step % interval == 0 or step == config.steps:
            tmp = resume.with_suffix(".tmp")
            torch.save({
                "format": RESUME_FORMAT, "settings": settings, "codec_config": codec_config, "step": step,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "aux_optimizer": aux_optimizer.state_dict() if aux_optimizer else None,
                "rng": {"sampler": sampler.rng_state(), "torch": _torch_rng_state(device)},
                "final": final,
            }, tmp)
            tmp.replace(resume)
    model.to("cpu").eval()
    checkpoint = out / f"{config.codec}-{config.preset}.pt"
    save_checkpoint(model, checkpoint, extra={"steps": step, "lmbda": config.lmbda, "dataset": config.dataset})
    return TrainResult(str(checkpoint), weights_digest(model), step, final, time.perf_counter() - started, resumed_from)
