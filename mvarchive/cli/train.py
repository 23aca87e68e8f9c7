"""``mvarchive train``: train a codec (one rate point, or a λ sweep), registered in MLflow.

Registered in :mod:`mvarchive.cli.app` with ``app.command("train")(train_command)``. Nothing heavy is
imported before the command runs, so ``--help`` answers at once.

One ``--lmbda`` trains one rate point in the command's process (the ``train-codec`` flow) into
``--out``. Several ``--lmbda`` run the ``train-sweep`` flow (:mod:`mvarchive.flows.sweep`): one
task per λ on the Dask workers, each into ``--out/lmbda-<λ>``, then one RD curve against the
baselines on the parent MLflow run. See docs/training.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import call_or_exit, fail, out, services_of

#: CLI option -> (TrainConfig field, its default), for the loop's options (errors name the option).
LOOP_OPTIONS: dict[str, tuple[str, Any]] = {
    "--metric": ("metric", "mse"), "--lr-schedule": ("lr_schedule", "paper"), "--val-every": ("val_every", None),
    "--val-dataset": ("val_dataset", None), "--val-groups": ("val_groups", 4), "--grad-accum": ("grad_accum", 1),
    "--precision": ("precision", "auto"), "--compile": ("compile", False), "--loader-workers": ("loader_workers", 0),
    "--world-size": ("world_size", 1),
}
#: Options whose TrainConfig error messages are rewritten to name the option.
_OPTION_FIELDS = {**{option: name for option, (name, _) in LOOP_OPTIONS.items()}, "--lmbda": "lmbda",
                  "--steps": "steps", "--batch-size": "batch_size", "--crop": "crop",
                  "--checkpoint-every": "checkpoint_every", "--eval-groups": "eval_groups"}


def _as_given(text: str | None) -> str | None:
    return text


def _local_abs(text: str | None) -> str | None:
    """A local path made absolute (workers may run elsewhere); URLs and models:/ URIs unchanged."""
    if text is None or "://" in text or "::" in text or text.startswith("models:/"):
        return text
    return os.path.abspath(os.path.expanduser(text))


def _option_message(message: str) -> str:
    """``training metric must be …`` (TrainConfig's words) -> ``--metric must be …``."""
    for option, name in _OPTION_FIELDS.items():
        prefix = f"training {name} "
        if message.startswith(prefix):
            return option + " " + message[len(prefix):]
    return message


def _loop_fields(values: dict[str, Any]) -> dict[str, Any]:
    """The loop options this TrainConfig knows; an option set away from its default that it
    does not know is refused (rather than silently ignored)."""
    import dataclasses

    from mvarchive.training import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    known: dict[str, Any] = {}
    for option, (name, default) in LOOP_OPTIONS.items():
        if name in fields:
            known[name] = values[name]
        elif values[name] != default:
            raise ValueError(f"{option} is not supported by this mvarchive's training loop")
    return known


def train_command(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Training dataset folder or URL.")],
    output_dir: Annotated[Path, typer.Option("--out", help="Checkpoint folder (a sweep: one lmbda-<λ> folder per λ); re-running resumes from last.pt.")] = Path("checkpoints"),
    codec: Annotated[str, typer.Option(help="Codec name.")] = "ldmic-fast",
    preset: Annotated[str, typer.Option(help="Size preset.")] = "paper",
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 1000,
    batch_size: Annotated[int, typer.Option(help="Groups per batch.")] = 8,
    crop: Annotated[int, typer.Option(help="Square crop size (aligned across views).")] = 256,
    lmbda: Annotated[list[float] | None, typer.Option("--lmbda", metavar="FLOAT", help="Rate-distortion trade-off λ of λ·D + bpp (D: MSE on [0,1], or 1−MS-SSIM), default 1024; repeat it for a sweep trained in parallel on the Dask workers.")] = None,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate (peak of the schedule).")] = 1e-4,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N (a sweep's cuda tasks run only on GPU workers).")] = "cpu",
    layout: Annotated[str, typer.Option(help="Dataset layout.")] = "auto",
    checkpoint_every: Annotated[int | None, typer.Option(help="Save last.pt every N steps (a killed run resumes from it).")] = None,
    eval_dataset: Annotated[str | None, typer.Option(help="Dataset the registered version's RD point is measured on (default DATASET).")] = None,
    eval_groups: Annotated[int, typer.Option(help="Groups of the evaluation dataset measured (the first N).")] = 8,
    init: Annotated[str | None, typer.Option(help="Start from these weights: a checkpoint or models:/NAME/VERSION|@ALIAS (fine-tuning).")] = None,
    eval_baselines: Annotated[str, typer.Option(help="Baselines the registered version is plotted against (comma-separated, or none).")] = "jpeg,x265-intra",
    metric: Annotated[str, typer.Option(help="Distortion trained on: mse, or ms-ssim (λ then ≈ 8…256, the papers' convention).")] = "mse",
    lr_schedule: Annotated[str, typer.Option(help="Learning-rate schedule: paper (the codec's published one, fitted to --steps) or constant.")] = "paper",
    val_every: Annotated[int | None, typer.Option(help="Measure real bytes on the validation set every N steps and keep best.pt (default never).")] = None,
    val_dataset: Annotated[str | None, typer.Option(help="Validation dataset (default: the last --val-groups groups of DATASET, held out).")] = None,
    val_groups: Annotated[int, typer.Option(help="Groups used for validation.")] = 4,
    grad_accum: Annotated[int, typer.Option(help="Batches per optimizer step (effective batch = batch size × N).")] = 1,
    precision: Annotated[str, typer.Option(help="auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16.")] = "auto",
    compile_model: Annotated[bool, typer.Option("--compile", help="torch.compile the model (slow start, faster steps on GPU).")] = False,
    loader_workers: Annotated[int, typer.Option(help="DataLoader processes preparing crops (0: in the training process).")] = 0,
    world_size: Annotated[int, typer.Option(help="Data-parallel (DDP) processes on one machine: one per GPU, gloo on CPU.")] = 1,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result (a sweep: every λ and its BD) as JSON.")] = False,
) -> None:
    """Train a codec (Prefect flow); each rate point is registered as a version of mvarchive-<codec> in MLflow.

    Several --lmbda make a sweep: a task per λ on the Dask workers, an MLflow parent run with a child per λ.
    """
    lmbdas = list(lmbda or [1024.0])
    # user errors first, before any service starts (and before torch is imported)
    if steps < 1 or batch_size < 1 or crop < 64 or (checkpoint_every is not None and checkpoint_every < 1):
        fail("--steps, --batch-size and --checkpoint-every must be >= 1 and --crop >= 64")
    for lam in lmbdas:
        if not lam > 0:
            fail(f"--lmbda must be > 0, got {lam:g}")
    if len({f"{v:g}" for v in lmbdas}) != len(lmbdas):
        fail(f"--lmbda values repeat: {', '.join(f'{v:g}' for v in lmbdas)}")
    bounds: list[tuple[str, int | None, int]] = [
        ("--eval-groups", eval_groups, 1), ("--val-groups", val_groups, 1), ("--val-every", val_every, 1),
        ("--grad-accum", grad_accum, 1), ("--loader-workers", loader_workers, 0), ("--world-size", world_size, 1),
    ]
    for option, value, low in bounds:
        if value is not None and value < low:
            fail(f"{option} must be >= {low}, got {value}")
    device = _device(device, fail)
    services = services_of(ctx)
    from mvarchive.codecs import check_view_count, create_codec
    from mvarchive.datasets import discover_dataset
    from mvarchive.training import TrainConfig

    loop = call_or_exit(_loop_fields, {"metric": metric, "lr_schedule": lr_schedule, "val_every": val_every,
                                       "val_dataset": val_dataset, "val_groups": val_groups, "grad_accum": grad_accum,
                                       "precision": precision, "compile": compile_model,
                                       "loader_workers": loader_workers, "world_size": world_size})
    sweep = len(lmbdas) > 1
    paths = _local_abs if sweep else _as_given  # a sweep's workers may run elsewhere
    fields: dict[str, Any] = {
        "dataset": paths(dataset), "output_dir": paths(str(output_dir)), "codec": codec, "preset": preset,
        "steps": steps, "batch_size": batch_size, "crop": crop, "lmbda": lmbdas[0], "learning_rate": learning_rate,
        "device": device, "layout": layout, "eval_dataset": paths(eval_dataset), "eval_groups": eval_groups,
        "eval_baselines": eval_baselines,
        **({} if checkpoint_every is None else {"checkpoint_every": checkpoint_every}),
        **{k: (paths(v) if k == "val_dataset" else v) for k, v in loop.items()},
    }
    try:
        config = TrainConfig(**fields)
    except (ValueError, TypeError) as exc:
        fail(_option_message(str(exc)))
    index = call_or_exit(discover_dataset, dataset, layout)
    call_or_exit(lambda: check_view_count(create_codec(codec, preset), len(index.cameras)))
    for other in (eval_dataset, val_dataset):
        if other is not None:
            call_or_exit(discover_dataset, other, layout)
    if init is not None:
        from mvarchive.models.registry import is_model_uri, resolve_model_uri

        # pin an alias now: a resumed run must start from the same weights
        config.init = call_or_exit(resolve_model_uri, init, services.resolved_mlflow_uri()).uri if is_model_uri(init) else paths(init)
        from mvarchive.training.init import finetune_defaults, model_from_source, read_init_source

        # a missing, foreign or ill-fitting checkpoint fails here, before any run is opened
        source = call_or_exit(read_init_source, config.init, {"mlflow_tracking_uri": services.resolved_mlflow_uri()})
        out.print(call_or_exit(model_from_source, config, source)[1].summary(), highlight=False, markup=False)
        _apply_finetune_defaults(ctx, config, finetune_defaults(source, codec), out)
    from mvarchive.evaluation.baselines import parse_baselines

    call_or_exit(parse_baselines, eval_baselines)
    if sweep:
        _train_sweep(config, lmbdas, services, json_output)
        return
    from mvarchive.flows.runtime import prefect_session
    from mvarchive.flows.train import train_codec
    from mvarchive.tracking import TrackingConfig

    tracking = TrackingConfig(services.resolved_mlflow_uri(), services.mlflow_experiment)
    with prefect_session(services) as api_url:
        if config.device == "cpu":  # trains in this process
            report = call_or_exit(train_codec, config, tracking)
        else:  # a task on a GPU worker of the cluster (the stack's, or a LocalCluster on this host)
            from mvarchive.flows.runtime import run_on_dask

            report = call_or_exit(run_on_dask, train_codec, services, api_url, config=config, tracking=tracking)
    final = report.result.final
    if json_output:
        print(json.dumps({"checkpoint": str(report.result.checkpoint), "weights_digest": report.result.weights_digest,
                          "steps": report.result.steps, "resumed_from": report.result.resumed_from,
                          "final": final, "model_uri": report.model_uri}, indent=2, default=str))
        return
    if report.result.resumed_from is not None:
        out.print(f"resumed from step {report.result.resumed_from} ({output_dir / 'last.pt'})")
    out.print(f"checkpoint {report.result.checkpoint} (weights {report.result.weights_digest[:12]}) after "
              f"{report.result.steps} steps: loss {final.get('loss', float('nan')):.4f}, "
              f"bpp {final.get('bpp', float('nan')):.4f}, PSNR {final.get('psnr', float('nan')):.2f} dB; "
              f"registered {report.model_uri}")


def _device(device: str, fail: Any) -> str:
    from mvarchive.infra.gpu import validate_device

    try:
        return validate_device(device)
    except ValueError as exc:
        fail(str(exc).removeprefix("error: "))
        raise


def _apply_finetune_defaults(ctx: typer.Context, config: Any, defaults: dict[str, Any], console: Any) -> None:
    """The fine-tuning paper's settings (learning rate, schedule, the source's λ) for the options
    the user left unset; what the user typed always wins. Printed, so the run's choices are seen."""
    applied = {}
    for field, value in defaults.items():
        source = ctx.get_parameter_source(field)  # typer may bring its own click: compare by name
        if getattr(source, "name", "DEFAULT") == "DEFAULT" and getattr(config, field) != value:
            setattr(config, field, value)
            applied[field] = value
    if applied:
        console.print("fine-tuning defaults from the init's paper: "
                      + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in applied.items()),
                      highlight=False)


def _train_sweep(config: Any, lmbdas: list[float], services: Any, json_output: bool = False) -> None:
    """Run the train-sweep flow on Dask and print its table and BD-rates."""
    from mvarchive.flows.runtime import prefect_session, run_on_dask
    from mvarchive.flows.sweep import SweepConfig, train_sweep
    from mvarchive.tracking import TrackingConfig
    from mvarchive.training import TrainingConfigMismatch, check_resume

    sweep = call_or_exit(SweepConfig, config, tuple(lmbdas))
    for point in sweep.points():  # another run's last.pt: refused before any service starts
        try:
            check_resume(point)
        except TrainingConfigMismatch as exc:
            fail(str(exc))
    tracking = TrackingConfig(services.resolved_mlflow_uri(), services.mlflow_experiment)
    from mvarchive.infra.gpu import NoGpuWorkerError

    with prefect_session(services) as api_url:
        try:
            report = call_or_exit(run_on_dask, train_sweep, services, api_url, config=sweep, tracking=tracking)
        except NoGpuWorkerError as exc:
            fail(str(exc).removeprefix("error: "))
    if json_output:
        print(json.dumps({
            "codec": config.codec, "preset": config.preset, "parent_run_id": report.parent_run_id,
            "points": [{"lmbda": p.lmbda, "figures": p.figures, "model_uri": p.model_uri, "reused": p.reused,
                        "worker": p.worker} for p in report.points],
            "bd": {name: bd.to_dict() for name, bd in report.bd.items()},
            "unavailable": dict(report.evaluation.unavailable),
        }, indent=2, default=str))
        return
    out.print(f"sweep {config.codec}:{config.preset}, {len(report.points)} λ on {len(report.evaluation.groups)} groups "
              f"of {config.eval_dataset or config.dataset} (parent MLflow run {report.parent_run_id}):")
    out.print(sweep_table(report.points))
    for name, bd in report.bd.items():
        out.print(f"BD-rate against {name}: {_percent(bd.bd_rate_psnr)} (PSNR; {bd.overlap_psnr:.0%} of the PSNR range "
                  f"shared), {_percent(bd.bd_rate_ms_ssim)} (MS-SSIM)" + (f": {bd.note}" if bd.note else ""))
    for name, reason in report.evaluation.unavailable.items():
        out.print(f"{name}: unavailable ({reason})")


def sweep_table(points: list[Any]) -> Any:
    """One row per λ of a sweep (80 columns: the model URI and worker fold)."""
    from mvarchive.terminal import compact_table, number, text

    table = compact_table([number("λ"), number("bpp"), number("PSNR dB"), number("MS-SSIM"), text("model"),
                           text("worker")])
    for p in points:
        f = p.figures
        table.add_row(f"{p.lmbda:g}", f"{f['bpp']:.4f}", f"{f['psnr']:.2f}", f"{f['ms_ssim']:.4f}",
                      (p.model_uri or "-") + (" (reused)" if p.reused else ""), p.worker)
    return table


def _percent(value: float) -> str:
    return f"{value:+.1f} %" if value == value else "n/a"
