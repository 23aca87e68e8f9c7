"""A small restore or verify as one task on a warm worker of a running Dask cluster.

The calling process (the ``mvarchive`` command) only pickles the request and waits: it imports
neither torch nor Prefect nor MLflow. The worker, which keeps its torch import and its loaded
codecs between tasks (:func:`mvarchive.runtime.model_cache.worker_codec_loader`), plans, decodes,
checks and writes exactly as the flow does (:mod:`mvarchive.flows.restore_core`) and hands back
the report, or the error as text (so that reading it needs no import of the library's exception
classes here), as soon as it has one. The Prefect flow run (when a Prefect API is given) and the
MLflow run (when a tracking URI is) are recorded by the worker beside the job and after the
answer (:mod:`mvarchive.flows.on_demand_record`): the user does not wait for the bookkeeping.
"""

from __future__ import annotations

import dataclasses
import uuid
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .restore_config import RestoreConfig, RestoreReport, VerifyConfig

if TYPE_CHECKING:  # restore_core (datasets, progress bars) is the worker's import, not the command's
    from .on_demand_record import JobRecorder, RunRecord
    from .restore_core import Loader

__all__ = ["OnDemandJob", "Outcome", "run_on_cluster", "run_on_worker"]

#: What a user's mistake raises (the library's errors are ``ValueError`` subclasses): shown as one line.
USER_ERRORS: tuple[type[BaseException], ...] = (KeyError, FileNotFoundError, FileExistsError, ValueError, TypeError)


@dataclass(frozen=True)
class OnDemandJob:
    config: RestoreConfig | VerifyConfig  # a VerifyConfig writes nothing
    tracking_uri: str | None = None  # MLflow store; None: no MLflow run
    experiment: str = "mvarchive"
    prefect_api_url: str | None = None  # Prefect API to record the flow run in; None: no flow run
    request: str = field(default_factory=lambda: uuid.uuid4().hex[:12])  # names the job's records

    @property
    def verb(self) -> str:
        return "verify" if isinstance(self.config, VerifyConfig) else "restore"

    def resolved(self) -> OnDemandJob:
        """The job with its paths made absolute here: the worker runs in another folder."""
        from mvarchive.storage import absolute_url

        config = self.config
        changes: dict[str, Any] = {"archive": absolute_url(config.archive)}
        if config.checkpoint and not config.checkpoint.startswith("models:/"):
            changes["checkpoint"] = absolute_url(config.checkpoint)
        if isinstance(config, RestoreConfig):
            changes["out"] = absolute_url(config.out)
        return dataclasses.replace(self, config=dataclasses.replace(config, **changes))


@dataclass(frozen=True)
class Outcome:
    """The worker's answer: a report, or an error message (``user_error``: a refusal or bad input)."""

    report: RestoreReport | None = None
    error: str | None = None
    error_type: str = ""
    user_error: bool = False


def run_on_worker(job: OnDemandJob) -> Outcome:
    """The Dask task: run the job in this worker process with its cached models, and answer as
    soon as the files are written and verified; the Prefect flow run and the MLflow run are
    recorded beside and after it (:mod:`mvarchive.flows.on_demand_record`)."""
    from mvarchive.runtime.model_cache import worker_codec_loader

    from .on_demand_record import JobRecorder

    recorder = JobRecorder.start(job) if job.prefect_api_url or job.tracking_uri else None
    records: list[RunRecord] = []
    try:
        outcome = Outcome(_run(job, worker_codec_loader(), recorder, records))
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        outcome = Outcome(error=str(message), error_type=type(exc).__name__, user_error=True)
    except Exception as exc:  # noqa: BLE001 - reported to the command as one line
        outcome = Outcome(error=str(exc), error_type=type(exc).__name__)
    if recorder is not None:
        recorder.finish(outcome, records[0] if records else None)
    return outcome


def _run(job: OnDemandJob, load: Loader, recorder: JobRecorder | None, records: list[RunRecord]) -> RestoreReport:
    """Plan, decode, check and write as ``restore_here`` / ``verify_here`` do, telling the
    recorder when the request is planned and keeping what its MLflow run logs in ``records``
    (also when some groups then fail their check)."""
    from .on_demand_record import RunRecord
    from .restore_core import (
        decode_here,
        plan_restore,
        plan_verify,
        raise_failures,
        restore_record,
        run_name,
        verify_record,
    )

    config = job.config
    if isinstance(config, VerifyConfig):
        plan = plan_verify(config, load=load)
        restore = config.as_restore()
    else:
        plan = plan_restore(config, load=load)
        restore = config
    name = run_name(job.verb, plan)
    if recorder is not None:
        recorder.planned(name)
    report = decode_here(plan, restore, job.verb, False, load, placement="stack")
    if isinstance(config, VerifyConfig):
        records.append(RunRecord(name, *verify_record(plan, report)))
        return report
    records.append(RunRecord(name, *restore_record(plan, report, config)))
    return raise_failures(report, config)


def _worker_for(archive: str, workers: list[str]) -> str | None:
    """The same worker for the same archive (its model stays warm there), spread over workers."""
    if not workers:
        return None
    return sorted(workers)[zlib.crc32(archive.encode()) % len(workers)]


def run_on_cluster(job: OnDemandJob, address: str, connect_timeout: float = 10.0) -> Outcome:
    """Send the job to the scheduler at ``address`` and wait for its outcome."""
    from distributed import Client

    job = job.resolved()
    with Client(address, timeout=connect_timeout, set_as_default=False) as client:
        known = client.scheduler_info()["workers"]
        workers = [w for w, info in known.items() if not info.get("resources", {}).get("GPU")] or list(known)
        chosen = _worker_for(job.config.archive, workers)
        future = client.submit(run_on_worker, job, pure=False, workers=[chosen] if chosen else None,
                               allow_other_workers=True)
        return future.result()
