"""The training flow: train a codec on a dataset, checkpoint it, log it to MLflow."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from prefect import flow, task

from mvarchive.codecs import load_codec
from mvarchive.datasets import discover_dataset
from mvarchive.progress import progress_bar
from mvarchive.reporting import summary_markdown
from mvarchive.training.evaluate import rd_point
from mvarchive.training import TrainConfig, TrainResult, train_codec_loop
from mvarchive.tracking import TrackingConfig, environment_params, log_codec_model, tracked_run



@dataclass
class TrainReport:
    result: TrainResult
    mlflow_run_id: str | None
    model_uri: str | None


@task(name="train-codec-task", task_run_name="train-{config.codec}-{config.preset}")
def train_task(config: TrainConfig, tracking: TrackingConfig | None, show_progress: bool = True) -> TrainReport:
    """Runs where the task runner puts it (the flow process, or a GPU worker)."""
    with tracked_run(tracking, f"train {config.codec}", "train") as logger:
        if logger:
            logger.log_params({**{k: v for k, v in asdict(config).items() if k != "storage_options"},
                               **environment_params()})
        with progress_bar(f"train {config.codec}", total=config.steps, enabled=show_progress) as bar:
            done = [0]

            def on_log(step: int, metrics: dict[str, float]) -> None:
                bar.advance(step - done[0])
                done[0] = step
                bar.describe(f"train {config.codec} loss {metrics['loss']:.3f} bpp {metrics['bpp']:.3f} "
                             f"PSNR {metrics['psnr']:.2f}")
                if logger:
                    logger.log_metrics(metrics, step=step)

            result = train_codec_loop(config, on_log=on_log)
        model_uri = None
        if logger:
            logger.log_params({"weights_digest": result.weights_digest})
            logger.log_metrics({f"final_{k}": v for k, v in result.final.items()} | {"train_s": result.seconds})
            logger.log_artifact(result.checkpoint, "checkpoint")
            trained = load_codec(result.checkpoint)
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
