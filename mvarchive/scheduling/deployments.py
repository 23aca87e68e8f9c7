"""Schedules as Prefect deployments on a persistent Prefect server: add, list, remove, run.

Every schedule is a deployment ``archive-dataset/NAME`` of :func:`scheduled_archive` in the
process work pool ``mvarchive`` that ``mvarchive serve`` polls. A deployment's concurrency
limit is 1 with the collision strategy CANCEL_NEW: a run that comes due while the previous one
still archives into the same destination is cancelled (the next run catches up anyway), so two
scheduled runs never write one archive at once and late runs never pile up.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID

from mvarchive.scheduling.spec import (
    ARCHIVE_FLOW_NAME,
    SCHEDULE_TAG_PREFIX,
    TAG,
    WORK_POOL,
    ScheduleError,
    ScheduleSpec,
    describe_every,
)

NO_SERVER = "schedules need a running Prefect server: run `mvarchive services up` (or set PREFECT_API_URL)"


def require_api_url(api_url: str | None) -> str:
    """The persistent server's API URL, checked to answer; one clear line otherwise."""
    if not api_url:
        raise ScheduleError(NO_SERVER)
    import httpx

    try:
        httpx.get(f"{api_url.rstrip('/')}/health", timeout=10).raise_for_status()
    except httpx.HTTPError as exc:
        raise ScheduleError(f"no Prefect server answers at {api_url} ({type(exc).__name__}); {NO_SERVER}") from None
    return api_url


@contextlib.contextmanager
def prefect_api(api_url: str) -> Iterator[Any]:
    """A sync Prefect client for ``api_url`` (settings scoped to the block, nothing global)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        yield client


def ensure_work_pool(client: Any, name: str = WORK_POOL) -> None:
    """Create the process work pool that ``mvarchive serve`` polls, if it is missing."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    try:
        client.read_work_pool(name)
    except ObjectNotFound:
        with contextlib.suppress(ObjectAlreadyExists):
            client.create_work_pool(WorkPoolCreate(
                name=name, type=ProcessWorker.type, base_job_template=ProcessWorker.get_default_base_job_template(),
                description="mvarchive schedules and retraining; served by `mvarchive serve`",
            ))


def register_deployment(api_url: str, deployment: Any) -> UUID:
    """Create or update a RunnerDeployment on the server at ``api_url``; its id.

    ``apply`` dispatches on the context (a coroutine inside a running event loop): asked for
    the synchronous call explicitly, so the id is never an un-awaited coroutine."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}):
        deployment_id = deployment.apply(_sync=True)
    if not isinstance(deployment_id, UUID):
        raise TypeError(f"Prefect returned {type(deployment_id).__name__} for a deployment id")
    return deployment_id


def apply_schedule(api_url: str, spec: ScheduleSpec) -> UUID:
    """Create or update the deployment ``archive-dataset/NAME`` with its schedule (active)."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.deployments.runner import EntrypointType, RunnerDeployment

    from mvarchive.scheduling.flow import scheduled_archive

    schedule = spec.prefect_schedule()
    with prefect_api(api_url) as client:
        ensure_work_pool(client)
    deployment = RunnerDeployment.from_flow(
        scheduled_archive, name=spec.name, schedules=[DeploymentScheduleCreate(schedule=schedule, active=True)],
        parameters=spec.parameters(), tags=spec.tags(),
        description=f"mvarchive schedule {spec.name}: archive {spec.parameters()['source']} into "
                    f"{spec.parameters()['dest']}",
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
        work_pool_name=WORK_POOL, entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return register_deployment(api_url, deployment)


@dataclass
class ScheduleRow:
    """One schedule as ``schedule list`` shows it."""

    name: str
    schedule: str
    active: bool
    source: str
    dest: str
    model: str
    next_run: str | None
    last_run: str | None
    last_state: str | None
    deployment_id: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _describe_schedule(deployment: Any) -> tuple[str, bool]:
    if not deployment.schedules:
        return "none", False
    parts, active = [], False
    for item in deployment.schedules:
        s = item.schedule
        if getattr(s, "cron", None):
            parts.append(f"cron {s.cron} ({s.timezone or 'UTC'})")
        elif getattr(s, "interval", None):
            parts.append(f"every {describe_every(s.interval)}")
        else:
            parts.append(type(s).__name__)
        active = active or item.active
    return "; ".join(parts), active and not deployment.paused


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat(timespec="seconds") if value else None


def _schedule_deployments(client: Any) -> list[Any]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags, FlowFilter, FlowFilterName

    return client.read_deployments(
        deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[TAG])),
        flow_filter=FlowFilter(name=FlowFilterName(any_=[ARCHIVE_FLOW_NAME])),
    )


def list_schedules(api_url: str) -> list[ScheduleRow]:
    """Every schedule on the server, with its next scheduled run and its last run's state."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    rows = []
    with prefect_api(api_url) as client:
        for deployment in sorted(_schedule_deployments(client), key=lambda d: d.name):
            by_id = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
            upcoming = client.read_flow_runs(
                deployment_filter=by_id, sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=1,
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
            )
            past = client.read_flow_runs(
                deployment_filter=by_id, sort=FlowRunSort.START_TIME_DESC, limit=1,
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=[StateType.SCHEDULED]))),
            )
            text, active = _describe_schedule(deployment)
            params = deployment.parameters or {}
            last = past[0] if past else None
            rows.append(ScheduleRow(
                name=deployment.name, schedule=text, active=active, source=params.get("source", ""),
                dest=params.get("dest", ""),
                model=params.get("model") or ("untrained" if params.get("untrained") else ""),
                next_run=_iso(upcoming[0].expected_start_time) if upcoming else None,
                last_run=_iso(last.start_time or last.expected_start_time) if last else None,
                last_state=last.state_name if last else None, deployment_id=str(deployment.id),
            ))
    return rows


def _read_schedule(client: Any, name: str) -> Any:
    from prefect.exceptions import ObjectNotFound

    try:
        deployment = client.read_deployment_by_name(f"{ARCHIVE_FLOW_NAME}/{name}")
    except ObjectNotFound:
        raise ScheduleError(f"no schedule named {name!r} (see `mvarchive schedule list`)") from None
    if f"{SCHEDULE_TAG_PREFIX}{name}" not in (deployment.tags or []):
        raise ScheduleError(f"deployment {ARCHIVE_FLOW_NAME}/{name} is not an mvarchive schedule")
    return deployment


def remove_schedule(api_url: str, name: str) -> UUID:
    """Delete the schedule's deployment (and its future runs); past runs stay on the server."""
    with prefect_api(api_url) as client:
        deployment = _read_schedule(client, name)
        client.delete_deployment(deployment.id)
        return deployment.id


def run_schedule(api_url: str, name: str, wait: bool = False, poll_s: float = 2.0) -> Any:
    """Start a run of the schedule now; with ``wait``, return it in its final state."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with prefect_api(api_url) as client:
        _read_schedule(client, name)
    with temporary_settings({PREFECT_API_URL: api_url}):
        return run_deployment(f"{ARCHIVE_FLOW_NAME}/{name}", timeout=None if wait else 0, poll_interval=poll_s,
                              tags=["manual"])


def run_summary(api_url: str, flow_run: Any) -> dict[str, Any] | None:
    """The summary a completed schedule run returned (its persisted result), if readable here."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if flow_run.state is None or not flow_run.state.is_completed():
        return None
    try:
        with temporary_settings({PREFECT_API_URL: api_url}):
            value = flow_run.state.result()
    except Exception:  # noqa: BLE001 - stored where this host cannot read it: the state is the answer
        return None
    return value if isinstance(value, dict) else None
