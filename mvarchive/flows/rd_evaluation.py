"""The evaluation flow: learned codecs and classical baselines over a dataset -> RD curves, BD, MLflow.

One Prefect task per rate point (:mod:`mvarchive.tasks.evaluate_point`: a codec at one
checkpoint, a baseline at one setting), each coding every selected group, so the points run in
parallel on Dask (``run_on_dask``). The flow then groups the points into curves, computes BD
against the anchor, writes

* ``results.json``: the :class:`~mvarchive.evaluation.EvaluationResult` (per group and per view
  records; load it with ``EvaluationResult.load`` to compare two evaluations),
* ``rd_psnr.png`` and ``rd_ms_ssim.png``: RD curves,
* ``bd_table.md`` and ``rd_table.md``: BD against the anchor (interpolation named) and every point,

into ``out_dir``, and logs the same files, the parameters and the metrics to one MLflow run.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from prefect import flow
from prefect.futures import as_completed

from mvarchive.codecs import get_spec
from mvarchive.datasets import discover_dataset
from mvarchive.evaluation.baselines import BASELINE_NAMES, parse_baselines
from mvarchive.evaluation.bd import BD_METHODS, DEFAULT_METHOD
from mvarchive.evaluation.planning import PointSpec, plan_points
from mvarchive.evaluation.results import EvaluationResult, anchor_problem, assemble_result
from mvarchive.progress import progress_bar
from mvarchive.tasks.evaluate_point import EvaluatePointJob, evaluate_point_task
from mvarchive.tracking import RunLogger, TrackingConfig, environment_params, tracked_run

_MAX_PARAM = 6000  # characters kept of a parameter value (MLflow's limit)

__all__ = ["EvaluateConfig", "EvaluateReport", "evaluate_dataset"]


@dataclass
class EvaluateConfig:
    """What to evaluate on which dataset, and where the results go.

    ``codecs`` are registered codec names, optionally ``name:preset`` (default preset ``paper``);
    ``checkpoints`` are trained weights (paths, URLs or registry URIs ``models:/NAME/VERSION``,
    ``models:/NAME@ALIAS``), one rate point each, assigned to the codec they hold; a
    codec without checkpoints is evaluated once, untrained (weights from ``seed``).
    ``baselines`` is ``"all"``, ``"none"`` or a comma-separated list; the anchor baseline is
    always evaluated so that the BD table has its reference.
    """

    dataset: str
    codecs: list[str] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    baselines: str = "all"
    anchor: str = "x265-intra"
    bd_method: str = DEFAULT_METHOD
    out_dir: str = "eval-output"
    layout: str = "auto"
    groups: list[str] | None = None  # None: every group
    seed: int = 0
    storage_options: dict = field(default_factory=dict)


@dataclass
class EvaluateReport:
    result: EvaluationResult
    out_dir: str
    files: dict[str, str]  # results.json, rd_psnr.png, rd_ms_ssim.png, bd_table.md, rd_table.md
    anchor_problem: str | None
    wall_s: float
    mlflow_run_id: str | None = None


def registry_checkpoints(checkpoints: list[str],
                         tracking_uri: str | None) -> tuple[list[str], dict[str, tuple[str, str, str]]]:
    """Registry URIs among ``checkpoints`` replaced by their cached local files (planning reads
    them here), and ``{local file: (pinned models:/ URI, label, weights digest)}`` to put back."""
    from mvarchive.models.registry import checkpoint_path, is_model_uri, resolve_model_uri, version_tags

    local: list[str] = []
    pinned: dict[str, tuple[str, str, str]] = {}
    for text in checkpoints:
        if not is_model_uri(text):
            local.append(text)
            continue
        ref = resolve_model_uri(text, tracking_uri)
        tags = version_tags(ref.uri, tracking_uri)
        path = str(checkpoint_path(ref.uri, tracking_uri))
        lmbda = f" λ={float(tags['lmbda']):g}" if tags.get("lmbda") else ""
        local.append(path)
        pinned[path] = (ref.uri, f"{ref.name} v{ref.version}{lmbda}", tags.get("weights_digest", ""))
    return local, pinned


def _pin(spec: PointSpec, pinned: dict[str, tuple[str, str, str]]) -> PointSpec:
    """Workers fetch a registry version by its pinned URI (and check its digest), not by a
    path that exists only on this host."""
    if spec.ref is None or spec.ref.checkpoint not in pinned:
        return spec
    uri, label, digest = pinned[spec.ref.checkpoint]
    return replace(spec, label=label, ref=replace(spec.ref, checkpoint=uri, digest=digest or None))


def run_name(specs: list[PointSpec], dataset: str) -> str:
    """``evaluate mvarchive-ldmic-fast v3 λ=1024 on stereo`` (the learned points, else "baselines")."""
    learned = [s.label if s.label.startswith("mvarchive-") else f"{s.codec} {s.label}" for s in specs
               if s.kind == "learned"]
    shown = ", ".join(learned[:3]) + (f" and {len(learned) - 3} more" if len(learned) > 3 else "")
    return f"evaluate {shown or 'baselines'} on {Path(dataset.rstrip('/')).name or dataset}"


def _baseline_selection(config: EvaluateConfig) -> list[str]:
    names = parse_baselines(config.baselines)
    if config.anchor in BASELINE_NAMES and config.anchor not in names:
        names.append(config.anchor)  # the BD table needs its reference curve
    return names


def _check_config(config: EvaluateConfig, specs: list[PointSpec], num_views: int) -> None:
    if config.bd_method not in BD_METHODS:
        raise ValueError(f"unknown BD interpolation {config.bd_method!r}; choose one of {', '.join(BD_METHODS)}")
    learned = sorted({s.codec for s in specs if s.kind == "learned"})
    if config.anchor not in BASELINE_NAMES and config.anchor not in learned:
        raise ValueError(f"anchor {config.anchor!r} is neither a baseline ({', '.join(BASELINE_NAMES)}) "
                         f"nor one of the evaluated codecs ({', '.join(learned) or 'none'})")
    for name in learned:
        spec = get_spec(name)
        if not spec.views.accepts(num_views):
            raise ValueError(f"codec {name!r} takes {spec.views} views; the dataset has {num_views} cameras")


def write_outputs(result: EvaluationResult, out_dir: str | Path) -> dict[str, str]:
    """results.json, the two RD plots and the two Markdown tables, in ``out_dir``."""
    from mvarchive.evaluation.plots import write_rd_plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"results.json": str(result.save(out / "results.json"))}
    for stem, path in write_rd_plots(result, out).items():
        files[f"{stem}.png"] = str(path)
    problem = anchor_problem(result)
    bd_text = result.bd_markdown() if problem is None else f"No BD table: {problem}.\n"
    (out / "bd_table.md").write_text(bd_text, encoding="utf-8")
    (out / "rd_table.md").write_text(result.rd_markdown(), encoding="utf-8")
    files["bd_table.md"] = str(out / "bd_table.md")
    files["rd_table.md"] = str(out / "rd_table.md")
    return files


def _metric_key(text: str) -> str:
    """MLflow metric names allow letters, digits, ``_ - . / `` and spaces."""
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in text)


def log_to_mlflow(logger: RunLogger, config: EvaluateConfig, result: EvaluationResult, files: dict[str, str]) -> None:
    """Parameters, per-point and BD metrics (in batches) and the output files as artifacts."""
    from mlflow.entities import Metric, Param

    params = {k: v for k, v in asdict(config).items() if k != "storage_options"}
    params.update({
        "codecs": ",".join(config.codecs), "checkpoints": ",".join(config.checkpoints),
        "groups": ",".join(result.groups), "cameras": ",".join(result.cameras), "layout": result.layout,
        "evaluated": ",".join(c.name for c in result.curves),
        "unavailable": ",".join(result.unavailable) or "none",
        **{f"unavailable.{k}": v for k, v in result.unavailable.items()},
        **{f"curve.{c.name}": f"{c.kind}: {c.description}; {c.setting_name} "
           + ", ".join(p.label for p in c.points) for c in result.curves},
        **environment_params(),
    })
    now = int(time.time() * 1000)
    metrics: list[Metric] = []
    for curve in result.curves:
        for step, point in enumerate(curve.points):
            for key in ("bpp", "psnr", "ms_ssim", "ms_ssim_db", "psnr_gap", "encode_s_per_mpix", "decode_s_per_mpix"):
                value = point.summary.get(key)
                if value is not None and math.isfinite(value):
                    metrics.append(Metric(_metric_key(f"rd.{curve.name}.{key}"), float(value), now, step))
    for bd in result.bd:
        for key in ("bd_rate_psnr", "bd_psnr", "bd_rate_ms_ssim", "bd_ms_ssim_db"):
            value = getattr(bd, key)
            if math.isfinite(value):
                metrics.append(Metric(_metric_key(f"{key}.{bd.test}"), float(value), now, 0))
    if math.isfinite(result.wall_s):
        metrics.append(Metric("wall_s", float(result.wall_s), now, 0))
    # one request per batch instead of one per value (MLflow takes up to 100 params / 1000 metrics)
    entries = [Param(_metric_key(k), ("" if v is None else str(v))[:_MAX_PARAM]) for k, v in params.items()]
    for start in range(0, len(entries), 100):
        logger.client.log_batch(logger.run_id, params=entries[start:start + 100])
    for start in range(0, len(metrics), 1000):
        logger.client.log_batch(logger.run_id, metrics=metrics[start:start + 1000])
    for path in files.values():
        logger.log_artifact(path, "evaluation")


@flow(name="evaluate-dataset", log_prints=True)
def evaluate_dataset(config: EvaluateConfig, tracking: TrackingConfig | None = None,
                     show_progress: bool = True) -> EvaluateReport:
    """Evaluate learned codecs and classical baselines on a dataset (one task per rate point)."""
    started = time.perf_counter()
    index = discover_dataset(config.dataset, config.layout, config.storage_options)
    if config.groups:
        index = index.select(groups=config.groups)
    checkpoints, pinned = registry_checkpoints(config.checkpoints, tracking.tracking_uri if tracking else None)
    specs, unavailable = plan_points(config.codecs, checkpoints, _baseline_selection(config), config.seed)
    specs = [_pin(spec, pinned) for spec in specs]
    _check_config(config, specs, len(index.cameras))
    for name, reason in unavailable.items():
        print(f"baseline {name} is unavailable: {reason}")
    if not specs:
        raise ValueError("nothing to evaluate: give --codec/--checkpoint or available baselines")
    with tracked_run(tracking, run_name(specs, config.dataset), "evaluate") as logger:
        futures = [
            evaluate_point_task.submit(EvaluatePointJob(spec, tuple(index.groups), tuple(index.cameras),
                                                        config.storage_options))
            for spec in specs
        ]
        with progress_bar("evaluate", total=len(futures), enabled=show_progress) as bar:
            for future in as_completed(futures):
                future.result()
                bar.advance(1)
        points = [future.result() for future in futures]
        result = assemble_result(index, specs, points, unavailable, config.anchor, config.bd_method,
                                 environment_params(), time.perf_counter() - started)
        files = write_outputs(result, config.out_dir)
        problem = anchor_problem(result)
        if problem:
            print(f"no BD table: {problem}")
        report = EvaluateReport(result, config.out_dir, files, problem, time.perf_counter() - started)
        if logger:
            log_to_mlflow(logger, config, result, files)
            report.mlflow_run_id = logger.run_id
        return report
