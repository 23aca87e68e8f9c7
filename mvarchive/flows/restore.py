"""The restore and verify flows: archive -> decode tasks on Dask -> checked images.

Every decoded group is checked against the fingerprints the encoder stored (see
:mod:`mvarchive.integrity`); restore writes only groups that pass and never replaces an
existing file unless asked. The planning and checking code is shared with the on-demand paths
that need no Prefect server or cluster (:mod:`mvarchive.flows.restore_core`,
:mod:`mvarchive.flows.on_demand`); :func:`plan_restore` checks the request before any service
starts or any file is written.
"""

from __future__ import annotations

from collections.abc import Iterator

from prefect import flow
from prefect.futures import as_completed

from mvarchive.tasks.restore import RestoreResult, restore_groups
from mvarchive.tracking import TrackingConfig, tracked_run

from .restore_config import RestoreConfig, RestoreReport, VerifyConfig
from .restore_core import (
    RestoreError,
    RestorePlan,
    collect,
    log_restore,
    log_verify,
    model_for_archive,
    plan_restore,
    plan_verify,
    raise_failures,
    restore_here,
    run_name,
    verify_here,
)

__all__ = [
    "RestoreConfig", "RestoreError", "RestorePlan", "RestoreReport", "VerifyConfig", "model_for_archive",
    "plan_restore", "plan_verify", "restore_dataset", "restore_on_demand", "verify_archive", "verify_on_demand",
]


def _decode_all(plan: RestorePlan, config: RestoreConfig, description: str, show_progress: bool) -> RestoreReport:
    """Decode every batch as a Prefect task on the flow's task runner (Dask)."""
    futures = [restore_groups.submit(job) for job in plan.jobs(config)]

    def results() -> Iterator[RestoreResult]:
        for future in as_completed(futures):
            yield future.result()

    return collect(plan, results(), description, show_progress, placement="flow")


def _flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return flow_run.get_id()


@flow(name="restore-dataset", log_prints=True)
def restore_dataset(config: RestoreConfig, tracking: TrackingConfig | None = None,
                    show_progress: bool = True) -> RestoreReport:
    """Decode and write groups; raises :class:`RestoreError` naming every group that failed
    its check (those are not written; all others are)."""
    plan = plan_restore(config)
    with tracked_run(tracking, run_name("restore", plan), "restore") as logger:  # open while decoding: real duration
        report = _decode_all(plan, config, "restore", show_progress)
        report.flow_run_id = _flow_run_id()
        log_restore(logger, plan, report, config)
    return raise_failures(report, config)


@flow(name="verify-archive", log_prints=True)
def verify_archive(config: VerifyConfig, tracking: TrackingConfig | None = None,
                   show_progress: bool = True) -> RestoreReport:
    """Decode every selected group without writing anything and check it; the report lists
    ok / close / mismatch / undecodable per group."""
    plan = plan_verify(config)
    with tracked_run(tracking, run_name("verify", plan), "verify") as logger:
        report = _decode_all(plan, config.as_restore(), "verify", show_progress)
        report.flow_run_id = _flow_run_id()
        log_verify(logger, plan, report)
    return report


def _tracking(tracking_uri: str | None, experiment: str) -> TrackingConfig | None:
    return TrackingConfig(tracking_uri, experiment) if tracking_uri else None


@flow(name="restore-on-demand", log_prints=True)
def restore_on_demand(config: RestoreConfig, tracking_uri: str | None = None,
                      experiment: str = "mvarchive") -> RestoreReport:
    """A small restore in one process with the models this worker already holds: the same checks
    and refusals as ``restore-dataset``. A stack worker's on-demand jobs are recorded as runs of
    this flow (:mod:`mvarchive.flows.on_demand_record`: answer first, record after), without
    running it, so that the answer does not wait for Prefect; called, it runs the job itself."""
    from mvarchive.runtime.model_cache import worker_codec_loader

    report = restore_here(config, _tracking(tracking_uri, experiment), load=worker_codec_loader(), placement="stack")
    report.flow_run_id = _flow_run_id()
    return report


@flow(name="verify-on-demand", log_prints=True)
def verify_on_demand(config: VerifyConfig, tracking_uri: str | None = None,
                     experiment: str = "mvarchive") -> RestoreReport:
    """A small verify in one process with the worker's models (see :func:`restore_on_demand`)."""
    from mvarchive.runtime.model_cache import worker_codec_loader

    report = verify_here(config, _tracking(tracking_uri, experiment), load=worker_codec_loader(), placement="stack")
    report.flow_run_id = _flow_run_id()
    return report
