"""The training loop: it orchestrates; each concern lives in its own module.

One optimizer step (:func:`.step.compute_gradients`): ``grad_accum`` batches from :mod:`.loader`
(in-process or DataLoader workers) through the forward (:mod:`.accelerate`: bf16 autocast,
channels_last, ``torch.compile``), the loss of :mod:`.loss` (MSE or MS-SSIM, ECSIC's
normalisation for ECSIC, per-view bpp/PSNR), gradient clipping, the learning rate of
:mod:`.schedule`, then the aux step of the entropy bottlenecks. Every ``val_every`` steps
:mod:`.validation` codes held-out groups for real and keeps ``best.pt``; with
``world_size > 1`` :mod:`.distributed` runs the same loop in several processes.

``final`` (logged through ``on_log`` every ``log_every`` steps, and in :class:`TrainResult`)
holds ``loss``, ``bpp``, ``mse``, ``psnr`` (and ``ms_ssim``), ``aux_loss``, ``lr`` and
``view{k}/bpp``, ``view{k}/psnr`` of the last batch; validation steps add ``val/…``.

Resume
------
Every ``checkpoint_every`` steps (and at the last one) the loop writes ``last.pt`` in
``output_dir``: weights, optimizer states, the step, the random states (sampler and torch,
as plain data) and the settings that define the run (:func:`run_settings`). Calling the
loop again with the same ``output_dir`` continues from there, and the result is the same as
an uninterrupted run on the same device. A ``last.pt`` written with different settings
(another ``lmbda``, codec, crop, ...) is refused with :class:`TrainingConfigMismatch`
instead of silently training on from the other run's weights.

``last.pt`` also holds the schedule's state and the best validation cost so far; with
``world_size > 1`` it holds every rank's random states. Exactness needs ``loader_workers=0``
(see :mod:`.loader`) and, for the paper schedule, the same ``steps`` (see :mod:`.schedule`).

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mvarchive.codecs import MultiViewCodec, check_view_count, save_checkpoint, weights_digest
from mvarchive.datasets import discover_dataset

from .accelerate import (
    autocast_dtype,
    compiled_forward,
    fp32_entropy_models,
    to_channels_last,
    use_channels_last,
)
from .distributed import Rank, device_for, gather, launch, wrap
from .init import initial_model
from .loader import BatchSource, sampler_seed
from .loss import RateDistortionLoss, loss_normalization
from .schedule import StepSchedule
from .step import compute_gradients
from .validation import Validator, per_view, split_validation

log = logging.getLogger(__name__)

#: Format of ``last.pt``; older files (a pickled numpy Generator, no settings) are refused.
RESUME_FORMAT = 2

#: Settings that may change between a run and its resume; every other field of
#: :class:`TrainConfig` defines the run and must match ``last.pt``. ``steps`` extends (or
#: ends) a run; checkpoint/log cadence and the device do not change what is trained (on a
#: new device the run continues, but bit-exact equality with an uninterrupted run is only
#: kept on the same device); ``output_dir`` is where ``last.pt`` was found (the folder may
#: have been moved); ``storage_options`` are credentials and endpoints, never written to disk.
#: Validation (``val_*``) only reads the weights (but holding groups out of training does
#: change the run: that is recorded as ``held_out_groups``, see :func:`run_settings`);
#: ``precision``, ``channels_last``, ``compile`` and ``loader_workers`` change how fast (and,
#: like the device, in which rounding) the same run is computed, not what it trains on: a run
#: may resume with other values, exactly only with the same ones (and ``loader_workers=0``,
#: see :mod:`.loader`).
RESUMABLE_FIELDS = frozenset({"steps", "checkpoint_every", "log_every", "device", "output_dir", "storage_options",
                              "eval_dataset", "eval_groups", "eval_baselines", "val_every", "val_dataset",
                              "val_groups", "precision", "channels_last", "compile", "loader_workers"})

#: Defining fields added after ``last.pt`` format 2, with the value runs before them had: left
#: out of the recorded settings at that value, so older ``last.pt`` files still resume.
_LEGACY_VALUES: dict[str, Any] = {"init": None, "metric": "mse", "lr_schedule": "constant", "grad_accum": 1,
                                  "world_size": 1, "held_out_groups": 0}

METRICS = ("mse", "ms-ssim")
PRECISIONS = ("auto", "fp32", "bf16")


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
    #: Distortion trained on: "mse" (λ·MSE + bpp, λ ≈ 256…8192) or "ms-ssim"
    #: (λ·(1 − MS-SSIM) + bpp, the papers' λ ≈ 8…256); see :mod:`.loss`.
    metric: str = "mse"
    #: "paper" (the codec's published schedule mapped onto ``steps``) or "constant"; see :mod:`.schedule`.
    lr_schedule: str = "paper"
    #: Every N steps, measure real bytes on the validation set and keep ``best.pt``; None: never.
    val_every: int | None = None
    #: Validation data; None: the last ``val_groups`` groups of ``dataset``, held out of training
    #: when it has more groups than that.
    val_dataset: str | None = None
    val_groups: int = 4
    #: Optimizer step every ``grad_accum`` batches: the effective batch is ``batch_size * grad_accum``.
    grad_accum: int = 1
    #: "auto" (bf16 autocast on CUDA, fp32 elsewhere), "fp32" or "bf16" (entropy models stay fp32).
    precision: str = "auto"
    #: channels_last memory format; None: on for CUDA.
    channels_last: bool | None = None
    #: ``torch.compile`` the model's forward.
    compile: bool = False
    #: DataLoader worker processes drawing crops (0: in the training process, resume exact).
    loader_workers: int = 0
    #: Data-parallel processes on this machine (DDP; one per GPU on CUDA, gloo on CPU).
    world_size: int = 1

    def __post_init__(self) -> None:
        minimum = {"steps": 0, "batch_size": 1, "crop": 1, "log_every": 1, "val_groups": 1, "grad_accum": 1,
                   "loader_workers": 0, "world_size": 1}
        for name, low in minimum.items():
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
                raise ValueError(f"training {name} must be an integer >= {low}, got {value!r}")
        for name in ("checkpoint_every", "val_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1):
                raise ValueError(f"training {name} must be an integer >= 1 (or unset), got {value!r}")
        if not self.lmbda > 0:
            raise ValueError(f"training lmbda must be > 0, got {self.lmbda!r}")
        from .schedule import SCHEDULES

        for name, allowed in (("metric", METRICS), ("lr_schedule", SCHEDULES), ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"training {name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.metric == "ms-ssim" and self.crop < 32:
            raise ValueError(f"training crop must be >= 32 for metric ms-ssim (2 scales of an 11x11 window), "
                             f"got {self.crop}")
        if self.channels_last is not None and not isinstance(self.channels_last, bool):
            raise ValueError(f"training channels_last must be true, false or unset, got {self.channels_last!r}")
        if self.val_dataset is not None and self.val_every is None:
            raise ValueError("training val_dataset is set but val_every is not: say how often to validate")

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
    #: ``best.pt``: the weights with the lowest validation RD cost (None without validation).
    best_checkpoint: str | None = None
    #: Each view's bpp and PSNR (``{"view0": {"bpp": …, "psnr": …}, …}``) of the last
    #: validation, or of the last training batch when there was none.
    per_view: dict | None = None


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
    :data:`RESUMABLE_FIELDS`, plus ``held_out_groups``), as plain data stored in ``last.pt``."""
    settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in RESUMABLE_FIELDS}
    settings["dataset"] = _dataset_key(config.dataset)
    # validating on the default split trains on fewer groups (at most this many fewer)
    holds_out = config.val_every is not None and config.val_dataset is None
    settings["held_out_groups"] = config.val_groups if holds_out else 0
    for name, legacy in _LEGACY_VALUES.items():
        if name in settings and settings[name] == legacy:
            settings.pop(name)  # runs at the old behaviour keep the settings older last.pt files recorded
    return settings


def _format_settings(settings: dict[str, Any], names: list[str]) -> str:
    def value(name: str) -> Any:
        if name in settings:
            return settings[name]
        return _LEGACY_VALUES[name] if name in _LEGACY_VALUES else "(unset)"

    return ", ".join(f"{name}={value(name)}" for name in names)


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


def train_codec_loop(
    config: TrainConfig, on_log: Callable[[int, dict[str, float]], None] | None = None,
    model: MultiViewCodec | None = None, on_resume: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train and checkpoint; a run killed midway resumes from ``last.pt`` in ``output_dir``.

    ``on_resume(step)`` is called (and ``resumed from step N`` logged) when it does; a
    ``last.pt`` from a run with other settings raises :class:`TrainingConfigMismatch`.
    With ``world_size > 1`` the run is data-parallel over that many processes
    (:mod:`.distributed`); the callbacks still run in this process.
    """
    if config.world_size == 1:
        return _train(Rank(), None, config, on_log, model, on_resume)
    load_resume_state(config)  # refuse another run's last.pt before starting any process

    def relay(message: tuple) -> None:
        if message[0] == "log" and on_log:
            on_log(message[1], message[2])
        elif message[0] == "resume" and on_resume:
            on_resume(message[1])

    return launch(config.world_size, config.device, _train, (config, None, model, None), relay)


def _train(
    rank: Rank, queue: Any, config: TrainConfig, on_log: Callable[[int, dict[str, float]], None] | None,
    model: MultiViewCodec | None, on_resume: Callable[[int], None] | None,
) -> TrainResult:
    """One process's training loop (the only one unless distributed)."""
    if queue is not None and rank.main:  # distributed: rank 0 relays the callbacks to the launcher
        def on_log(step: int, metrics: dict[str, float]) -> None:
            queue.put(("log", step, metrics))

        def on_resume(step: int) -> None:
            queue.put(("resume", step))

    started = time.perf_counter()
    torch.manual_seed(config.seed)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = discover_dataset(config.dataset, config.layout, config.storage_options)
    if model is None:
        model = initial_model(config)
    check_view_count(model, len(index.cameras))
    if rank.rank > 0:  # same initial weights on every rank, but each draws its own quantization noise
        torch.manual_seed(sampler_seed(config.seed, rank.rank))
    state = load_resume_state(config, model)
    device = device_for(config.device, rank)
    validator = None
    if config.val_every is not None:
        index, val_index = split_validation(index, config.val_dataset, config.val_groups, config.layout,
                                            config.storage_options)
        if rank.main:
            extra = {"lmbda": config.lmbda, "dataset": config.dataset, "metric": config.metric}
            validator = Validator(val_index, out, config.lmbda, config.metric, extra, config.storage_options)
    model.to(device).train()
    if use_channels_last(config.channels_last, device):
        to_channels_last(model)
    main, aux = split_parameters(model)
    optimizer = torch.optim.Adam(main, lr=config.learning_rate)
    # codecs without a factorized prior (e.g. ECSIC's Laplace prior) have no aux parameters
    aux_optimizer = torch.optim.Adam(aux, lr=config.aux_learning_rate) if aux else None
    schedule = StepSchedule(optimizer, config.lr_schedule, config.codec, config.steps)
    criterion = RateDistortionLoss(config.lmbda, config.metric, loss_normalization(config.codec))
    if config.metric == "ms-ssim" and config.lmbda > 1000 and rank.main:
        log.warning("lmbda %g is in the MSE range; MS-SSIM models use 8..256 (LDMIC, CAMSIC)", config.lmbda)
    step = 0
    resumed_from: int | None = None
    final: dict[str, float] = {}
    sampler_state = None
    resume = out / "last.pt"
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if aux_optimizer:
            aux_optimizer.load_state_dict(state["aux_optimizer"])
        step = resumed_from = int(state["step"])
        rng = state["rng"]["ranks"][rank.rank] if "ranks" in state["rng"] else state["rng"]
        sampler_state = rng["sampler"]
        _set_torch_rng_state(rng["torch"], device)
        final = dict(state.get("final") or {})
        if state.get("schedule") is not None:
            extended_from = schedule.load_state_dict(state["schedule"])
            if extended_from is not None and rank.main:
                log.warning("learning-rate schedule re-mapped from %d to %d steps (run extended)", extended_from,
                            config.steps)
        if validator is not None and (state.get("validation") or {}).get("key") == _validation_key(config):
            validator.best_cost = float(state["validation"]["best_cost"])
        if rank.main:
            log.info("resumed from step %d (%s)", step, resume)
            if on_resume:
                on_resume(step)
    source = BatchSource(index, config.crop, config.batch_size, config.seed, rank=rank.rank,
                         workers=config.loader_workers, start=step, state=sampler_state,
                         pin_memory=device.type == "cuda", storage_options=config.storage_options)
    dtype = autocast_dtype(config.precision, device)
    hooks = fp32_entropy_models(model) if dtype is not None else []
    trained = wrap(model, rank, device)
    forward = compiled_forward(trained, config.compile)
    settings = run_settings(config)
    codec_config = model.identity.config if model.identity is not None else None
    interval = config.checkpoint_interval
    val_metrics: dict[str, float] = {}
    try:
        while step < config.steps:
            losses, aux_loss = compute_gradients(
                trained, forward, source, criterion, optimizer, aux_optimizer, main, aux, config, device, dtype,
                rank, first=step == resumed_from or step == 0,
            )
            lr = schedule.apply(step)
            optimizer.step()
            if aux_optimizer:
                aux_optimizer.step()
            step += 1
            if not math.isfinite(losses["loss"]):
                raise FloatingPointError(f"training diverged at step {step}: loss {losses['loss']}")
            final = {**losses, "psnr": -10.0 * math.log10(max(losses["mse"], 1e-10)), "aux_loss": aux_loss, "lr": lr}
            validated: dict[str, float] = {}
            due = config.val_every is not None and (step % config.val_every == 0 or step == config.steps)
            if validator is not None and due:
                validated = val_metrics = validator(model, step)
            if rank.main and on_log and (validated or step % config.log_every == 0 or step == config.steps):
                on_log(step, {**final, **validated})
            if step % interval == 0 or step == config.steps:
                rngs = gather({"sampler": source.state(), "torch": _torch_rng_state(device)}, rank)
                if rank.main:
                    tmp = resume.with_suffix(".tmp")
                    torch.save({
                        "format": RESUME_FORMAT, "settings": settings, "codec_config": codec_config, "step": step,
                        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "aux_optimizer": aux_optimizer.state_dict() if aux_optimizer else None,
                        "rng": {**rngs[0], "ranks": rngs} if rank.distributed else rngs[0],
                        "schedule": schedule.state_dict(), "final": final,
                        "validation": {"key": _validation_key(config),
                                       "best_cost": validator.best_cost} if validator is not None else None,
                    }, tmp)
                    tmp.replace(resume)
    finally:
        source.close()
        for handle in hooks:
            handle.remove()
    model.to("cpu").eval()
    digest = weights_digest(model)
    if len(set(gather(digest, rank))) > 1:
        raise RuntimeError(f"data-parallel ranks ended with different weights ({config.output_dir})")
    checkpoint = out / f"{config.codec}-{config.preset}.pt"
    if rank.main:
        save_checkpoint(model, checkpoint, extra={"steps": step, "lmbda": config.lmbda, "dataset": config.dataset,
                                                  "metric": config.metric})
    views = per_view(val_metrics, "val/") or per_view(final)
    return TrainResult(str(checkpoint), digest, step, final, time.perf_counter() - started,
                       resumed_from, validator.best_checkpoint if validator is not None else None, views or None)


def _validation_key(config: TrainConfig) -> list:
    """What a stored best cost is comparable with: the same validation data and cost."""
    return [config.val_dataset, config.val_groups, config.metric, config.lmbda]
