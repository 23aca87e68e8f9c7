"""The λ sweep: one flow trains a codec at several rate points in parallel on the Dask workers.

``train_sweep`` submits one training task per λ to the flow's task runner (``run_on_dask``:
a LocalCluster, or the stack's scheduler), inside :func:`~mvarchive.infra.gpu.gpu_placement`
so that ``device="cuda"`` sweeps land only on workers advertising a GPU. Each λ trains in its
own folder ``OUT/lmbda-<λ>/`` (so each resumes from its own ``last.pt``), logs to its own
MLflow run, a child (``mlflow.parentRunId``) of one parent run ``sweep <codec> <n> λ``, and
registers its checkpoint as a version of ``mvarchive-<codec>`` exactly as a single training
run does (:func:`mvarchive.flows.train.evaluate_and_register`, measured with real bytes on the
evaluation dataset, on the worker that trained it).

The baselines are measured once, as tasks of their own running beside the training tasks. The
parent run then holds the sweep's RD curve: ``evaluation/rd_psnr.png`` (and ``rd_ms_ssim.png``
where the evaluation images are large enough for MS-SSIM), ``rd_table.md``, ``bd_table.md``,
``results.json``, ``sweep.md`` (λ, bpp, PSNR, MS-SSIM, model URI), and the BD-rate of the
learned curve against each baseline as metrics ``bd/<baseline>/bd_rate_psnr`` (…).

Re-running a killed sweep: every λ resumes from its ``last.pt``. A λ whose folder holds the
final checkpoint of a run with the asked number of steps that an earlier sweep registered
in the same MLflow store (``registered.json`` written after registering, checked against the
version's ``checkpoint_sha256`` tag) is not trained or registered again: its version is
reused, its point measured again for the curve, and the parent run records it as reused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from prefect import flow, task

from mvarchive.evaluation.bd import BDResult
from mvarchive.evaluation.measuring import RatePoint
from mvarchive.evaluation.results import EvaluationResult
from mvarchive.flows.train import TrainReport, eval_set, log_baselines, run_params, train_task
from mvarchive.models.rd_figures import (
    bd_against_baselines,
    figures_from_point,
    learned_rate_point,
    rd_curve,
    write_rd_plot,
)
from mvarchive.models.registry import ensure_registered_model, registry_client
from mvarchive.reporting import summary_markdown
from mvarchive.tasks.evaluate_point import EvaluatePointJob, evaluate_point_task
from mvarchive.tracking import RunLogger, TrackingConfig, environment_params, tracked_run
from mvarchive.training import TrainConfig, check_resume

__all__ = ["REGISTERED_MARKER", "SweepConfig", "SweepPoint", "SweepReport", "reusable_version", "sweep_point_task",
           "train_sweep"]

#: Written into a λ's folder once its checkpoint is registered: ``{"model_uri", "tracking_uri", ...}``.
REGISTERED_MARKER = "registered.json"


@dataclass(frozen=True)
class SweepConfig:
    """A sweep: ``base`` (every training setting; its ``output_dir`` holds one folder per λ,
    its ``lmbda`` is ignored) trained at each of ``lmbdas``."""

    base: TrainConfig
    lmbdas: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.lmbdas) < 2:
            raise ValueError(f"a sweep needs at least two --lmbda values, got {len(self.lmbdas)}")
        for value in self.lmbdas:
            if not value > 0:
                raise ValueError(f"--lmbda must be > 0, got {value:g}")
        if len({f"{v:g}" for v in self.lmbdas}) != len(self.lmbdas):
            raise ValueError(f"--lmbda values repeat: {', '.join(f'{v:g}' for v in self.lmbdas)}")

    def point(self, lmbda: float) -> TrainConfig:
        """One λ's training config: its own folder ``<output_dir>/lmbda-<λ>``."""
        return replace(self.base, lmbda=float(lmbda), output_dir=str(Path(self.base.output_dir) / f"lmbda-{lmbda:g}"))

    def points(self) -> list[TrainConfig]:
        return [self.point(v) for v in sorted(self.lmbdas)]


@dataclass
class SweepPoint:
    """One λ's outcome: where it trained, what it registered, its measured rate point."""

    lmbda: float
    output_dir: str
    checkpoint: str
    model_uri: str | None
    run_id: str | None  # the child run (None when tracking is off or the version was reused)
    figures: dict[str, float]
    point: RatePoint
    worker: str  # Dask worker address, or "local" outside Dask
    pid: int
    host: str
    steps: int
    resumed_from: int | None = None
    reused: bool = False


@dataclass
class SweepReport:
    parent_run_id: str | None
    points: list[SweepPoint]  # by increasing λ
    evaluation: EvaluationResult
    bd: dict[str, BDResult]  # the learned curve against each available baseline
    flow_pid: int = field(default_factory=os.getpid)

    def table(self) -> str:
        """λ, bpp, PSNR, MS-SSIM and the registered version of every point (Markdown)."""
        lines = ["| λ | bpp | PSNR dB | MS-SSIM | model | |", "|---|---|---|---|---|---|"]
        for p in self.points:
            f = p.figures
            lines.append(f"| {p.lmbda:g} | {f['bpp']:.4f} | {f['psnr']:.2f} | {f['ms_ssim']:.4f} | "
                         f"{p.model_uri or '-'} | {'reused' if p.reused else ''} |")
        return "\n".join(lines) + "\n"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _final_checkpoint(config: TrainConfig) -> Path:
    return Path(config.output_dir) / f"{config.codec}-{config.preset}.pt"


def reusable_version(config: TrainConfig, tracking_uri: str | None) -> str | None:
    """The registered version (``models:/…``) of this λ's finished run, when an earlier sweep
    registered exactly this folder's final checkpoint in this store; None means train (or resume).

    :class:`~mvarchive.training.TrainingConfigMismatch` when the folder's ``last.pt`` belongs
    to a run with other settings (as a single run would refuse it).
    """
    step = check_resume(config)
    marker = Path(config.output_dir) / REGISTERED_MARKER
    checkpoint = _final_checkpoint(config)
    if tracking_uri is None or step != config.steps or not marker.is_file() or not checkpoint.is_file():
        return None
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if info.get("tracking_uri") != tracking_uri or not info.get("model_uri"):
        return None
    from mlflow.exceptions import MlflowException

    from mvarchive.models.registry import ModelRegistryError, version_tags

    try:
        tags = version_tags(info["model_uri"], tracking_uri)
    except (MlflowException, ModelRegistryError):
        return None  # the version was deleted: register again
    return info["model_uri"] if tags.get("checkpoint_sha256") == _sha256(checkpoint) else None


def _write_marker(config: TrainConfig, report: TrainReport, tracking_uri: str) -> None:
    marker = Path(config.output_dir) / REGISTERED_MARKER
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps({"model_uri": report.model_uri, "tracking_uri": tracking_uri,
                               "training_run_id": report.mlflow_run_id, "steps": report.result.steps,
                               "weights_digest": report.result.weights_digest}, indent=2), encoding="utf-8")
    tmp.replace(marker)


def _where() -> str:
    """This process's Dask worker address ("local" outside a worker)."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "local"


@task(name="sweep-point", task_run_name="train-{config.codec}-lmbda-{config.lmbda:g}")
def sweep_point_task(config: TrainConfig, tracking: TrackingConfig | None, parent_run_id: str | None) -> SweepPoint:
    """Train, measure and register one λ of a sweep on the worker the task runner chose
    (reusing the registered version of a finished earlier run of this folder)."""
    from mvarchive.tasks.worker import prepare_torch

    prepare_torch()
    where, pid, host = _where(), os.getpid(), platform.node()
    tracking_uri = tracking.tracking_uri if tracking is not None else None
    reused = reusable_version(config, tracking_uri)
    if reused is not None:
        point = learned_rate_point(_final_checkpoint(config), f"λ={config.lmbda:g}", eval_set(config))
        print(f"λ={config.lmbda:g}: finished earlier, registered as {reused}; not trained again")
        return SweepPoint(config.lmbda, config.output_dir, str(_final_checkpoint(config)), reused, None,
                          figures_from_point(point), point, where, pid, host, config.steps, config.steps, True)
    tags = {"mvarchive.sweep": "true", "mvarchive.worker": where, "mvarchive.pid": str(pid), "mvarchive.host": host}
    if parent_run_id is not None:
        tags["mlflow.parentRunId"] = parent_run_id
    from mvarchive.training.init import init_tags

    report = train_task.fn(config, tracking, show_progress=False, run_tags=tags, eval_baselines="none",
                           version_tags=init_tags(config) or None)
    if report.point is None:  # tracking off: measured here, nothing registered
        point = learned_rate_point(report.result.checkpoint, f"λ={config.lmbda:g}", eval_set(config))
        figures = figures_from_point(point)
    else:
        point, figures = report.point, dict(report.figures or {})
    if report.model_uri is not None and tracking_uri is not None:
        _write_marker(config, report, tracking_uri)
    return SweepPoint(config.lmbda, config.output_dir, report.result.checkpoint, report.model_uri,
                      report.mlflow_run_id, figures, point, where, pid, host, report.result.steps,
                      report.result.resumed_from, False)


def sweep_run_name(config: SweepConfig) -> str:
    """``sweep ldmic-fast 3 λ``."""
    return f"sweep {config.base.codec} {len(config.lmbdas)} λ"


def _baseline_jobs(config: SweepConfig) -> tuple[list[EvaluatePointJob], dict[str, str]]:
    from mvarchive.evaluation.baselines import parse_baselines
    from mvarchive.evaluation.planning import baseline_points

    data = eval_set(config.base)
    index = data.index()
    specs, unavailable = baseline_points(parse_baselines(config.base.eval_baselines))
    jobs = [EvaluatePointJob(spec, tuple(index.groups), tuple(index.cameras), dict(data.storage_options))
            for spec in specs]
    return jobs, unavailable


def _log_parent(logger: RunLogger, config: SweepConfig, points: list[SweepPoint], evaluation: EvaluationResult,
                bd: dict[str, BDResult]) -> None:
    for step, p in enumerate(points):
        logger.log_metrics({f"rd/{k}": p.figures[k] for k in ("bpp", "psnr", "ms_ssim", "mse")} | {"rd/lmbda": p.lmbda},
                           step=step)
        logger.log_params({f"lmbda.{p.lmbda:g}.model_uri": p.model_uri or "none",
                           f"lmbda.{p.lmbda:g}.run": "reused" if p.reused else (p.run_id or "none")})
    for name, result in bd.items():
        logger.log_metrics({f"bd/{name}/{k}": getattr(result, k)
                            for k in ("bd_rate_psnr", "bd_psnr", "bd_rate_ms_ssim", "bd_ms_ssim_db")})
        if result.note:
            logger.log_params({f"bd.{name}.note": result.note})
    log_baselines(logger, evaluation)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = [write_rd_plot(evaluation, folder / "rd_psnr.png", note=_bd_note(bd, "bd_rate_psnr"))]
        if any(math.isfinite(p.figures["ms_ssim"]) for p in points):  # MS-SSIM needs sides >= 161 px
            files.append(write_rd_plot(evaluation, folder / "rd_ms_ssim.png", "rd_ms_ssim",
                                       note=_bd_note(bd, "bd_rate_ms_ssim")))
        (folder / "rd_table.md").write_text(evaluation.rd_markdown(), encoding="utf-8")
        (folder / "bd_table.md").write_text(_bd_markdown(bd), encoding="utf-8")
        files += [folder / "rd_table.md", folder / "bd_table.md", evaluation.save(folder / "results.json")]
        for path in files:
            logger.log_artifact(path, "evaluation")
    logger.log_text(summary_markdown([(f"λ={p.lmbda:g}", p.figures) for p in points],
                                     ("groups", "bpp", "psnr", "ms_ssim", "mse")), "rd_points.md")
    report = SweepReport(logger.run_id, points, evaluation, bd)
    logger.log_text(report.table(), "sweep.md")


def _bd_note(bd: dict[str, BDResult], key: str) -> str:
    """``BD-rate vs jpeg -12.3 %, vs x265-intra +4.0 %`` (the finite ones) for a plot's title."""
    parts = [f"vs {name} {getattr(r, key):+.1f} %" for name, r in bd.items() if math.isfinite(getattr(r, key))]
    return "BD-rate " + ", ".join(parts) if parts else ""


def _bd_markdown(bd: dict[str, BDResult]) -> str:
    """One BD table per baseline (each names its anchor)."""
    from mvarchive.evaluation.bd import bd_markdown

    return "\n".join(bd_markdown([result]) for result in bd.values()) if bd else "No baseline to compare with.\n"


def _parent_params(config: SweepConfig) -> dict[str, object]:
    params = run_params(config.base, None)
    for key in ("lmbda", "resumed_from", "output_dir"):
        params.pop(key, None)
    params["lmbdas"] = ",".join(f"{v:g}" for v in sorted(config.lmbdas))
    params["output_dir"] = config.base.output_dir
    return params


@flow(name="train-sweep", log_prints=True)
def train_sweep(config: SweepConfig, tracking: TrackingConfig | None = None) -> SweepReport:
    """Train every λ of ``config`` in parallel (one task each), then log the RD curve against the
    baselines on one parent MLflow run. Run it with a Dask task runner (``run_on_dask``)."""
    from mvarchive.infra.gpu import gpu_placement, require_gpu_for_flow

    require_gpu_for_flow(config.base.device, "the λ sweep")  # a CUDA task no worker can take would wait forever
    points = config.points()
    for point in points:  # another run's last.pt is refused before any run is opened
        check_resume(point)
    jobs, unavailable = _baseline_jobs(config)
    with tracked_run(tracking, sweep_run_name(config), "train-sweep", {"mvarchive.pid": str(os.getpid())}) as parent:
        if parent:
            parent.log_params({**_parent_params(config), **environment_params()})
            # before the λ tasks register versions at the same time
            ensure_registered_model(registry_client(parent.tracking_uri), config.base.codec)
        parent_id = parent.run_id if parent else None
        with gpu_placement(config.base.device):
            trained = [sweep_point_task.submit(point, tracking, parent_id) for point in points]
        measured = [evaluate_point_task.submit(job) for job in jobs]
        results = sorted((f.result() for f in trained), key=lambda p: p.lmbda)
        baselines = [f.result() for f in measured]
        evaluation = rd_curve(eval_set(config.base), [p.point for p in results], baselines, unavailable)
        bd = bd_against_baselines(evaluation, config.base.codec)
        if parent:
            _log_parent(parent, config, results, evaluation, bd)
        return SweepReport(parent_id, results, evaluation, bd)

