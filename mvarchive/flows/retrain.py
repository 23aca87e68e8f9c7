"""The retrain flow: fine-tune a registered version on new data, register, gate, promote.

1. Resolve the parent (default ``models:/mvarchive-<codec>@champion``) to a pinned version.
2. Fine-tune it on ``dataset`` for ``steps`` steps (the training loop started from the parent's
   weights, at the parent's λ unless given) and register the result as a new version tagged
   ``parent_version`` and ``triggered_by``.
3. Measure candidate and champion on ``eval_dataset`` with real bytes, apply the gate
   (:mod:`mvarchive.models.gate`) and move ``@champion`` only if it passes.

Three MLflow runs, linked by tags: ``retrain mvarchive-ldmic-fast v1`` (this flow: the decision,
``mvarchive.triggered_by``), the training run and the promotion run (both
``mvarchive.parent_run`` = the retrain run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow

from mvarchive.flows.train import train_task
from mvarchive.models.gate import GateDecision
from mvarchive.models.lifecycle import promote_version
from mvarchive.models.rd_figures import EvalSet
from mvarchive.models.registry import CHAMPION, ModelVersionRef, registered_name, resolve_model_uri, version_tags
from mvarchive.tracking import TrackingConfig, tracked_run
from mvarchive.training import TrainConfig

__all__ = ["RetrainConfig", "RetrainReport", "retrain"]


@dataclass
class RetrainConfig:
    """A retraining job. ``model`` None means the champion of ``codec``; ``lmbda`` None keeps
    the parent's; ``eval_dataset`` None evaluates on ``dataset``. Checkpoints go to
    ``output_dir/<retrain run id>``."""

    dataset: str
    output_dir: str = "checkpoints/retrain"
    model: str | None = None
    codec: str = "ldmic-fast"
    eval_dataset: str | None = None
    steps: int = 200
    lmbda: float | None = None
    batch_size: int = 8
    crop: int = 256
    learning_rate: float = 1e-4
    eval_groups: int = 8
    eval_baselines: str = "jpeg,x265-intra"
    min_improvement: float = 0.0
    triggered_by: str = "manual"
    layout: str = "auto"
    device: str = "cpu"
    storage_options: dict = field(default_factory=dict)

    @property
    def model_uri(self) -> str:
        return self.model or f"models:/{registered_name(self.codec)}@{CHAMPION}"


@dataclass
class RetrainReport:
    parent: ModelVersionRef
    candidate: ModelVersionRef
    decision: GateDecision
    promoted: bool
    mlflow_run_id: str | None
    train_run_id: str | None
    promote_run_id: str | None

    @property
    def line(self) -> str:
        return f"retrained {self.parent.uri} -> {self.candidate.uri}: {self.decision.reason}"


def _train_config(config: RetrainConfig, parent: ModelVersionRef, tags: dict[str, str], out: Path) -> TrainConfig:
    lmbda = config.lmbda if config.lmbda is not None else float(tags["lmbda"])
    return TrainConfig(
        dataset=config.dataset, output_dir=str(out), codec=tags["codec"], preset=tags["preset"], steps=config.steps,
        batch_size=config.batch_size, crop=config.crop, lmbda=lmbda, learning_rate=config.learning_rate,
        layout=config.layout, device=config.device, storage_options=config.storage_options, init=parent.uri,
        eval_dataset=config.eval_dataset or config.dataset, eval_groups=config.eval_groups,
        eval_baselines=config.eval_baselines,
    )


@flow(name="retrain-codec", log_prints=True)
def retrain(config: RetrainConfig, tracking: TrackingConfig, show_progress: bool = False) -> RetrainReport:
    """Fine-tune the parent version, register the candidate, gate it against the champion."""
    if not tracking or not tracking.tracking_uri:
        raise ValueError("retraining needs an MLflow tracking URI (the registry holds the parent and the result)")
    uri = tracking.tracking_uri
    parent = resolve_model_uri(config.model_uri, uri)
    tags = version_tags(parent.uri, uri)
    if "codec" not in tags or "preset" not in tags or "lmbda" not in tags:
        raise ValueError(f"{parent.uri} lacks the codec/preset/lmbda tags mvarchive registers; cannot retrain it")
    eval_data = EvalSet(config.eval_dataset or config.dataset, config.layout, config.eval_groups,
                        config.storage_options)
    run_tags = {"mvarchive.triggered_by": config.triggered_by, "mvarchive.model": parent.name,
                "mvarchive.parent_version": parent.version}
    with tracked_run(tracking, f"retrain {parent.name} v{parent.version}", "retrain", run_tags) as logger:
        if logger is None:  # unreachable: the tracking URI was checked above
            raise RuntimeError("no MLflow run for the retrain flow")
        train_config = _train_config(config, parent, tags, Path(config.output_dir) / logger.run_id)
        logger.log_params({"parent": parent.uri, "asked": config.model_uri, "dataset": config.dataset,
                           "eval_dataset": eval_data.dataset, "steps": config.steps, "lmbda": train_config.lmbda,
                           "triggered_by": config.triggered_by})
        linked = {"mvarchive.parent_run": logger.run_id, "mvarchive.triggered_by": config.triggered_by}
        trained = train_task(train_config, tracking, show_progress, run_tags=linked,
                             version_tags={"parent_version": parent.version, "parent_uri": parent.uri,
                                           "triggered_by": config.triggered_by}, verb="retrain")
        candidate = trained.model_version
        if candidate is None:
            raise RuntimeError(f"the training run {trained.mlflow_run_id} registered no version")
        promotion = promote_version(candidate.uri, eval_data, uri, tracking.experiment,
                                    min_improvement=config.min_improvement, tags=linked)
        decision = promotion.decision
        logger.log_params({"candidate": candidate.uri, "train_run": trained.mlflow_run_id,
                           "promote_run": promotion.mlflow_run_id, "method": decision.method,
                           "promoted": promotion.promoted, "reason": decision.reason})
        for side, figures in (("candidate", decision.candidate), ("champion", decision.champion)):
            if figures:
                logger.log_metrics({f"{side}/{k}": figures[k] for k in ("bpp", "psnr", "mse", "rd_cost")
                                    if isinstance(figures.get(k), (int, float))})
        report = RetrainReport(parent, candidate, decision, promotion.promoted, logger.run_id, trained.mlflow_run_id,
                               promotion.mlflow_run_id)
        print(report.line)
        return report
