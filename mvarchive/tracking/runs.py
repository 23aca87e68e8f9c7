"""One MLflow run per archive/training/restore job, logged through ``MlflowClient``."""

from __future__ import annotations

import contextlib
import math
import platform
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from mvarchive.infra.mlflow_store import ensure_experiment

_MAX_PARAM = 6000
# MLflow's limits for one log_batch request (params or tags per batch, entities per batch)
_BATCH_PARAMS = 100
_BATCH_ENTITIES = 1000


@dataclass
class TrackingConfig:
    """Where runs are logged; no URI means no tracking (e.g. in unit tests)."""

    tracking_uri: str | None = None
    experiment: str = "mvarchive"
    tags: dict[str, str] = field(default_factory=dict)  # on every run of the job, e.g. mvarchive.schedule


class RunLogger:
    """Creates a run on construction; ``finish`` ends it (also usable as a context manager)."""

    def __init__(
        self, tracking_uri: str, experiment: str, run_name: str, tags: Mapping[str, str] | None = None
    ) -> None:
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        experiment_id = ensure_experiment(self.client, experiment)
        run = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
        self.run_id: str = run.info.run_id
        self.experiment_id = experiment_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """All in one request per 100 (one store transaction instead of one per parameter)."""
        batch = [Param(key, ("" if value is None else str(value))[:_MAX_PARAM]) for key, value in params.items()]
        self._send("params", batch, _BATCH_PARAMS)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Finite values only, in one request (a run's summary is a few dozen metrics)."""
        stamp = int(time.time() * 1000)
        batch = [Metric(key, float(value), stamp, step or 0) for key, value in metrics.items()
                 if value is not None and math.isfinite(float(value))]
        self._send("metrics", batch, _BATCH_ENTITIES)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """All tags in one request per 100."""
        batch = [RunTag(key, str(value)) for key, value in tags.items()]
        self._send("tags", batch, _BATCH_PARAMS)

    def log_series(self, key: str, points: Mapping[int, float]) -> None:
        """One metric at several steps (e.g. a value per shard), finite values only, in one request."""
        stamp = int(time.time() * 1000)
        batch = [Metric(key, float(v), stamp, step) for step, v in points.items() if v is not None and math.isfinite(v)]
        self._send("metrics", batch, _BATCH_ENTITIES)

    def _send(self, kind: str, batch: list[Any], size: int) -> None:
        """``log_batch`` in chunks within MLflow's per-request limits."""
        for start in range(0, len(batch), size):
            chunk = batch[start:start + size]
            self.client.log_batch(self.run_id, metrics=chunk if kind == "metrics" else (),
                                  params=chunk if kind == "params" else (), tags=chunk if kind == "tags" else ())

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, figure, artifact_file)

    def finish(self, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.finish(failed=exc_type is not None)


@contextlib.contextmanager
def tracked_run(tracking: TrackingConfig | None, run_name: str, job: str,
                tags: Mapping[str, str] | None = None) -> Iterator[RunLogger | None]:
    """An MLflow run for the block (None when tracking is off): FINISHED when the block
    completes, FAILED when it raises. ``tags`` link runs (``mvarchive.triggered_by``,
    ``mvarchive.parent_run``, ``mvarchive.model``...)."""
    if tracking is None or not tracking.tracking_uri:
        yield None
        return
    logger = RunLogger(tracking.tracking_uri, tracking.experiment, run_name,
                       {"mvarchive.job": job, **{k: str(v) for k, v in {**tracking.tags, **(tags or {})}.items()}})
    try:
        yield logger
    except BaseException:
        logger.finish(failed=True)
        raise
    logger.finish()


def environment_params() -> dict[str, str]:
    """Provenance recorded on every run: versions, host, git revision."""
    params = {"host": platform.node(), "python": platform.python_version()}
    for package in ("mvarchive", "torch", "compressai", "prefect", "zarr", "dask"):
        try:
            params[f"version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    try:
        root = Path(__file__).resolve().parents[2]
        params["git.revision"] = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        params["git.revision"] = "unknown"
    return params


def log_codec_model(logger: RunLogger, model: Any, name: str = "model") -> str:
    """Log a trained codec as an MLflow PyTorch model (pickle format: codecs need more than
    ``forward``). MLflow's model logging only has a fluent form, so the tracking URI and the
    run are set for the duration of the call and restored afterwards."""
    import mlflow
    import mlflow.pytorch

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(logger.tracking_uri)
    try:
        with mlflow.start_run(run_id=logger.run_id):
            info = mlflow.pytorch.log_model(
                model, name=name, serialization_format="pickle",
                pip_requirements=["torch", "compressai", "mvarchive"],
            )
    finally:
        mlflow.set_tracking_uri(previous)
    return info.model_uri
