"""Recorded lifecycle steps: evaluate a version, promote it to ``@champion`` through the gate.

Each step is one MLflow run with a readable name (``evaluate mvarchive-ldmic-fast v3 on eval``,
``promote mvarchive-ldmic-fast v3 → champion``) holding its figures as metrics, the decision as
params and ``decision.json``; the version itself gets the figures as tags, so the registry page
shows what a version measured where.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .gate import GateDecision, decide
from .rd_figures import EvalSet, evaluate_version
from .registry import CHAMPION, ModelRegistryError, ModelVersionRef, registry_client, resolve_model_uri

if TYPE_CHECKING:
    from mvarchive.tracking import RunLogger

__all__ = ["PromotionReport", "champion_of", "dataset_label", "promote_version", "record_evaluation"]

_FIGURES = ("bpp", "psnr", "ms_ssim", "mse", "bytes", "groups", "rd_cost")


@dataclass
class PromotionReport:
    decision: GateDecision
    promoted: bool  # the alias moved (the gate said so, or --force)
    forced: bool
    mlflow_run_id: str | None

    @property
    def line(self) -> str:
        if self.forced and not self.decision.promote:
            return f"{self.decision.reason}; promoted anyway (--force)"
        return self.decision.reason


def dataset_label(dataset: str) -> str:
    """The short name of a dataset in run names and tag keys (its last path element)."""
    name = Path(dataset.rstrip("/")).name or dataset
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def champion_of(name: str, tracking_uri: str | None = None) -> ModelVersionRef | None:
    """The version ``@champion`` of registered model ``name`` points at, or None."""
    try:
        return resolve_model_uri(f"models:/{name}@{CHAMPION}", tracking_uri)
    except ModelRegistryError:
        return None


def _metrics(prefix: str, figures: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key in _FIGURES:
        value = figures.get(key)
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[f"{prefix}{key}"] = float(value)
    return out


def _eval_tag(figures: Mapping[str, Any], run_id: str | None) -> str:
    kept = {k: round(float(figures[k]), 6) for k in _FIGURES if isinstance(figures.get(k), (int, float))}
    return json.dumps({**kept, "dataset": figures.get("dataset"), "run_id": run_id}, sort_keys=True)


@contextlib.contextmanager
def _tracked(tracking_uri: str, experiment: str, run_name: str, job: str,
             tags: Mapping[str, str] | None) -> Iterator[RunLogger]:
    """The MLflow run that records an evaluation or a gate decision (always tracked)."""
    from mvarchive.tracking import TrackingConfig, tracked_run

    with tracked_run(TrackingConfig(tracking_uri, experiment), run_name, job, tags=tags) as logger:
        if logger is None:
            raise ValueError(f"{job} records its figures in MLflow: give a tracking URI, got {tracking_uri!r}")
        yield logger


def record_evaluation(uri: str, data: EvalSet, tracking_uri: str, experiment: str = "mvarchive",
                      tags: Mapping[str, str] | None = None) -> tuple[dict[str, Any], str | None]:
    """Evaluate ``uri`` on ``data`` in an MLflow run and tag the version with the figures
    (``eval.<dataset>``: JSON). Returns (figures, run id)."""
    ref = resolve_model_uri(uri, tracking_uri)
    label = dataset_label(data.dataset)
    with _tracked(tracking_uri, experiment, f"evaluate {ref.name} v{ref.version} on {label}", "evaluate-version",
                  {"mvarchive.model": ref.name, "mvarchive.model_version": ref.version, **(tags or {})}) as logger:
        figures = evaluate_version(ref.uri, data, tracking_uri)
        logger.log_params({"model_uri": ref.uri, "dataset": data.dataset, "max_groups": data.max_groups,
                           "weights_digest": figures["weights_digest"]})
        logger.log_metrics(_metrics("eval/", figures))
        run_id = logger.run_id
    registry_client(tracking_uri).set_model_version_tag(ref.name, ref.version, f"eval.{label}",
                                                        _eval_tag(figures, run_id))
    return figures, run_id


def promote_version(uri: str, data: EvalSet, tracking_uri: str, experiment: str = "mvarchive", *, force: bool = False,
                    min_improvement: float = 0.0, tags: Mapping[str, str] | None = None) -> PromotionReport:
    """Gate ``uri`` against the champion of its model on ``data``; move ``@champion`` to it when
    the gate says so (or ``force``). The decision, both versions' figures and λ are logged to
    one MLflow run; the candidate gets a ``gate.<dataset>`` tag with the reason."""
    ref = resolve_model_uri(uri, tracking_uri)
    champion = champion_of(ref.name, tracking_uri)
    label = dataset_label(data.dataset)
    run_tags = {"mvarchive.model": ref.name, "mvarchive.model_version": ref.version, **(tags or {})}
    with _tracked(tracking_uri, experiment, f"promote {ref.name} v{ref.version} → {CHAMPION}", "promote",
                  run_tags) as logger:
        candidate = evaluate_version(ref.uri, data, tracking_uri)
        if champion is not None and champion.version == ref.version:
            decision = GateDecision(False, f"{ref.name} v{ref.version} is already the champion", candidate,
                                    dict(candidate), "already-champion")
        else:
            decision = decide(candidate, evaluate_version(champion.uri, data, tracking_uri) if champion else None,
                              min_improvement=min_improvement)
        moved = decision.promote or (force and decision.method != "already-champion")
        logger.log_params({
            "candidate": ref.uri, "champion": champion.uri if champion else "none", "dataset": data.dataset,
            "max_groups": data.max_groups, "method": decision.method, "promote": decision.promote, "forced": force,
            "moved": moved, "min_improvement": min_improvement, "reason": decision.reason,
        })
        logger.log_metrics(_metrics("candidate/", decision.candidate)
                           | (_metrics("champion/", decision.champion) if decision.champion else {}))
        logger.log_text(json.dumps(decision.to_dict(), indent=2, default=str), "decision.json")
        client = registry_client(tracking_uri)
        if moved:
            client.set_registered_model_alias(ref.name, CHAMPION, ref.version)
        outcome = ("promoted" if moved else "rejected") + f" ({logger.run_id}): {decision.reason}"[:5000]
        client.set_model_version_tag(ref.name, ref.version, f"gate.{label}", outcome)
        return PromotionReport(decision, moved, force and not decision.promote and moved, logger.run_id)
