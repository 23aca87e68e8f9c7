"""Drift decisions stored on the archive runs themselves (MLflow tags and metrics).

The streak of drifted runs is read back from MLflow rather than kept in a state file: the
runs are the record, a person sees the same numbers in the UI, and a scheduled run on
another machine finds the same history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .drift import DriftDecision

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["ARCHIVE_TAG", "DIGEST_TAG", "EXCEEDED_TAG", "REASON_TAG", "TRIGGERED_TAG", "previous_exceeded",
           "record_decision"]

ARCHIVE_TAG = "mvarchive.archive"  # the archive's URL, set on every archive run
DIGEST_TAG = "mvarchive.weights_digest"  # the model that encoded the run
EXCEEDED_TAG = "mvarchive.drift.exceeded"
TRIGGERED_TAG = "mvarchive.drift.triggered"
REASON_TAG = "mvarchive.drift.reason"


def previous_exceeded(
    client: MlflowClient, experiment_id: str, archive_url: str, weights_digest: str, exclude_run: str | None,
    limit: int = 20,
) -> list[bool]:
    """Drift verdicts of earlier archive runs of this archive and model, newest first
    (runs without a verdict — no reference, failed runs — are skipped)."""
    if not weights_digest.isalnum():
        raise ValueError(f"weights digest must be alphanumeric, got {weights_digest!r}")
    # MLflow's filter language cannot quote every URL; the digest is hex, the URL is compared here
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{DIGEST_TAG}` = '{weights_digest}'",
        order_by=["attributes.start_time DESC"],
        max_results=500,
    )
    out = []
    for run in runs:
        tags = run.data.tags
        if run.info.run_id == exclude_run or tags.get(ARCHIVE_TAG) != archive_url or EXCEEDED_TAG not in tags:
            continue
        out.append(run.data.tags[EXCEEDED_TAG] == "true")
    return out[:limit]


def record_decision(client: MlflowClient, run_id: str, decision: DriftDecision) -> None:
    """Write the verdict on the archive run: tags to filter by, metrics to plot."""
    import time

    from mlflow.entities import Metric, RunTag

    stamp = int(time.time() * 1000)
    figures = {**{f"drift/{key}": float(value) for key, value in decision.figures.items()},
               "drift/streak": float(decision.streak)}
    client.log_batch(  # one store transaction
        run_id,
        metrics=[Metric(key, value, stamp, 0) for key, value in figures.items()],
        tags=[RunTag(EXCEEDED_TAG, "true" if decision.exceeded else "false"),
              RunTag(TRIGGERED_TAG, "true" if decision.triggered else "false"),
              RunTag(REASON_TAG, decision.reason[:5000])],
    )
