"""The evaluation's task: one rate point (a codec at one checkpoint, a baseline at one setting)
coded and measured over the selected groups, on a Dask worker."""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect import task

from mvarchive.datasets import GroupRef
from mvarchive.evaluation.measuring import RatePoint, evaluate_point
from mvarchive.evaluation.planning import PointSpec

from .worker import prepare_torch

__all__ = ["EvaluatePointJob", "evaluate_point_fn", "evaluate_point_task"]


@dataclass(frozen=True)
class EvaluatePointJob:
    """References only: the worker reads the images and loads the codec or the tool itself."""

    spec: PointSpec
    groups: tuple[GroupRef, ...]
    cameras: tuple[str, ...]
    storage_options: dict = field(default_factory=dict)


def evaluate_point_fn(job: EvaluatePointJob) -> RatePoint:
    prepare_torch()
    return evaluate_point(job.spec, job.groups, job.storage_options, job.cameras)


evaluate_point_task = task(
    name="evaluate-point", task_run_name="evaluate-{job.spec.codec}-{job.spec.label}", retries=1, retry_delay_seconds=2,
)(evaluate_point_fn)
