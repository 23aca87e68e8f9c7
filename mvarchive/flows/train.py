"""The training flow: train a codec on a dataset, checkpoint it, log it to MLflow.

Re-running with the same output folder resumes from its ``last.pt`` ("resumed from step N"
is printed and logged as the ``resumed_from`` param); a ``last.pt`` written with other
settings is refused with :class:`~mvarchive.training.TrainingConfigMismatch` before any
MLflow run is created.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from prefect import flow, task

from mvarchive.codecs import load_codec
from mvarchive.datasets import discover_dataset
from mvarchive.progress import progress_bar
from mvarchive.reporting import summary_markdown
from mvarchive.training.evaluate import rd_point
from mvarchive.training import TrainConfig, TrainResult, check_resume, train_codec_loop
from mvarchive.tracking import TrackingConfig, environment_params, log_codec_model, tracked_run


@dataclass
class TrainReport:
    result: TrainResult
    mlflow_run_id: str | None
    model_uri: str | None


def run_params(config: TrainConfig, resumed_from: int | None) -> dict[str, object]:
    """The MLflow params of a training run: its config (checkpoint cadence resolved, storage
    options left out: they may hold credentials) and where it resumed from."""
    params: dict[str, object] = {k: v for k, v in asdict(config).items() if k != "storage_options"}
    params["checkpoint_every"] = config.checkpoint_interval
    params["resumed_from"] = "none" if resumed_from is None else resumed_from
    return params


@task(name="train-codec-task", task_run_name="train-{config.codec}-{config.preset}")
def train_task(config: TrainConfig, tracking: TrackingConfig | None, show_progress: bool = True) -> TrainReport:
    """Runs where the task runner puts it (the flow process, or a GPU worker)."""
    # refuse another run's last.pt before opening an MLflow run (no FAILED run is left behind)
    resuming = check_resume(config)
    with tracked_run(tracking, f"train {config.codec}", "train") as logger:
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
        model_uri = None
        if logger:
            logger.log_params({"weights_digest": result.weights_digest})
            logger.log_metrics({f"final_{k}": v for k, v in result.final.items()} | {"train_s": result.seconds})
            logger.log_artifact(result.checkpoint, "checkpoint")
            trained = load_codec(result.checkpoint)
            # groups of any size: rd_point pads as the codec's compress does
            point = rd_point(trained, discover_dataset(config.dataset, config.layout, config.storage_options),
                             storage_options=config.storage_options)
            logger.log_metrics({f"eval_{k}": v for k, v in point.items()})
            logger.log_text(summary_markdown([(config.codec, point)], ("groups", "bpp", "bpp_estimated", "psnr", "ms_ssim")),
                            "rd_point.md")
            model_uri = log_codec_model(logger, trained)
        return TrainReport(result, logger.run_id if logger else None, model_uri)


@flow(name="train-codec", log_prints=True)
def train_codec(config: TrainConfig, tracking: TrackingConfig | None = None, show_progress: bool = True) -> TrainReport:
    """Train one codec (entry point for the CLI, the demo and schedules)."""
    return train_task(config, tracking, show_progress)
