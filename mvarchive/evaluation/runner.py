"""An evaluation in this process, one rate point after the other (no Prefect, no Dask).

The Prefect flow :func:`mvarchive.flows.rd_evaluation.evaluate_dataset` does the same with one
task per rate point (:mod:`mvarchive.tasks.evaluate_point`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from mvarchive.datasets import DatasetIndex, discover_dataset

from .bd import DEFAULT_METHOD
from .measuring import RatePoint, evaluate_point
from .planning import PointSpec
from .results import EvaluationResult, assemble_result

__all__ = ["run_evaluation"]


def run_evaluation(
    dataset: str | DatasetIndex,
    specs: Sequence[PointSpec],
    unavailable: dict[str, str] | None = None,
    *,
    anchor: str = "x265-intra",
    bd_method: str = DEFAULT_METHOD,
    layout: str = "auto",
    groups: Sequence[str] | None = None,
    storage_options: dict | None = None,
    on_point: Callable[[RatePoint], None] | None = None,
) -> EvaluationResult:
    """Evaluate every rate point in this process, one after the other; the result as the flow's."""
    started = time.perf_counter()
    index = dataset if isinstance(dataset, DatasetIndex) else discover_dataset(dataset, layout, storage_options)
    if groups is not None:
        index = index.select(groups=groups)
    points = []
    for spec in specs:
        point = evaluate_point(spec, index.groups, storage_options, index.cameras)
        points.append(point)
        if on_point:
            on_point(point)
    from mvarchive.tracking import environment_params

    return assemble_result(index, specs, points, unavailable or {}, anchor, bd_method, environment_params(),
                           time.perf_counter() - started)
