"""Validation during training: real bytes on held-out groups, and ``best.pt``.

Every ``val_every`` steps the loop codes the validation groups for real
(:func:`~mvarchive.training.rd_point.rd_point`: compress → bytes → decode) and computes the
RD cost the run minimises, in LDMIC's λ convention (:mod:`.loss`):
``J = bpp + λ·MSE`` (``metric="mse"``) or ``J = bpp + λ·(1 − MS-SSIM)`` (``"ms-ssim"``), bpp
from the real bitstreams. Whenever J improves the weights are written to ``best.pt`` with
:func:`~mvarchive.codecs.save_checkpoint` (the final checkpoint's format), atomically.

Where validation comes from (:func:`split_validation`): ``val_dataset`` when given, else the
last ``val_groups`` groups of the training dataset — held out of training when the dataset
has more groups than that, shared with training otherwise (logged either way).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from pathlib import Path

import torch

from mvarchive.codecs import MultiViewCodec, save_checkpoint
from mvarchive.datasets import DatasetIndex, discover_dataset

from .rd_point import rd_point

log = logging.getLogger(__name__)


def split_validation(index: DatasetIndex, val_dataset: str | None, val_groups: int, layout: str,
                     storage_options: dict | None = None) -> tuple[DatasetIndex, DatasetIndex]:
    """(training index, validation index) for a run that validates."""
    if val_dataset is not None:
        val = discover_dataset(val_dataset, layout, storage_options)
        log.info("validation: %d groups of %s", min(val_groups, len(val.groups)), val_dataset)
        return index, dataclasses.replace(val, groups=val.groups[:val_groups])
    if len(index.groups) > val_groups:
        log.info("validation: the last %d of %d groups of %s, held out of training", val_groups,
                 len(index.groups), index.url)
        return (dataclasses.replace(index, groups=index.groups[:-val_groups]),
                dataclasses.replace(index, groups=index.groups[-val_groups:]))
    log.warning("validation: %s has only %d groups (val_groups=%d), so validation uses training groups",
                index.url, len(index.groups), val_groups)
    return index, index


def rd_cost(point: dict[str, float], lmbda: float, metric: str) -> float:
    """J of a measured RD point (lower is better)."""
    distortion = point["mse"] if metric == "mse" else 1.0 - point["ms_ssim"]
    return point["bpp"] + lmbda * distortion


class Validator:
    """Measures the model on the validation groups and keeps ``best.pt`` (rank 0 only)."""

    def __init__(self, index: DatasetIndex, out: Path, lmbda: float, metric: str, extra: dict,
                 storage_options: dict | None = None, best_cost: float = math.inf) -> None:
        self.index = index
        self.path = out / "best.pt"
        self.lmbda = lmbda
        self.metric = metric
        self.extra = extra
        self.storage_options = storage_options
        self.best_cost = best_cost

    def __call__(self, model: MultiViewCodec, step: int) -> dict[str, float]:
        """``val/…`` metrics of the model now; writes ``best.pt`` when J improved."""
        was_training = model.training
        device = next(model.parameters()).device
        # validation must not move the training's random stream (resume stays exact with or without it)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            model.update(force=True)
            point = rd_point(model, self.index, max_groups=len(self.index.groups),
                             storage_options=self.storage_options)
        model.train(was_training)
        cost = rd_cost(point, self.lmbda, self.metric)
        improved = math.isfinite(cost) and cost < self.best_cost
        if improved:
            self.best_cost = cost
            # a CPU copy: moving the trained model itself would pull it from under its optimizer/DDP
            snapshot = copy.deepcopy(model).to("cpu") if device.type != "cpu" else model
            save_checkpoint(snapshot, self.path, extra={**self.extra, "steps": step, "val_cost": cost})
            log.info("step %d: validation J=%.5f (bpp %.4f, PSNR %.2f dB), best so far -> %s", step, cost,
                     point["bpp"], point["psnr"], self.path)
        metrics = {f"val/{key}": value for key, value in point.items()}
        metrics["val/cost"] = cost
        metrics["val/best_cost"] = self.best_cost
        return metrics

    @property
    def best_checkpoint(self) -> str | None:
        return str(self.path) if self.path.exists() else None


def per_view(metrics: dict[str, float], prefix: str = "") -> dict[str, dict[str, float]]:
    """``{"view0": {"bpp": …, "psnr": …}, …}`` from flat ``[prefix]view{k}/…`` metrics."""
    views: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if key.startswith(prefix + "view") and "/" in key[len(prefix):]:
            view, name = key[len(prefix):].split("/", 1)
            views.setdefault(view, {})[name.replace("bpp_estimated", "bpp")] = value
    return views
