"""Where a restore or verify runs: in this process, on a running cluster, or as the full flow.

Starting a Prefect server and a Dask ``LocalCluster`` costs tens of seconds here, and their
workers import torch and load the model again; decoding one group takes a fraction of a second.
So a small job never starts services:

- ``in-process``: no cluster is configured or running, and the job is small: this process plans,
  decodes, checks and writes. No Prefect server, no ``LocalCluster``; no MLflow run unless asked
  for (importing MLflow and creating its SQLite store cost seconds).
- ``stack``: a Dask scheduler is configured or ``mvarchive services up`` runs, and the job is
  small: the whole job is one task on one warm worker (torch imported, codec cached per worker,
  the same archive always sent to the same worker), which answers as soon as the files are
  written and verified and records a Prefect flow run (when a Prefect API is known) and an
  MLflow run after that (:mod:`mvarchive.flows.on_demand_record`). This process imports
  neither torch nor Prefect nor MLflow.
- ``flow``: large jobs, or when asked: the Prefect flow with one task per batch of groups on Dask,
  started locally (Prefect server, ``LocalCluster``) unless services run.

The rule lives here, apart from the commands, so restore and verify apply the same one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Placement", "PlacementRule", "choose_placement"]


class Placement(str, enum.Enum):
    AUTO = "auto"
    IN_PROCESS = "in-process"
    STACK = "stack"
    FLOW = "flow"

    def describe(self, dask_address: str | None = None) -> str:
        """What the user reads: where the groups were decoded and what was recorded."""
        if self is Placement.IN_PROCESS:
            return "decoded in this process (no Prefect or MLflow run; --track or --placement flow to record one)"
        if self is Placement.STACK:
            return f"decoded on a worker of the running cluster {dask_address or ''}".rstrip()
        return "decoded by the Prefect flow on Dask"


@dataclass(frozen=True)
class PlacementRule:
    """When a job counts as small: at most ``max_groups`` groups (about a second of decoding each
    for paper-size models at 832x1024 on 2 cores, so the start-up of a cluster dominates below)."""

    max_groups: int = 8

    def __post_init__(self) -> None:
        if self.max_groups < 0:
            raise ValueError(f"max_groups must be >= 0, got {self.max_groups}")


def choose_placement(requested: Placement | str, groups: int, dask_address: str | None,
                     rule: PlacementRule = PlacementRule()) -> Placement:
    """The placement for a job of ``groups`` groups: what was asked for, else by the rule above.
    Asking for ``stack`` without a configured or running scheduler is an error."""
    try:
        requested = Placement(requested)
    except ValueError:
        raise ValueError(f"unknown placement {requested!r}: choose one of "
                         + ", ".join(p.value for p in Placement)) from None
    if requested is Placement.STACK and not dask_address:
        raise ValueError("--placement stack needs a running stack (`mvarchive services up`) or --dask-address")
    if requested is not Placement.AUTO:
        return requested
    if groups > rule.max_groups:
        return Placement.FLOW
    return Placement.STACK if dask_address else Placement.IN_PROCESS
