"""What a restore or verify asks for and what it reports: plain dataclasses, cheap to import.

Kept apart from :mod:`mvarchive.flows.restore` (which imports Prefect and torch) so that a
command that hands the job to a running cluster (:mod:`mvarchive.flows.on_demand`) can build,
pickle and read these without importing either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mvarchive.integrity import GroupCheck, Status
from mvarchive.storage.options import StorageOptions, as_options


@dataclass
class RestoreConfig:
    """What to restore: all groups and cameras, or a subset."""

    archive: str
    out: str
    groups: list[str] | None = None
    cameras: list[str] | None = None
    checkpoint: str | None = None  # the codec's weights, when the archive has no copy and they moved
    overwrite: bool = False  # replace existing files in OUT
    exact: bool = False  # also refuse groups whose pixels differ from the encoder's only by rounding
    groups_per_task: int = 4
    archive_options: StorageOptions = field(default_factory=StorageOptions)
    out_options: StorageOptions = field(default_factory=StorageOptions)
    registry_uri: str | None = None  # MLflow store of models:/ weights (default: the environment's)

    def __post_init__(self) -> None:
        self.archive_options = as_options(self.archive_options)
        self.out_options = as_options(self.out_options)


@dataclass
class VerifyConfig:
    archive: str
    groups: list[str] | None = None
    checkpoint: str | None = None
    groups_per_task: int = 4
    archive_options: StorageOptions = field(default_factory=StorageOptions)
    registry_uri: str | None = None

    def __post_init__(self) -> None:
        self.archive_options = as_options(self.archive_options)

    def as_restore(self) -> RestoreConfig:
        return RestoreConfig(archive=self.archive, out="", groups=self.groups, checkpoint=self.checkpoint,
                             groups_per_task=self.groups_per_task, archive_options=self.archive_options,
                             registry_uri=self.registry_uri)


@dataclass
class RestoreReport:
    out: str
    groups: int
    images: int
    decode_s: float
    wall_s: float
    checks: list[GroupCheck] = field(default_factory=list)
    mlflow_run_id: str | None = None
    placement: str = "flow"  # where the groups were decoded: in-process, stack or flow (see flows.placement)
    flow_run_id: str | None = None  # the Prefect flow run, when there was one

    def count(self, status: Status) -> int:
        return sum(c.status is status for c in self.checks)
