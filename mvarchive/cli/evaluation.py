"""``mvarchive eval``: rate-distortion evaluation against classical baselines.

Registered in :mod:`mvarchive.cli.app` with ``app.command("eval")(eval_command)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mvarchive.evaluation.baselines import BASELINE_NAMES

from .common import call_or_exit, services_of, storage_options
from .common import out as console


def eval_command(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset folder or URL (local path, s3://bucket/prefix, ...).")],
    codec: Annotated[list[str] | None, typer.Option(
        "--codec", help="Learned codec to evaluate, NAME or NAME:PRESET (repeatable; see `mvarchive codecs`). "
                        "Without --checkpoint it is evaluated once, untrained.")] = None,
    checkpoint: Annotated[list[str] | None, typer.Option(
        "--checkpoint", "--model", help="Trained weights (repeatable): a checkpoint path/URL or a registered version "
                                        "(models:/NAME/VERSION, models:/NAME@champion); each is one rate point of the "
                                        "codec it holds, so versions trained at different λ make a curve.")] = None,
    baselines: Annotated[str, typer.Option(
        help=f"Classical baselines: all, none, or a comma-separated list of {', '.join(BASELINE_NAMES)}.")] = "all",
    anchor: Annotated[str, typer.Option(
        help="Reference curve of the BD table (a baseline, always evaluated, or an evaluated codec).")] = "x265-intra",
    out: Annotated[Path, typer.Option(
        "--out", help="Folder for results.json, RD plots (PNG) and BD/RD tables (Markdown).")] = Path("eval-output"),
    json_output: Annotated[bool, typer.Option("--json", help="Print the results JSON instead of tables.")] = False,
) -> None:
    """Measure RD curves (real bytes, PSNR, MS-SSIM, times) of codecs and baselines; BD-rates; plots; MLflow."""
    from mvarchive.evaluation.tables import codec_table, rd_table
    from mvarchive.flows.rd_evaluation import EvaluateConfig, evaluate_dataset
    from mvarchive.flows.runtime import prefect_session, run_on_dask
    from mvarchive.tracking import TrackingConfig

    services = services_of(ctx)
    if any(c.startswith("models:/") for c in checkpoint or []):
        import os

        # Dask workers fetch registry versions themselves: give them this command's store
        os.environ["MLFLOW_TRACKING_URI"] = services.resolved_mlflow_uri()
    config = EvaluateConfig(
        dataset=dataset, codecs=list(codec or []), checkpoints=list(checkpoint or []), baselines=baselines,
        anchor=anchor, out_dir=str(out), storage_options=storage_options(None, dataset, services.storage_options),
    )
    with prefect_session(services) as api_url:
        report = call_or_exit(run_on_dask, evaluate_dataset, services, api_url, config=config,
                      tracking=TrackingConfig(services.resolved_mlflow_uri(), services.mlflow_experiment),
                      show_progress=not json_output)
    if json_output:
        print(report.result.to_json())
        return
    console.print(rd_table(report.result))
    console.print(codec_table(report.result))
    if report.anchor_problem:
        console.print(f"[yellow]no BD table:[/] {report.anchor_problem}")
    console.print(f"results in {report.out_dir}: {', '.join(Path(p).name for p in report.files.values())}; "
                  f"MLflow run {report.mlflow_run_id}; wall {report.wall_s:.1f} s")
