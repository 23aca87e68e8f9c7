"""A small restore or verify as one task on a warm worker of a running Dask cluster.

The calling process (the ``mvarchive`` command) only pickles the request and waits: it imports
neither torch nor Prefect nor MLflow. The worker, which keeps its torch import and its loaded
codecs between tasks (:func:`mvarchive.runtime.model_cache.worker_codec_loader`), plans, decodes,
checks and writes exactly as the flow does (:mod:`mvarchive.flows.restore_core`), records a
Prefect flow run when a Prefect API is given and an MLflow run when a tracking URI is, and hands
back the report, or the error as text (so that reading it needs no import of the library's
exception classes here).
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from typing import Any

from .restore_config import RestoreConfig, RestoreReport, VerifyConfig
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
    """The Dask task: run the job in this worker process with its cached models."""
    from mvarchive.runtime.model_cache import worker_codec_loader

    try:
        if job.prefect_api_url:
            from prefect.settings import PREFECT_API_URL, temporary_settings

            from .restore import restore_on_demand, verify_on_demand

            with temporary_settings({PREFECT_API_URL: job.prefect_api_url}):
                if isinstance(job.config, VerifyConfig):
                    report = verify_on_demand(job.config, job.tracking_uri, job.experiment)
                else:
                    report = restore_on_demand(job.config, job.tracking_uri, job.experiment)
        else:
            report = _run_plain(job, worker_codec_loader())
        return Outcome(report)
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return Outcome(error=str(message), error_type=type(exc).__name__, user_error=True)
    except Exception as exc:  # noqa: BLE001 - reported to the command as one line
        return Outcome(error=str(exc), error_type=type(exc).__name__)


def _run_plain(job: OnDemandJob, load: Loader) -> RestoreReport:
    from .restore_core import restore_here, verify_here

    tracking = None
    if job.tracking_uri:
        from mvarchive.tracking import TrackingConfig

        tracking = TrackingConfig(job.tracking_uri, job.experiment)
    if isinstance(job.config, VerifyConfig):
        return verify_here(job.config, tracking, load=load, placement="stack")
    return restore_here(job.config, tracking, load=load, placement="stack")


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
