"""After each archive run: compare it with its model's reference figures, record the verdict,
and ask for retraining (a Prefect event) when the drift persists.

Only models from the registry have reference figures (the RD point each version carries from
its evaluation dataset); archives written from a plain checkpoint are not watched.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .drift import DriftDecision, DriftPolicy, RDFigures, assess_drift, mse_from_psnr
from .history import ARCHIVE_TAG, DIGEST_TAG, previous_exceeded, record_decision

__all__ = ["ArchiveRunFigures", "DRIFT_THRESHOLD_ENV", "DRIFT_RUNS_ENV", "policy_from_env", "watch_archive_run"]

log = logging.getLogger("mvarchive.drift")

DRIFT_THRESHOLD_ENV = "MVARCHIVE_DRIFT_THRESHOLD"
DRIFT_RUNS_ENV = "MVARCHIVE_DRIFT_RUNS"


def policy_from_env(environ: Mapping[str, str] | None = None) -> DriftPolicy:
    """The drift policy of this process: defaults, or MVARCHIVE_DRIFT_THRESHOLD / _RUNS."""
    env = os.environ if environ is None else environ
    kwargs: dict[str, Any] = {}
    if env.get(DRIFT_THRESHOLD_ENV, "").strip():
        kwargs["threshold"] = float(env[DRIFT_THRESHOLD_ENV])
    if env.get(DRIFT_RUNS_ENV, "").strip():
        kwargs["consecutive"] = int(env[DRIFT_RUNS_ENV])
    return DriftPolicy(**kwargs)


@dataclass(frozen=True)
class ArchiveRunFigures:
    """What one archive run measured, and with which model."""

    archive_url: str
    dataset_url: str
    codec: str
    weights_digest: str
    model_uri: str | None  # the pinned registry URI (models:/NAME/VERSION), None for a plain checkpoint
    bpp: float  # over every group the run encoded (real bytes)
    psnr: float  # mean over the groups whose quality was measured

    def figures(self) -> RDFigures:
        return RDFigures.from_psnr(self.bpp, self.psnr)


def reference_figures(tags: Mapping[str, str]) -> tuple[RDFigures, float] | None:
    """The champion's RD point and λ from its registry tags, or None when it has none."""
    try:
        lmbda = float(tags["lmbda"])
        bpp = float(tags["bpp"])
        mse = float(tags["mse"]) if "mse" in tags else mse_from_psnr(float(tags["psnr"]))
    except (KeyError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (lmbda, bpp, mse)) or lmbda <= 0:
        return None
    return RDFigures(bpp, mse), lmbda


def watch_archive_run(
    run: ArchiveRunFigures, run_id: str, tracking_uri: str, experiment_id: str,
    policy: DriftPolicy | None = None, emit: bool = True,
) -> DriftDecision | None:
    """Judge the archive run ``run_id`` (already logged to MLflow) and record the verdict on it;
    when retraining is due, emit ``mvarchive.drift.detected`` for the Prefect automation.

    Returns None (and records nothing) when the model has no reference figures.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    client.set_tag(run_id, ARCHIVE_TAG, run.archive_url)
    client.set_tag(run_id, DIGEST_TAG, run.weights_digest)
    if not run.model_uri or not math.isfinite(run.bpp) or not math.isfinite(run.figures().mse):
        return None
    from mvarchive.models.registry import version_tags

    tags = version_tags(run.model_uri, tracking_uri)
    reference = reference_figures(tags)
    if reference is None:
        log.warning("drift: %s has no reference RD point (tags bpp, psnr/mse, lmbda); not watched", run.model_uri)
        return None
    figures, lmbda = reference
    history = previous_exceeded(client, experiment_id, run.archive_url, run.weights_digest, exclude_run=run_id)
    decision = assess_drift(run.figures(), figures, lmbda, history, policy or policy_from_env())
    record_decision(client, run_id, decision)
    client.set_tag(run_id, "mvarchive.model", run.model_uri)
    if decision.exceeded:
        log.warning("%s: %s", run.archive_url, decision.reason)
    if decision.triggered and emit:
        from mvarchive.models.registry import CHAMPION
        from mvarchive.scheduling.events import emit_drift_event

        name = run.model_uri[len("models:/"):].split("/")[0].split("@")[0]
        emit_drift_event(
            run.archive_url, run.codec, decision.figures, model=f"models:/{name}@{CHAMPION}",
            dataset=run.dataset_url, eval_dataset=run.dataset_url, triggered_by=run_id, related_run_ids=[run_id],
        )
        client.set_tag(run_id, "mvarchive.drift.event", "mvarchive.drift.detected")
    return decision
