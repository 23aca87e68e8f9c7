"""Read every image of the groups about to be archived before anything is written: bad input
(corrupt, truncated, oversized, mismatched views) is reported in full, with nothing written,
and conversion notices (grayscale, palette, alpha) travel back to the user's console."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from prefect import task

from mvarchive.datasets import DatasetError, GroupRef, load_group
from mvarchive.storage.options import StorageOptions, as_options

DATASET_LOGGER = "mvarchive.datasets"


@dataclass(frozen=True)
class PreflightJob:
    groups: tuple[GroupRef, ...]
    source_options: StorageOptions = field(default_factory=StorageOptions)
    max_pixels: int | None = None


@dataclass(frozen=True)
class PreflightResult:
    problems: tuple[str, ...]  # one per group that cannot be archived
    notices: tuple[str, ...]  # conversions the archive will contain (e.g. grayscale -> RGB)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _collected_notices() -> Iterator[list[str]]:
    """Warnings the dataset readers log while the block runs (on a worker they would only
    reach the worker's console)."""
    handler = _Collect()
    logger = logging.getLogger(DATASET_LOGGER)
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def check_groups_fn(job: PreflightJob) -> PreflightResult:
    """Load every view of every group; collect problems and notices."""
    options = as_options(job.source_options).reveal()
    problems = []
    with _collected_notices() as notices:
        for group in job.groups:
            try:
                load_group(group, options, job.max_pixels)
            except DatasetError as exc:
                problems.append(str(exc))
    return PreflightResult(tuple(problems), tuple(notices))


check_groups = task(name="preflight", task_run_name="preflight-{job.groups[0].name}")(check_groups_fn)
