"""The training flow: train a codec on a dataset, checkpoint it, register it in MLflow.

Every tracked run ends by registering its checkpoint as a new version of ``mvarchive-<codec>``
(:mod:`mvarchive.models.registry`) with its RD point measured with real bytes on the evaluation
dataset (``eval_dataset``, default the training dataset), and logs that point against JPEG and
x265-intra (where this machine's ffmpeg has libx265) as metrics and ``evaluation/rd_psnr.png``.

Re-running with the same output folder resumes from its ``last.pt`` ("resumed from step N"
is printed and logged as the ``resumed_from`` param); a ``last.pt`` written with other
settings is refused with :class:`~mvarchive.training.TrainingConfigMismatch` before any
MLflow run is created.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prefect import flow, task

from mvarchive.evaluation.baselines import parse_baselines
from mvarchive.evaluation.measuring import RatePoint
from mvarchive.evaluation.results import EvaluationResult
from mvarchive.models.publish import register_checkpoint
from mvarchive.models.rd_figures import EvalSet, figures_from_point, rd_against_baselines, write_rd_plot
from mvarchive.models.registry import ModelVersionRef
from mvarchive.progress import progress_bar
from mvarchive.reporting import summary_markdown
from mvarchive.tasks.worker import check_device
from mvarchive.tracking import RunLogger, TrackingConfig, environment_params, tracked_run
from mvarchive.training import TrainConfig, TrainResult, check_resume, train_codec_loop


@dataclass
class TrainReport:
    result: TrainResult
    mlflow_run_id: str | None
    model_uri: str | None  # the registered version, models:/mvarchive-<codec>/<version>
    model_version: ModelVersionRef | None = None
    figures: dict | None = None  # the version's RD point on the evaluation dataset
    point: RatePoint | None = None  # the same point per group and view (a sweep's RD curve is made of these)


def run_params(config: TrainConfig, resumed_from: int | None) -> dict[str, object]:
    """The MLflow params of a training run: its config (checkpoint cadence resolved, storage
    options left out: they may hold credentials) and where it resumed from."""
    params: dict[str, object] = {k: v for k, v in asdict(config).items() if k != "storage_options"}
    params["checkpoint_every"] = config.checkpoint_interval
    params["eval_dataset"] = config.eval_dataset or config.dataset
    params["resumed_from"] = "none" if resumed_from is None else resumed_from
    return params


def run_name(config: TrainConfig, verb: str = "train") -> str:
    """``train ldmic-fast λ=1024`` (``retrain …`` for fine-tuning runs)."""
    return f"{verb} {config.codec} λ={config.lmbda:g}"


def eval_set(config: TrainConfig) -> EvalSet:
    return EvalSet(config.eval_dataset or config.dataset, config.layout, config.eval_groups, config.storage_options)


def rd_cost(config: TrainConfig, figures: Mapping[str, float]) -> float:
    """The training objective's value on the evaluation data: bpp + λ·D, D being MSE on [0, 1]
    or 1 − MS-SSIM for ``metric="ms-ssim"`` runs."""
    distortion = 1.0 - figures["ms_ssim"] if getattr(config, "metric", "mse") == "ms-ssim" else figures["mse"]
    return figures["bpp"] + config.lmbda * distortion


def log_baselines(logger: RunLogger, evaluation: EvaluationResult) -> None:
    """Each baseline's points as metric series (step = rate point), comparable across runs in the
    MLflow UI, and a param naming every baseline that could not run and why."""
    for curve in evaluation.curves:
        if curve.kind != "baseline":
            continue
        for step, point in enumerate(curve.points):
            logger.log_metrics({f"baseline/{curve.name}/{k}": point.summary[k] for k in ("bpp", "psnr", "ms_ssim")},
                               step=step)
    for name, reason in evaluation.unavailable.items():
        logger.log_params({f"baseline.{name}": f"unavailable: {reason}"})


def evaluate_and_register(logger: RunLogger, config: TrainConfig, result: TrainResult,
                          version_tags: Mapping[str, Any] | None = None,
                          baselines: str | None = None) -> tuple[ModelVersionRef, dict, RatePoint]:
    """Measure the checkpoint and the baselines (``baselines``, default ``config.eval_baselines``)
    on the evaluation dataset, log metrics (one series per curve, step = rate point) and the RD
    plot, then register the checkpoint. Returns the version, its figures and its rate point."""
    data = eval_set(config)
    evaluation = rd_against_baselines(result.checkpoint, f"λ={config.lmbda:g}", data,
                                      parse_baselines(config.eval_baselines if baselines is None else baselines))
    learned = evaluation.curve(config.codec).points[0]
    figures = figures_from_point(learned)
    figures["rd_cost"] = rd_cost(config, figures)
    logger.log_metrics({f"eval/{k}": v for k, v in figures.items()})
    log_baselines(logger, evaluation)
    with tempfile.TemporaryDirectory() as tmp:
        logger.log_artifact(write_rd_plot(evaluation, Path(tmp) / "rd_psnr.png"), "evaluation")
        (Path(tmp) / "rd_table.md").write_text(evaluation.rd_markdown(), encoding="utf-8")
        logger.log_artifact(Path(tmp) / "rd_table.md", "evaluation")
    logger.log_text(summary_markdown([(config.codec, figures)], ("groups", "bpp", "psnr", "ms_ssim", "mse")),
                    "rd_point.md")
    tags = {"eval_dataset": data.dataset, "eval_groups": int(figures["groups"]), **(version_tags or {})}
    ref = register_checkpoint(result.checkpoint, logger.run_id, logger.tracking_uri,
                              rd_point={k: figures[k] for k in ("bpp", "psnr", "ms_ssim", "mse")}, extra_tags=tags,
                              description=f"{config.codec}:{config.preset} λ={config.lmbda:g}, {result.steps} steps "
                                          f"on {config.dataset}")
    logger.log_params({"model_uri": ref.uri})
    return ref, figures, learned


@task(name="train-codec-task", task_run_name="train-{config.codec}-{config.preset}")
def train_task(config: TrainConfig, tracking: TrackingConfig | None, show_progress: bool = True,
               run_tags: Mapping[str, str] | None = None, version_tags: Mapping[str, Any] | None = None,
               verb: str = "train", eval_baselines: str | None = None) -> TrainReport:
    """Runs where the task runner puts it (the flow process, or a GPU worker). ``eval_baselines``
    replaces ``config.eval_baselines`` for the registered version's plot (a sweep plots the
    baselines once, on its parent run)."""
    # refuse another run's last.pt before opening an MLflow run (no FAILED run is left behind)
    resuming = check_resume(config)
    check_device(config.device)  # a GPU worker without a usable device fails in one line
    with tracked_run(tracking, run_name(config, verb), verb, run_tags) as logger:
        if logger:
            logger.log_params({**run_params(config, resuming), **environment_params()})
        with progress_bar(f"train {config.codec}", total=config.steps, enabled=show_progress) as bar:
            done = [0]

            def on_resume(step: int) -> None:
                print(f"train {config.codec}: resumed from step {step} ({config.output_dir}/last.pt)")
                bar.advance(step)
                done[0] = step

            def on_log(step: int, metrics: dict[str, float]) -> None:
                bar.advance(step - done[0])
                done[0] = step
                bar.describe(f"train {config.codec} loss {metrics['loss']:.3f} bpp {metrics['bpp']:.3f} "
                             f"PSNR {metrics['psnr']:.2f}")
                if logger:
                    logger.log_metrics(metrics, step=step)

            result = train_codec_loop(config, on_log=on_log, on_resume=on_resume)
        if not logger:
            return TrainReport(result, None, None)
        logger.log_params({"weights_digest": result.weights_digest})
        logger.log_metrics({f"final_{k}": v for k, v in result.final.items()} | {"train_s": result.seconds})
        ref, figures, point = evaluate_and_register(logger, config, result, version_tags, eval_baselines)
        print(f"registered {ref.uri} (bpp {figures['bpp']:.4f}, PSNR {figures['psnr']:.2f} dB on "
              f"{config.eval_dataset or config.dataset})")
        return TrainReport(result, logger.run_id, ref.uri, ref, figures, point)


@flow(name="train-codec", log_prints=True)
def train_codec(config: TrainConfig, tracking: TrackingConfig | None = None, show_progress: bool = True) -> TrainReport:
    """Train one codec (entry point for the CLI, the demo and schedules); a run started from
    ``--init`` registers its version tagged with that parent checkpoint.

    On a Dask task runner a CUDA run is a task placed on a GPU worker (refused at once when no
    worker offers one, docs/gpu.md); otherwise the training runs in the flow's process."""
    from prefect.context import FlowRunContext
    from prefect_dask import DaskTaskRunner

    from mvarchive.infra.gpu import gpu_placement, is_cuda_device, require_gpu_for_flow
    from mvarchive.training.init import init_tags

    tags = init_tags(config) or None
    require_gpu_for_flow(config.device, f"training {config.codec}")
    context = FlowRunContext.get()
    if is_cuda_device(config.device) and isinstance(getattr(context, "task_runner", None), DaskTaskRunner):
        with gpu_placement(config.device):
            return train_task.submit(config, tracking, False, version_tags=tags).result()
    return train_task(config, tracking, show_progress, version_tags=tags)
