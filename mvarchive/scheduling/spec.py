"""What a schedule is: an archive job plus when to run it, as plain JSON-able values.

A schedule's parameters are stored in a Prefect deployment and read by a flow run on another
process, in another working directory, maybe on another host: paths are made absolute here,
and nothing secret (storage keys) is ever part of them — the serving process supplies those.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

ARCHIVE_FLOW_NAME = "archive-dataset"
WORK_POOL = "mvarchive"
TAG = "mvarchive"
SCHEDULE_TAG_PREFIX = "schedule:"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_EVERY = re.compile(r"^\s*(\d+)\s*(s|sec|m|min|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


class ScheduleError(ValueError):
    """A schedule request that cannot be served (bad name, timing, model, source)."""


def parse_every(text: str) -> dt.timedelta:
    """``30s``, ``10m``, ``1h``, ``2d`` -> timedelta (strictly positive)."""
    match = _EVERY.match(text)
    if not match or int(match.group(1)) < 1:
        raise ScheduleError(f"--every {text!r}: expected a positive count and a unit, e.g. 30s, 10m, 1h, 1d")
    return dt.timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def describe_every(interval: dt.timedelta) -> str:
    """The shortest exact ``--every`` spelling of an interval."""
    seconds = int(interval.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def absolute_url(url: str) -> str:
    """The archive code's path normalizer, imported when needed (it pulls in Zarr)."""
    from mvarchive.storage.location import absolute_url as normalize

    return normalize(url)


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def model_reference(model: str) -> str:
    """A checkpoint path made absolute; URLs and ``models:/`` registry URIs unchanged."""
    if model.startswith("models:"):
        return model
    return absolute_url(model)


@dataclass(frozen=True)
class ScheduleSpec:
    """One scheduled archive job: the flow's parameters plus a cron or interval."""

    name: str
    source: str
    dest: str
    model: str | None = None  # checkpoint path/URL or models:/NAME@alias
    untrained: bool = False  # seeded random weights: tests only
    codec: str = "ldmic-fast"
    preset: str = "paper"
    layout: str = "auto"
    shard_size: int = 4
    cron: str | None = None
    every: dt.timedelta | None = None
    timezone: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ScheduleError(f"schedule name {self.name!r}: use letters, digits, '.', '_' or '-' (at most 63)")
        if (self.cron is None) == (self.every is None):
            raise ScheduleError(f"schedule {self.name!r}: give exactly one of --cron or --every")
        if self.model is None and not self.untrained:
            raise ScheduleError(
                f"schedule {self.name!r}: no model given: pass --model CHECKPOINT or models:/NAME@champion"
            )
        if self.model is not None and self.untrained:
            raise ScheduleError(f"schedule {self.name!r}: pass either --model or --untrained, not both")
        if self.shard_size < 1:
            raise ScheduleError(f"--shard-size must be >= 1, got {self.shard_size}")

    @property
    def deployment_name(self) -> str:
        """``archive-dataset/NAME``: how Prefect (UI, run_deployment) names it."""
        return f"{ARCHIVE_FLOW_NAME}/{self.name}"

    def tags(self) -> list[str]:
        return [TAG, f"{SCHEDULE_TAG_PREFIX}{self.name}"]

    def parameters(self) -> dict[str, Any]:
        """The flow's parameters: plain JSON, absolute paths, no storage options."""
        return {
            "source": absolute_url(self.source),
            "dest": absolute_url(self.dest),
            "model": None if self.model is None else model_reference(self.model),
            "untrained": self.untrained,
            "codec": self.codec,
            "preset": self.preset,
            "layout": self.layout,
            "shard_size": self.shard_size,
            "schedule": self.name,
        }

    def prefect_schedule(self) -> Any:
        """The Prefect schedule object (CronSchedule or IntervalSchedule); validates cron and timezone."""
        from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

        try:
            if self.cron is not None:
                return CronSchedule(cron=self.cron, timezone=self.timezone or "UTC")
            assert self.every is not None  # __post_init__: exactly one of cron and every
            return IntervalSchedule(interval=self.every, timezone=self.timezone or "UTC")
        except ValueError as exc:
            first = str(exc).splitlines()
            detail = next((line.strip() for line in first[1:] if line.strip() and not line.startswith(" ")), first[0])
            raise ScheduleError(f"schedule {self.name!r}: invalid --cron/--timezone: {detail}") from None

    def check_inputs(self, storage_options: dict[str, Any]) -> int:
        """Cheap checks that an archive run would fail on: the codec and preset exist, the
        source is a dataset, a local checkpoint file exists. Returns the number of groups.
        The model is not loaded (slow); the run itself checks it again."""
        from mvarchive.codecs import get_spec
        from mvarchive.datasets import discover_dataset

        spec = get_spec(self.codec)
        if self.preset not in spec.presets:
            presets = ", ".join(spec.presets)
            raise ScheduleError(f"codec {self.codec!r} has no preset {self.preset!r}; presets: {presets}")
        source = absolute_url(self.source)
        index = discover_dataset(source, self.layout, storage_options if not _is_local(source) else None)
        if self.model is not None and not self.model.startswith("models:") and _is_local(self.model):
            path = model_reference(self.model)
            import os

            if not os.path.isfile(path):
                raise ScheduleError(f"--model {self.model!r}: no such checkpoint file ({path})")
        return len(index.groups)
