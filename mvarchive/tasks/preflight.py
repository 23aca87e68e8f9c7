"""Read every image of the groups about to be archived before anything is written: bad input
(corrupt, truncated, oversized, mismatched views) is reported in full, with nothing written."""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect import task

from mvarchive.datasets import DatasetError, GroupRef, load_group
from mvarchive.storage.options import StorageOptions, as_options


@dataclass(frozen=True)
class PreflightJob:
    groups: tuple[GroupRef, ...]
    source_options: StorageOptions = field(default_factory=StorageOptions)
    max_pixels: int | None = None


def check_groups_fn(job: PreflightJob) -> list[str]:
    """One message per group that cannot be archived (empty when all load)."""
    options = as_options(job.source_options).reveal()
    problems = []
    for group in job.groups:
        try:
            load_group(group, options, job.max_pixels)
        except DatasetError as exc:
            problems.append(str(exc))
    return problems


check_groups = task(check_groups_fn, name="preflight", task_run_name="preflight-{job.groups[0].name}")
