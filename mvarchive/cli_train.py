"""``mvarchive train``: train a codec (one rate point, or a λ sweep), registered in MLflow.

Registered in :mod:`mvarchive.cli` with ``app.command("train")(train_command)``. Nothing heavy is
imported before the command runs, so ``--help`` answers at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def train_command(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Training dataset folder or URL.")],
    output_dir: Annotated[Path, typer.Option("--out", help="Checkpoint folder; re-running resumes from last.pt.")] = Path("checkpoints"),
    codec: Annotated[str, typer.Option(help="Codec name.")] = "ldmic-fast",
    preset: Annotated[str, typer.Option(help="Size preset.")] = "paper",
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 1000,
    batch_size: Annotated[int, typer.Option(help="Groups per batch.")] = 8,
    crop: Annotated[int, typer.Option(help="Square crop size (aligned across views).")] = 256,
    lmbda: Annotated[float, typer.Option(help="Rate-distortion trade-off (MSE on [0,1]).")] = 1024.0,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-4,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    layout: Annotated[str, typer.Option(help="Dataset layout.")] = "auto",
    checkpoint_every: Annotated[Optional[int], typer.Option(help="Save last.pt every N steps (a killed run resumes from it).")] = None,
    eval_dataset: Annotated[Optional[str], typer.Option(help="Dataset the registered version's RD point is measured on (default DATASET).")] = None,
    init: Annotated[Optional[str], typer.Option(help="Start from these weights: a checkpoint or models:/NAME/VERSION|@ALIAS (fine-tuning).")] = None,
    eval_baselines: Annotated[str, typer.Option(help="Baselines the registered version is plotted against (comma-separated, or none).")] = "jpeg,x265-intra",
) -> None:
    """Train a codec (Prefect flow); the result is registered as a version of mvarchive-<codec> in MLflow."""
    from mvarchive.cli import _fail, _run, _services, out
    from mvarchive.tracking import TrackingConfig
    from mvarchive.flows.runtime import prefect_session
    from mvarchive.flows.train import train_codec
    from mvarchive.training import TrainConfig

    services = _services(ctx)
    from mvarchive.codecs import create_codec
    from mvarchive.datasets import discover_dataset

    extra = {} if checkpoint_every is None else {"checkpoint_every": checkpoint_every}
    config = TrainConfig(dataset=dataset, output_dir=str(output_dir), codec=codec, preset=preset, steps=steps,
                         batch_size=batch_size, crop=crop, lmbda=lmbda, learning_rate=learning_rate, device=device,
                         layout=layout, eval_dataset=eval_dataset, eval_baselines=eval_baselines, **extra)
    # user errors first, before any service starts
    if steps < 1 or batch_size < 1 or crop < 64 or (checkpoint_every is not None and checkpoint_every < 1):
        _fail("--steps, --batch-size and --checkpoint-every must be >= 1 and --crop >= 64")
    index = _run(discover_dataset, dataset, layout)
    _run(lambda: create_codec(codec, preset).check_views(len(index.cameras)))
    if eval_dataset is not None:
        _run(discover_dataset, eval_dataset, layout)
    if init is not None:
        from mvarchive.models.registry import is_model_uri, resolve_model_uri

        # pin an alias now: a resumed run must start from the same weights
        config.init = _run(resolve_model_uri, init, services.resolved_mlflow_uri()).uri if is_model_uri(init) else init
        if not is_model_uri(init):
            from mvarchive.codecs import read_checkpoint_bytes

            _run(read_checkpoint_bytes, init)  # a missing file fails here, before any run is opened
    from mvarchive.evaluation.baselines import parse_baselines

    _run(parse_baselines, eval_baselines)
    with prefect_session(services):
        report = _run(train_codec, config, TrackingConfig(services.resolved_mlflow_uri(), services.mlflow_experiment))
    final = report.result.final
    if report.result.resumed_from is not None:
        out.print(f"resumed from step {report.result.resumed_from} ({output_dir / 'last.pt'})")
    out.print(f"checkpoint {report.result.checkpoint} (weights {report.result.weights_digest[:12]}) after "
              f"{report.result.steps} steps: loss {final.get('loss', float('nan')):.4f}, "
              f"bpp {final.get('bpp', float('nan')):.4f}, PSNR {final.get('psnr', float('nan')):.2f} dB; "
              f"registered {report.model_uri}")
