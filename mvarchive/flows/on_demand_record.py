"""The bookkeeping of an on-demand job on a stack worker: answer first, record after.

A one-group restore on a warm worker decodes in about a second; creating, updating and closing a
Prefect flow run and an MLflow run costs several HTTP round trips to the stack's servers (about as
long again on this machine). So the worker hands the answer back as soon as the files are written
and verified, and a :class:`JobRecorder` thread records the job beside it and after it:

- at the job's start it opens the Prefect flow run of ``restore-on-demand`` / ``verify-on-demand``
  (state ``Running``, the flow's own parameters), so Prefect's start time is the job's;
- once the request is planned it opens the MLflow run (as ``restore_here`` does: a refused
  request gets no MLflow run, only a failed flow run);
- after the answer it logs the run's parameters and metrics (``decode_s``, ``wall_s``, group
  counts, ``placement``), ends the MLflow run (``FINISHED``, or ``FAILED`` when decoding raised)
  and sets the flow run ``Completed``, or ``Failed`` with the error when the job failed or refused.

The ids opened before the answer is ready travel with it; the others are recorded anyway and are
found by the request id (flow run name ``<verb>-<request>``, MLflow tag ``mvarchive.request``).
A failure to record is logged on the worker (logger ``mvarchive.restore.record``) and never changes the
answer. The thread is not a daemon, so a worker that shuts down finishes its records first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mvarchive.tracking import RunLogger

    from .on_demand import OnDemandJob, Outcome

__all__ = ["JobRecorder", "RunRecord", "REQUEST_TAG"]



def _worker_log() -> logging.Logger:
    """``mvarchive.restore.record``, with a stderr handler of its own (once per process): Prefect
    gives the root logger of a process that ran a flow a console handler at CRITICAL, which would
    hide these errors from the worker's log."""
    log = logging.getLogger("mvarchive.restore.record")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    return log

#: The MLflow tag (and, as ``mvarchive.request:<id>``, the Prefect tag) naming the command's request.
REQUEST_TAG = "mvarchive.request"


@dataclass(frozen=True)
class RunRecord:
    """What the MLflow run of a planned job logs: its name, and (after decoding) params and metrics."""

    run_name: str
    params: Mapping[str, Any] | None = None
    metrics: Mapping[str, float] | None = None


class JobRecorder:
    """Records one on-demand job's Prefect flow run and MLflow run from a thread of its own."""

    def __init__(self, job: OnDemandJob) -> None:
        self.job = job
        self.flow_run_id: str | None = None
        self.mlflow_run_id: str | None = None
        self._planned: RunRecord | None = None
        self._outcome: Outcome | None = None
        self._record: RunRecord | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"mvarchive-record-{job.request}", daemon=False)

    @classmethod
    def start(cls, job: OnDemandJob) -> JobRecorder:
        """Start recording ``job``. The clients are imported here, in the task's thread (a no-op
        on a warm worker): a first job importing torch in one thread and MLflow in another can
        trip Python's import-deadlock check."""
        if job.prefect_api_url:
            import prefect.client.orchestration  # noqa: F401

            from . import restore  # noqa: F401 - the flows the runs belong to
        if job.tracking_uri:
            import mvarchive.tracking  # noqa: F401
        recorder = cls(job)
        recorder._thread.start()
        return recorder

    def planned(self, run_name: str) -> None:
        """The request passed its checks: the MLflow run can be opened (named as the flow names it)."""
        with self._changed:
            self._planned = RunRecord(run_name)
            self._changed.notify_all()

    def finish(self, outcome: Outcome, record: RunRecord | None) -> None:
        """The answer is ready: hand it to the thread and put the ids opened so far on the report.
        Never waits for the servers."""
        with self._changed:
            self._outcome, self._record = outcome, record
            self._changed.notify_all()
        if outcome.report is not None:
            outcome.report.flow_run_id = self.flow_run_id
            outcome.report.mlflow_run_id = self.mlflow_run_id

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # The thread: every step guarded, so one server being down does not stop the other's record.

    def _run(self) -> None:
        started = time.time()
        flow_run = self._step("open the Prefect flow run", self._open_flow_run) if self.job.prefect_api_url else None
        with self._changed:
            self._changed.wait_for(lambda: self._planned is not None or self._outcome is not None)
            planned = self._planned
        logger = None
        if planned is not None and self.job.tracking_uri:
            logger = self._step("open the MLflow run", lambda: self._open_mlflow_run(planned.run_name))
        with self._changed:
            self._changed.wait_for(lambda: self._outcome is not None)
            outcome, record = self._outcome, self._record
        assert outcome is not None
        if logger is not None:
            self._step("close the MLflow run", lambda: self._close_mlflow_run(logger, outcome, record))
        if flow_run is not None:
            self._step("close the Prefect flow run", lambda: self._close_flow_run(flow_run, outcome, started))

    def _step(self, what: str, step: Callable[[], Any]) -> Any:
        try:
            return step()
        except Exception:  # noqa: BLE001 - a record that fails must not fail (or delay) the restore
            _worker_log().exception("%s request %s: could not %s; the %s itself is not affected",
                          self.job.verb, self.job.request, what, self.job.verb)
            return None

    def _prefect(self) -> Any:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        return temporary_settings({PREFECT_API_URL: self.job.prefect_api_url})

    def _open_flow_run(self) -> Any:
        from prefect.client.orchestration import get_client
        from prefect.states import Running

        from .restore import restore_on_demand, verify_on_demand

        flow = verify_on_demand if self.job.verb == "verify" else restore_on_demand
        parameters: dict[str, Any] = {"config": self.job.config, "tracking_uri": self.job.tracking_uri,
                      "experiment": self.job.experiment}
        with self._prefect(), get_client(sync_client=True) as client:
            run = client.create_flow_run(flow, name=f"{self.job.verb}-{self.job.request}",
                                         parameters=flow.serialize_parameters(parameters),
                                         tags=[f"{REQUEST_TAG}:{self.job.request}"], state=Running())
        self.flow_run_id = str(run.id)
        return run.id

    def _close_flow_run(self, flow_run_id: Any, outcome: Outcome, started: float) -> None:
        from prefect.client.orchestration import get_client
        from prefect.states import Completed, Failed

        state: Any
        if outcome.report is not None:
            report = outcome.report
            state = Completed(message=f"{self.job.verb}: {report.images} images of {report.groups} groups, "
                                      f"decode {report.decode_s:.2f} s, job {time.time() - started:.2f} s")
        else:
            state = Failed(message=f"{outcome.error_type}: {outcome.error}")
        with self._prefect(), get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run_id, state, force=True)

    def _open_mlflow_run(self, run_name: str) -> RunLogger:
        from mvarchive.tracking import RunLogger

        tags = {"mvarchive.job": self.job.verb, REQUEST_TAG: self.job.request}
        if self.flow_run_id:
            tags["mvarchive.prefect_flow_run"] = self.flow_run_id
        assert self.job.tracking_uri is not None
        logger = RunLogger(self.job.tracking_uri, self.job.experiment, run_name, tags)
        self.mlflow_run_id = logger.run_id
        return logger

    @staticmethod
    def _close_mlflow_run(logger: RunLogger, outcome: Outcome, record: RunRecord | None) -> None:
        """As ``tracked_run`` around the decoding: FINISHED with the metrics once decoding ran
        (groups that failed their check included: the metrics count them), FAILED if it raised."""
        decoded = record is not None and record.metrics is not None
        try:
            if decoded:
                assert record is not None and record.params is not None and record.metrics is not None
                logger.log_params(record.params)
                logger.log_metrics(record.metrics)
        finally:
            logger.finish(failed=not decoded)
