"""``mvarchive models …`` and ``mvarchive retrain``: the registry of trained codecs.

Registered in :mod:`mvarchive.cli.app` with ``app.add_typer(models_app, name="models")`` and
``app.command("retrain")(retrain_command)``. Nothing heavy is imported before a command runs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import call_or_exit, fail, out, services_of, storage_options

if TYPE_CHECKING:
    from mvarchive.models.rd_figures import EvalSet

models_app = typer.Typer(
    help="Trained codec versions in the MLflow Model Registry: list, show, evaluate, promote to @champion.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _model_name(name: str) -> str:
    from mvarchive.models.registry import MODEL_NAME_PREFIX, registered_name

    return name if name.startswith(MODEL_NAME_PREFIX) else registered_name(name)


def _uri(name: str, version: str) -> str:
    """``NAME 3``, ``NAME v3`` or ``NAME @champion`` -> a ``models:/`` URI."""
    if version.startswith("@"):
        return f"models:/{_model_name(name)}{version}"
    return f"models:/{_model_name(name)}/{version.removeprefix('v')}"


def _number(text: str | None, digits: int) -> str:
    try:
        return f"{float(text):.{digits}f}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"


def versions_table(rows: list[dict[str, Any]], title: str) -> Any:
    """``models list`` as an 80-column table (``--json`` has every tag)."""
    from mvarchive.models.registry import MODEL_NAME_PREFIX
    from mvarchive.terminal import compact_table, number, text

    table = compact_table([text("codec"), number("ver-\nsion"), text("aliases"), number("λ"), number("bpp"),
                           number("PSNR"), text("measured\non"), number("digest"), number("created")], title=title)
    for row in rows:
        tags = row["tags"]
        table.add_row(row["name"].removeprefix(MODEL_NAME_PREFIX), row["version"], ", ".join(f"@{a}" for a in row["aliases"]),
                      tags.get("lmbda", "-"), _number(tags.get("bpp"), 4), _number(tags.get("psnr"), 2),
                      Path(tags.get("eval_dataset", "-").rstrip("/")).name, tags.get("weights_digest", "")[:12],
                      str(row["created"]).replace("T", " ")[:16])
    return table


def _version_rows(tracking_uri: str, name: str | None) -> list[dict[str, Any]]:
    from mvarchive.models.registry import MODEL_NAME_PREFIX, registry_client

    client = registry_client(tracking_uri)
    names = [name] if name else sorted(m.name for m in client.search_registered_models()
                                       if m.name.startswith(MODEL_NAME_PREFIX))
    rows = []
    for model in names:
        aliases: dict[str, list[str]] = {}
        for alias, version in client.get_registered_model(model).aliases.items():
            aliases.setdefault(str(version), []).append(alias)
        for mv in sorted(client.search_model_versions(f"name='{model}'"), key=lambda v: int(v.version)):
            rows.append({
                "name": mv.name, "version": str(mv.version), "aliases": sorted(aliases.get(str(mv.version), [])),
                "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(timespec="seconds"),
                "run_id": mv.run_id, "source": mv.source, "description": mv.description or "", "tags": dict(mv.tags),
            })
    return rows


@models_app.command("list")
def list_command(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="One registered model (mvarchive-<codec> or <codec>); default all.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON (every tag) instead of a table.")] = False,
) -> None:
    """Every registered version: aliases, λ, RD point (bpp, PSNR) and the data it was measured on, weights digest, creation time."""
    services = services_of(ctx)
    rows = call_or_exit(_version_rows, services.resolved_mlflow_uri(), _model_name(name) if name else None)
    if json_output:
        print(json.dumps(rows, indent=2))
        return

    out.print(versions_table(rows, f"registered codec versions ({services.resolved_mlflow_uri()})") if rows else "no registered versions yet: `mvarchive train` registers one per run")


@models_app.command("show")
def show_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Registered model (mvarchive-<codec> or <codec>).")],
    version: Annotated[str, typer.Argument(help="Version number, or @alias (e.g. @champion).")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One version: its source run, aliases and every tag (RD point, evaluations, gate decisions)."""
    from mvarchive.models.registry import resolve_model_uri

    uri = services_of(ctx).resolved_mlflow_uri()
    ref = call_or_exit(resolve_model_uri, _uri(name, version), uri)
    row = next(r for r in call_or_exit(_version_rows, uri, ref.name) if r["version"] == ref.version)
    if json_output:
        print(json.dumps(row, indent=2))
        return

    out.print(f"[bold]{ref.name} v{ref.version}[/] {' '.join('@' + a for a in row['aliases'])}")
    for key in ("created", "run_id", "source", "description"):
        out.print(f"  {key}: {row[key]}", highlight=False)
    for key, value in sorted(row["tags"].items()):
        out.print(f"  {key}: {value}", highlight=False)


def _eval_set(dataset: str, groups: int, layout: str, services: Any) -> EvalSet:
    from mvarchive.models.rd_figures import EvalSet

    return EvalSet(dataset, layout, groups, storage_options(None, dataset, services.storage_options))


@models_app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Registered model (mvarchive-<codec> or <codec>).")],
    version: Annotated[str, typer.Argument(help="Version number, or @alias.")],
    dataset: Annotated[str, typer.Option("--dataset", help="Evaluation dataset folder or URL.")],
    groups: Annotated[int, typer.Option(help="Evaluate the first N groups.")] = 8,
    layout: Annotated[str, typer.Option(help="Dataset layout.")] = "auto",
    json_output: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Measure a version on a dataset with real bytes; log an MLflow run and tag the version."""
    from mvarchive.models.lifecycle import record_evaluation

    services = services_of(ctx)
    figures, run_id = call_or_exit(record_evaluation, _uri(name, version), _eval_set(dataset, groups, layout, services),
                            services.resolved_mlflow_uri(), services.mlflow_experiment)
    if json_output:
        print(json.dumps({**figures, "mlflow_run_id": run_id}, indent=2, default=str))
        return
    out.print(f"{figures['name']} v{figures['version']} on {dataset}: bpp {figures['bpp']:.4f}, PSNR "
              f"{figures['psnr']:.2f} dB, MS-SSIM {figures['ms_ssim']:.4f}, MSE {figures['mse']:.6f} "
              f"({int(figures['groups'])} groups); MLflow run {run_id}", highlight=False, soft_wrap=True)


@models_app.command("promote")
def promote_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Registered model (mvarchive-<codec> or <codec>).")],
    version: Annotated[str, typer.Argument(help="Candidate version number.")],
    dataset: Annotated[str, typer.Option("--dataset", help="Evaluation dataset the gate measures both versions on.")],
    force: Annotated[bool, typer.Option("--force", help="Move @champion even if the gate rejects the candidate.")] = False,
    min_improvement: Annotated[float, typer.Option(help="Relative RD-cost gain the candidate needs (0.01 = 1 %).")] = 0.0,
    groups: Annotated[int, typer.Option(help="Evaluate the first N groups.")] = 8,
    layout: Annotated[str, typer.Option(help="Dataset layout.")] = "auto",
) -> None:
    """Move @champion to a version if it beats the champion on the dataset (RD cost at the
    champion's λ, or BD-rate); the decision and its numbers go to an MLflow run."""
    from mvarchive.models.lifecycle import promote_version

    services = services_of(ctx)
    report = call_or_exit(promote_version, _uri(name, version), _eval_set(dataset, groups, layout, services),
                   services.resolved_mlflow_uri(), services.mlflow_experiment, force=force,
                   min_improvement=min_improvement)
    out.print(report.line, highlight=False, soft_wrap=True)


def retrain_command(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option("--dataset", help="Data to fine-tune on (e.g. recent recordings).")],
    model: Annotated[str | None, typer.Option("--model", help="Parent version (models:/NAME/VERSION or "
                                                 "models:/NAME@ALIAS); default the champion of --codec.")] = None,
    codec: Annotated[str, typer.Option(help="Codec whose champion is the parent when --model is not given.")] = "ldmic-fast",
    eval_dataset: Annotated[str | None, typer.Option(help="Dataset the gate measures on (default --dataset).")] = None,
    steps: Annotated[int, typer.Option(help="Fine-tuning steps.")] = 200,
    lmbda: Annotated[float | None, typer.Option(help="Rate-distortion trade-off (default: the parent's).")] = None,
    batch_size: Annotated[int, typer.Option(help="Groups per batch.")] = 8,
    crop: Annotated[int, typer.Option(help="Square crop size.")] = 256,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-4,
    output_dir: Annotated[Path, typer.Option("--out", help="Checkpoints go to OUT/<retrain run id>.")] = Path("checkpoints/retrain"),
    eval_groups: Annotated[int, typer.Option(help="Evaluate on the first N groups.")] = 8,
    baselines: Annotated[str, typer.Option(help="Baselines in the RD plot of the new version.")] = "jpeg,x265-intra",
    min_improvement: Annotated[float, typer.Option(help="Relative RD-cost gain needed to promote.")] = 0.0,
    triggered_by: Annotated[str, typer.Option(help="Why this retrain runs (free text or a run id), kept as a tag.")] = "manual",
    layout: Annotated[str, typer.Option(help="Dataset layout.")] = "auto",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Fine-tune a registered version on new data, register it, and promote it if it beats the champion."""
    from mvarchive.flows.retrain import RetrainConfig, retrain
    from mvarchive.flows.runtime import prefect_session
    from mvarchive.tracking import TrackingConfig

    if steps < 1 or batch_size < 1 or crop < 64 or eval_groups < 1:
        fail("--steps, --batch-size and --eval-groups must be >= 1 and --crop >= 64")
    services = services_of(ctx)
    config = RetrainConfig(
        dataset=dataset, output_dir=str(output_dir), model=model, codec=codec, eval_dataset=eval_dataset, steps=steps,
        lmbda=lmbda, batch_size=batch_size, crop=crop, learning_rate=learning_rate, eval_groups=eval_groups,
        eval_baselines=baselines, min_improvement=min_improvement, triggered_by=triggered_by, layout=layout,
        device=device,
    )
    with prefect_session(services):
        report = call_or_exit(retrain, config, TrackingConfig(services.resolved_mlflow_uri(), services.mlflow_experiment))
    out.print(report.line, highlight=False, soft_wrap=True)

