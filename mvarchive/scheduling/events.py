"""The drift event and the trigger that turns it into a retraining run.

An archive run whose rate-distortion cost drifted from the champion's emits
``mvarchive.drift.detected`` about its archive (resource ``mvarchive.archive.<url>``); the
payload carries what retraining needs. The ``retrain/auto`` deployment carries a deployment
trigger on that event whose parameters are Jinja templates over the payload, so the Prefect
server's triggers service starts the run with the event's own values — no process of ours
has to be listening when the event arrives, only a worker to execute the run.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

DRIFT_EVENT = "mvarchive.drift.detected"
ARCHIVE_RESOURCE_PREFIX = "mvarchive.archive."

# payload keys a triggered flow may take as parameters (those it accepts are passed)
PAYLOAD_PARAMETERS = ("codec", "model", "dataset", "eval_dataset", "triggered_by", "archive")


def archive_resource_id(archive_url: str) -> str:
    """The event resource id of an archive."""
    return f"{ARCHIVE_RESOURCE_PREFIX}{archive_url}"


def drift_payload(
    archive_url: str, codec: str, figures: dict[str, float], *, model: str | None, dataset: str | None,
    eval_dataset: str | None = None, triggered_by: str | None = None,
) -> dict[str, Any]:
    """What retraining needs from a drift event, as plain JSON (strings, numbers)."""
    return {
        "archive": archive_url, "codec": codec, "model": model or "", "dataset": dataset or "",
        "eval_dataset": eval_dataset or "", "triggered_by": triggered_by or "",
        "figures": {k: float(v) for k, v in figures.items()},
    }


def emit_drift_event(
    archive_url: str, codec: str, figures: dict[str, float], *, model: str | None = None,
    dataset: str | None = None, eval_dataset: str | None = None, triggered_by: str | None = None,
    related_run_ids: Iterable[str] = (), related_flow_run_ids: Iterable[str] = (), flush: bool = True,
) -> Any:
    """Emit ``mvarchive.drift.detected`` for an archive (to PREFECT_API_URL); returns the Event.

    ``related_run_ids`` are MLflow run ids (the archive runs that showed the drift),
    ``triggered_by`` the one named in the retraining run's parameters. ``flush`` sends the event
    before returning (a CLI process may exit right after)."""
    from prefect.events import emit_event

    related = [{"prefect.resource.id": f"mlflow.run.{rid}", "prefect.resource.role": "mlflow-run"}
               for rid in related_run_ids]
    related += [{"prefect.resource.id": f"prefect.flow-run.{fid}", "prefect.resource.role": "flow-run"}
                for fid in related_flow_run_ids]
    event = emit_event(
        DRIFT_EVENT,
        resource={"prefect.resource.id": archive_resource_id(archive_url), "prefect.resource.name": archive_url,
                  "mvarchive.codec": codec},
        related=related,
        payload=drift_payload(archive_url, codec, figures, model=model, dataset=dataset, eval_dataset=eval_dataset,
                              triggered_by=triggered_by),
    )
    if event is None:
        raise RuntimeError(f"{DRIFT_EVENT} for {archive_url} was not emitted: no Prefect API configured")
    if flush:
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=30)
    return event


def drift_trigger(parameter_names: Iterable[str], name: str | None = None) -> Any:
    """A deployment trigger: each drift event starts one run, with every accepted payload key
    (see :data:`PAYLOAD_PARAMETERS`) passed as the parameter of the same name."""
    from prefect.events import DeploymentEventTrigger, Posture

    accepted = [p for p in PAYLOAD_PARAMETERS if p in set(parameter_names)]
    return DeploymentEventTrigger(
        name=name,
        description="retrain when an archive's rate-distortion cost drifts from the champion's",
        expect={DRIFT_EVENT},
        match={"prefect.resource.id": f"{ARCHIVE_RESOURCE_PREFIX}*"},
        posture=Posture.Reactive,
        threshold=1,
        within=timedelta(0),
        parameters={p: "{{ event.payload." + p + " }}" for p in accepted},
    )


def flow_parameter_names(flow: Any) -> list[str]:
    """Names of a Prefect flow's parameters."""
    return list(flow.parameters.properties)
