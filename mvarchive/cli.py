"""Command line: ``mvarchive --help``.

Thin layer: parse into the typed configs of the flows and call them. Service locations
come from global options or their environment variables (see ``mvarchive services``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from mvarchive.terminal import stdout_console

app = typer.Typer(
    help="Archive multi-camera image datasets with learned multi-view codecs, and restore them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = stdout_console()
err = Console(stderr=True, soft_wrap=True)


def _services(ctx: typer.Context):
    return ctx.obj["services"]


def _fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


DEBUG_ENV = "MVARCHIVE_DEBUG"
QUIET_PREFECT_ENV = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"


class _OnlyOurs(logging.Filter):
    """Without -v/--debug the console shows mvarchive's own warnings, not the services' (a failed
    flow's traceback from Prefect, Dask's worker chatter): the error line says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(("prefect", "distributed", "dask", "uvicorn", "httpx", "alembic"))


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a user's mistake raises. The library's own errors (``DatasetError``, ``ArchiveError``,
    ``BitstreamError``) are ``ValueError``s, so nothing needs importing to name them here."""
    return (KeyError, FileNotFoundError, FileExistsError, ValueError, TypeError)


def _run(fn, *args, **kwargs) -> Any:
    """Call the library; user mistakes become one clear line and exit code 2 (the traceback
    only with --debug)."""
    try:
        return fn(*args, **kwargs)
    except _user_errors() as exc:
        if _debug():
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        _fail(str(message))


def _options(text: Optional[str], url: str, default: dict) -> dict:
    if text:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            _fail(f"storage options must be a JSON object: {exc}")
        if not isinstance(value, dict):
            _fail("storage options must be a JSON object")
        return value
    return dict(default) if "://" in url and not url.startswith("file://") else {}


@app.callback()
def main_options(
    ctx: typer.Context,
    home: Annotated[Optional[Path], typer.Option(help="Local state (MLflow DB, Prefect home). Env: MVARCHIVE_HOME.")] = None,
    dask_address: Annotated[Optional[str], typer.Option(help="Existing Dask scheduler; default: the running stack (`mvarchive services up`), else a LocalCluster. Env: MVARCHIVE_DASK_ADDRESS.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="LocalCluster worker processes (default 2). Env: MVARCHIVE_DASK_WORKERS.")] = None,
    prefect_api_url: Annotated[Optional[str], typer.Option(help="Prefect API; default: the running stack, else a local server per command. Env: PREFECT_API_URL.")] = None,
    mlflow_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI; default: the running stack, else sqlite in HOME. Env: MLFLOW_TRACKING_URI.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect and Dask logs.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
) -> None:
    from mvarchive.infra import ServicesConfig

    if debug:
        os.environ[DEBUG_ENV] = "1"
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)  # Prefect's INFO records propagate to the root handlers
        if not verbose and not debug:
            handler.addFilter(_OnlyOurs())
    if not verbose:
        from mvarchive.infra.log_levels import quiet_cluster_logs

        quiet_cluster_logs()
    ctx.obj = {
        "services": ServicesConfig.from_env(
            home=home, dask_address=dask_address, dask_workers=workers,
            prefect_api_url=prefect_api_url, mlflow_tracking_uri=mlflow_uri,
        )
    }


@app.command()
def codecs(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List registered codecs with presets, accepted view counts and parameter counts."""
    from mvarchive.codec_catalog import catalog
    from mvarchive.terminal import compact_table, number, text

    rows = catalog(_services(ctx).home / "cache")
    if json_output:
        print(json.dumps(rows, indent=2))
        return
    table = compact_table([text("name"), number("id"), number("views"), text("preset"), number("encoder"),
                           number("decoder"), number("total")], title="registered codecs (parameters)")
    for row in rows:
        views = f"{row['min_views']}+" if row["max_views"] is None else f"{row['min_views']}-{row['max_views']}"
        for i, (preset, info) in enumerate(row["presets"].items()):
            p = info["parameters"]
            fmt = lambda k: f"{p[k] / 1e6:.2f} M" if k in p else "-"  # noqa: E731
            table.add_row(row["name"] if i == 0 else "", str(row["id"]) if i == 0 else "", views if i == 0 else "",
                          preset, fmt("encoder"), fmt("decoder"), fmt("total"),
                          end_section=i == len(row["presets"]) - 1)
    out.print(table)
    for row in rows:
        out.print(f"{row['name']}: {row['description']}", highlight=False)


@app.command()
def archive(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Dataset folder or URL (local path, s3://bucket/prefix, ...).")],
    dest: Annotated[str, typer.Argument(help="Archive location (local path or s3://...). Re-running adds the source's new groups.")],
    codec: Annotated[str, typer.Option(help="Codec name (see `mvarchive codecs`).")] = "ldmic-fast",
    preset: Annotated[str, typer.Option(help="Size preset: paper or tiny.")] = "paper",
    checkpoint: Annotated[Optional[str], typer.Option("--checkpoint", "--model", help="a checkpoint path/URL or models:/NAME@ALIAS or models:/NAME/VERSION; required.")] = None,
    reencode: Annotated[bool, typer.Option("--reencode", help="Encode again groups whose source files changed since they were archived.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait while another run writes this archive instead of failing.")] = False,
    untrained: Annotated[bool, typer.Option("--untrained", help="Encode with random weights (tests only; poor quality).")] = False,
    embed_model: Annotated[bool, typer.Option("--embed-model/--no-embed-model", help="Store the checkpoint in the archive so it restores anywhere.")] = True,
    layout: Annotated[str, typer.Option(help="auto, camera-folders, group-folders or manifest.")] = "auto",
    shard_size: Annotated[int, typer.Option(help="Groups per shard (one task each).")] = 4,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N: where the encode tasks run the analysis transforms (GPU workers only); coding stays exact on CPU.")] = "cpu",
    max_pixels: Annotated[int, typer.Option(help="Largest view in pixels; bigger images are refused (memory).")] = 16_000_000,
    metrics_fraction: Annotated[float, typer.Option(help="Share of groups whose MS-SSIM is measured (picked by group name, the same on reruns); 1.0 = every group. PSNR, bpp and the restore digest cover every group.")] = 0.1,
    source_options: Annotated[Optional[str], typer.Option(help="fsspec options for SOURCE as JSON (default: MVARCHIVE_STORAGE_OPTIONS for remote URLs).")] = None,
    dest_options: Annotated[Optional[str], typer.Option(help="fsspec options for DEST as JSON.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the run's figures as JSON instead of a table.")] = False,
) -> None:
    """Encode a multi-view dataset into an archive (Prefect flow, shards on Dask)."""
    from mvarchive.flows.archive import ArchiveConfig, archive_dataset, plan_archive
    from mvarchive.tracking import TrackingConfig
    from mvarchive.flows.runtime import prefect_session, run_on_dask
    from mvarchive.reporting import summary_table

    services = _services(ctx)
    config = _run(
        ArchiveConfig,
        source=source, dest=dest, codec=codec, preset=preset, checkpoint=checkpoint, untrained=untrained,
        embed_model=embed_model, layout=layout, shard_size=shard_size, max_pixels=max_pixels, device=device,
        metrics_fraction=metrics_fraction,
        reencode=reencode, wait=wait, registry_uri=services.resolved_mlflow_uri(),
        source_options=_options(source_options, source, services.storage_options),
        dest_options=_options(dest_options, dest, services.storage_options),
    )
    plan = _run(plan_archive, config)  # every user error shows here, before any service starts
    if not plan.growth.todo:  # nothing to encode: report drift, start no service
        from mvarchive.flows.archive import report_drift

        report_drift(plan.location, plan.growth)
        if json_output:
            print(json.dumps({"archive": dest, "groups_added": 0, "groups_archived": plan.growth.archived,
                              "groups_changed": len(plan.growth.changed),
                              "groups_vanished": len(plan.growth.vanished)}, indent=2))
            return
        out.print(f"{dest}: nothing to add ({plan.growth.archived} groups archived, "
                  f"{len(plan.growth.changed)} changed, {len(plan.growth.vanished)} no longer in the source)")
        return
    with prefect_session(services) as api_url:
        report = _run(run_on_dask, archive_dataset, services, api_url, config=config,
                      tracking=TrackingConfig(services.resolved_mlflow_uri(), services.mlflow_experiment))
    if json_output:
        print(json.dumps({
            "archive": dest, "run_id": report.run_id, "mlflow_run_id": report.mlflow_run_id, "summary": report.summary,
            "groups_added": report.groups_added, "groups_reencoded": report.groups_reencoded,
            "groups_changed": report.groups_changed, "groups_vanished": report.groups_vanished,
            "shards_written": report.shards_written, "shards_skipped": report.shards_skipped,
        }, indent=2, default=str))
        return
    out.print(summary_table([(codec, report.summary)], title=f"archive {dest}"))
    out.print(f"run {report.run_id}: {report.groups_added} group(s) encoded ({report.groups_reencoded} again), "
              f"{report.groups_changed} changed, {report.groups_vanished} no longer in the source; "
              f"shards written {report.shards_written}, found complete {report.shards_skipped}; "
              f"MLflow run {report.mlflow_run_id}")


def _split(value: Optional[str]) -> Optional[list[str]]:
    return [v for v in value.split(",") if v] if value else None


PLACEMENT_HELP = ("auto: a small job (at most 8 groups) decodes in this process, or on a warm worker of the running "
                  "stack; larger ones run the Prefect flow on Dask. in-process, stack or flow to choose.")


def _group_count(archive_url: str, groups: Optional[list[str]], options: dict) -> int:
    """How many groups the job has: the names given, else the archive's count (opening it)."""
    if groups is not None:
        return len(set(groups))
    from mvarchive.storage import ArchiveReader, Location, absolute_url

    return len(_run(ArchiveReader, Location(absolute_url(archive_url), options)).names)


def _on_demand(services, config, placement, track: bool, show_progress: bool):
    """Run a small job in this process or on the running cluster (see mvarchive.flows.placement);
    errors become one line, as for the flow."""
    from mvarchive.flows.placement import Placement

    if placement is Placement.STACK:
        from mvarchive.flows.on_demand import OnDemandJob, run_on_cluster

        job = OnDemandJob(config, services.resolved_mlflow_uri(), services.mlflow_experiment, services.prefect_api_url)
        outcome = _run(run_on_cluster, job, services.dask_address)
        if outcome.error is not None:
            if outcome.user_error:
                _fail(outcome.error)
            from rich.markup import escape

            err.print(f"[bold red]error:[/] {outcome.error_type}: {escape(outcome.error)}", highlight=False)
            raise typer.Exit(1)
        return outcome.report
    from mvarchive.flows.restore_config import VerifyConfig
    from mvarchive.flows.restore_core import restore_here, verify_here

    tracking = None
    if track:
        from mvarchive.infra import offline_environment
        from mvarchive.tracking import TrackingConfig

        os.environ.update(offline_environment())
        tracking = TrackingConfig(services.resolved_mlflow_uri(), services.mlflow_experiment)
    run = verify_here if isinstance(config, VerifyConfig) else restore_here
    return _run(run, config, tracking, show_progress=show_progress)


def _recorded(report, placement, services) -> str:
    """Where the job ran and what recorded it, for the last line of restore and verify."""
    text = placement.describe(services.dask_address)
    if report.placement == "in-process" and report.mlflow_run_id:
        text = "decoded in this process"
    if report.flow_run_id:
        text += f"; Prefect flow run {report.flow_run_id}"
    if report.mlflow_run_id:
        text += f"; MLflow run {report.mlflow_run_id}"
    return text


@app.command()
def restore(
    ctx: typer.Context,
    archive_url: Annotated[str, typer.Argument(metavar="ARCHIVE", help="Archive location.")],
    out_dir: Annotated[str, typer.Argument(metavar="OUT", help="Where to write decoded images (never the source).")],
    groups: Annotated[Optional[str], typer.Option(help="Comma-separated group names (default: all).")] = None,
    cameras: Annotated[Optional[str], typer.Option(help="Comma-separated cameras (default: all).")] = None,
    checkpoint: Annotated[Optional[str], typer.Option("--checkpoint", "--model", help="a checkpoint path/URL or models:/NAME@ALIAS or models:/NAME/VERSION, if the archive holds no copy and it moved.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace files that already exist in OUT.")] = False,
    exact: Annotated[bool, typer.Option("--exact", help="Also refuse groups whose pixels differ from the encoder's by rounding.")] = False,
    placement: Annotated[str, typer.Option(help=PLACEMENT_HELP)] = "auto",
    track: Annotated[bool, typer.Option("--track", help="Record an MLflow run for an in-process job too (costs seconds).")] = False,
    archive_options: Annotated[Optional[str], typer.Option(help="fsspec options for ARCHIVE as JSON.")] = None,
    out_options: Annotated[Optional[str], typer.Option(help="fsspec options for OUT as JSON.")] = None,
) -> None:
    """Decode an archive (or some groups / cameras) back to images with their original names.

    Every group is checked against what the encoder produced; a group that does not match is
    named and not written. Existing files are never replaced without --overwrite. A few groups
    restore in seconds: without a running stack they decode in this process (no Prefect or
    MLflow run unless --track or --placement flow)."""
    from mvarchive.flows.placement import Placement, choose_placement
    from mvarchive.flows.restore_config import RestoreConfig
    from mvarchive.integrity import Status

    services = _services(ctx)
    config = RestoreConfig(
        archive=archive_url, out=out_dir, groups=_split(groups), cameras=_split(cameras), checkpoint=checkpoint,
        overwrite=overwrite, exact=exact,
        archive_options=_options(archive_options, archive_url, services.storage_options),
        out_options=_options(out_options, out_dir, services.storage_options),
        registry_uri=services.resolved_mlflow_uri(),
    )
    count = _group_count(archive_url, config.groups, config.archive_options.reveal())
    where = _run(choose_placement, placement, count, services.dask_address)
    if where is Placement.FLOW:
        from mvarchive.tracking import TrackingConfig
        from mvarchive.flows.restore import plan_restore, restore_dataset
        from mvarchive.flows.runtime import prefect_session, run_on_dask

        _run(plan_restore, config)  # every user error shows here, before any service starts
        with prefect_session(services) as api_url:
            report = _run(run_on_dask, restore_dataset, services, api_url, config=config,
                          tracking=TrackingConfig(services.resolved_mlflow_uri(), services.mlflow_experiment))
    else:
        report = _on_demand(services, config, where, track, show_progress=True)
    close = report.count(Status.CLOSE)
    out.print(f"restored {report.images} images of {report.groups} groups into {report.out} "
              f"(decode {report.decode_s:.2f} s, wall {report.wall_s:.1f} s); verified: "
              f"{report.count(Status.OK)} exact" + (f", {close} within rounding" if close else ""), soft_wrap=True)
    out.print(_recorded(report, where, services), highlight=False, soft_wrap=True)


@app.command()
def verify(
    ctx: typer.Context,
    archive_url: Annotated[str, typer.Argument(metavar="ARCHIVE", help="Archive location.")],
    groups: Annotated[Optional[str], typer.Option(help="Comma-separated group names (default: all).")] = None,
    checkpoint: Annotated[Optional[str], typer.Option(help="Codec weights, if the archive holds no copy and they moved.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    placement: Annotated[str, typer.Option(help=PLACEMENT_HELP)] = "auto",
    track: Annotated[bool, typer.Option("--track", help="Record an MLflow run for an in-process job too (costs seconds).")] = False,
    archive_options: Annotated[Optional[str], typer.Option(help="fsspec options for ARCHIVE as JSON.")] = None,
) -> None:
    """Decode an archive without writing images and check every group against the encoder.

    Per group: ok (exact), close (symbols exact, pixels differ by rounding on this CPU),
    mismatch or undecodable. Exits 1 when any group fails. Placement as for restore."""
    from mvarchive.flows.placement import Placement, choose_placement
    from mvarchive.flows.restore_config import VerifyConfig
    from mvarchive.integrity import Status

    services = _services(ctx)
    config = VerifyConfig(archive=archive_url, groups=_split(groups), checkpoint=checkpoint,
                          archive_options=_options(archive_options, archive_url, services.storage_options),
                          registry_uri=services.resolved_mlflow_uri())
    count = _group_count(archive_url, config.groups, config.archive_options.reveal())
    where = _run(choose_placement, placement, count, services.dask_address)
    if where is Placement.FLOW:
        from mvarchive.tracking import TrackingConfig
        from mvarchive.flows.restore import plan_verify, verify_archive
        from mvarchive.flows.runtime import prefect_session, run_on_dask

        _run(plan_verify, config)
        with prefect_session(services) as api_url:
            report = _run(run_on_dask, verify_archive, services, api_url, config=config,
                          show_progress=not json_output,
                          tracking=TrackingConfig(services.resolved_mlflow_uri(), services.mlflow_experiment))
    else:
        report = _on_demand(services, config, where, track, show_progress=not json_output)
    failed = [c for c in report.checks if c.status.failed]
    if json_output:
        print(json.dumps({
            "archive": archive_url, "groups": len(report.checks),
            "counts": {s.value: report.count(s) for s in Status}, "decode_s": report.decode_s,
            "placement": report.placement, "prefect_flow_run": report.flow_run_id, "mlflow_run": report.mlflow_run_id,
            "results": [{"group": c.group, "status": c.status.value, "detail": c.describe(),
                         "views": {v.camera: v.status.value for v in c.views}} for c in report.checks],
        }, indent=2))
    else:
        for check in report.checks:
            if check.status is not Status.OK:
                (err if check.status.failed else out).print(check.describe())
        counts = ", ".join(f"{report.count(s)} {s.value}" for s in Status)
        out.print(f"verified {len(report.checks)} groups of {archive_url}: {counts} (decode {report.decode_s:.2f} s)", soft_wrap=True)
        out.print(_recorded(report, where, services), highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


@app.command()
def info(
    archive_url: Annotated[str, typer.Argument(metavar="ARCHIVE", help="Archive location.")],
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    options: Annotated[Optional[str], typer.Option(help="fsspec options as JSON.")] = None,
) -> None:
    """Show an archive's models, cameras, groups, run history and metrics."""
    from mvarchive.reporting import archive_summary
    from mvarchive.storage import ArchiveReader, Location, current_holder

    location = Location(archive_url, _options(options, archive_url, {}))
    reader = _run(ArchiveReader, location)
    meta = reader.meta
    holder = current_holder(location)
    data = {
        "archive": archive_url,
        "format": meta.format,
        "codec": asdict(meta.codec),
        "models": [asdict(m) for m in meta.all_models()],
        "dataset": meta.dataset_url,
        "layout": meta.layout,
        "content_digest": meta.content_digest,
        "environment": meta.environment,
        "cameras": list(meta.cameras),
        "groups": meta.num_groups,
        "groups_indexed": reader.indexed_rows,
        "groups_unindexed": len(reader.orphans),
        "complete": reader.is_complete(),
        "runs": [asdict(r) for r in reader.runs],
        "writer": asdict(holder) if holder else None,
        "summary": archive_summary(reader),
        "group_names": reader.names,
    }
    if json_output:
        print(json.dumps(data, indent=2, default=str))
        return
    out.print(f"[bold]{archive_url}[/]: format {meta.format}, codec {meta.codec.name} ({meta.codec.preset}), "
              f"{len(data['models'])} model(s)")
    for m in meta.all_models():
        where = (f"embedded ({m.embedded})" if m.embedded else f"untrained (seed {m.seed})" if m.seed is not None
                 else f"not embedded; read from {m.source}")
        out.print(f"  model {m.weights_digest[:12]}: {where}" + (f", registered {m.registered}" if m.registered else ""))
    out.print(f"written with torch {meta.environment.get('torch', '?')}, mvarchive {meta.environment.get('mvarchive', '?')}")
    out.print(f"dataset {meta.dataset_url} ({meta.layout}); cameras {', '.join(meta.cameras)}")
    out.print(f"{meta.num_groups} groups" + (f" ({len(reader.orphans)} not yet indexed)" if reader.orphans else "")
              + ("" if data["complete"] else "; the latest run did not finish (re-run archive to complete it)"))
    for r in reader.runs:
        out.print(f"  run {r.id} {r.started} {r.status}: +{r.added} added, {r.reencoded} re-encoded, "
                  f"{r.changed_skipped} changed (skipped), {r.vanished} vanished"
                  + (f", {r.adopted} adopted" if r.adopted else "") + f"; model {r.model[:12]}")
    if holder:
        out.print(f"being written now by run {holder.owner} on host {holder.host}")
    s = data["summary"]
    if s.get("groups"):
        measured = int(s.get("ms_ssim_groups", s["groups"]))
        ms = f"MS-SSIM {s['ms_ssim']:.4f} over {measured} of {int(s['groups'])} groups" if measured else "MS-SSIM not measured"
        out.print(f"bpp {s['bpp']:.4f}, PSNR {s['psnr']:.2f} dB, {ms}, {int(s['bytes'])} bytes")


@app.command()
def migrate(
    old: Annotated[str, typer.Argument(metavar="OLD", help="A format-2 archive (read only).")],
    new: Annotated[str, typer.Argument(metavar="NEW", help="Where to write the format-3 archive (must not exist).")],
    shard_size: Annotated[int, typer.Option(help="Groups per blob in the new archive.")] = 64,
    old_options: Annotated[Optional[str], typer.Option(help="fsspec options for OLD as JSON.")] = None,
    new_options: Annotated[Optional[str], typer.Option(help="fsspec options for NEW as JSON.")] = None,
) -> None:
    """Copy a format-2 archive into format 3 without re-encoding (streams, latents and
    fingerprints are copied; the result verifies like the original)."""
    from mvarchive.storage import Location
    from mvarchive.storage.migrate import migrate_v2

    result = _run(migrate_v2, Location(old, _options(old_options, old, {})), Location(new, _options(new_options, new, {})),
                  shard_size=shard_size)
    out.print(f"migrated {result.groups} groups of {old} into {new} ({result.blobs} shards, run {result.run_id})")


@app.command()
def demo(
    ctx: typer.Context,
    output_dir: Annotated[Path, typer.Option("--out", help="Where the sample data, checkpoints, archives and restored images go.")] = Path("demo-output"),
    steps: Annotated[Optional[int], typer.Option(help="Training steps per codec (default 4800 at batch 1, ~6 min of training on 2 idle cores).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Also print the results table as JSON (last line).")] = False,
) -> None:
    """Build a sample dataset, train LDMIC-fast briefly, archive, restore, print the results."""
    from mvarchive.flows.demo import DemoConfig, run_demo

    config = DemoConfig(output_dir=str(output_dir))
    if steps is not None:
        config.steps = steps
    rows = _run(run_demo, config, _services(ctx), out)
    if json_output:
        print(json.dumps([{"row": name, **values} for name, values in rows], default=str))


from mvarchive.cli_eval import eval_command  # noqa: E402  (uses the helpers above)

app.command("eval")(eval_command)

# Operating mvarchive: persistent services, the model registry, schedules (each in its own module)
from mvarchive.cli_models import models_app, retrain_command  # noqa: E402
from mvarchive.cli_train import train_command  # noqa: E402
from mvarchive.cli_schedule import schedule_app, serve_command  # noqa: E402
from mvarchive.cli_services import services_app  # noqa: E402

app.command("train")(train_command)
app.add_typer(services_app, name="services")
app.add_typer(models_app, name="models")
app.command("retrain")(retrain_command)
app.add_typer(schedule_app, name="schedule")
app.command("serve")(serve_command)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the ``mvarchive`` script: unexpected errors are one line too, with the
    traceback only under --debug."""
    args = argv if argv is not None else sys.argv[1:]
    if "--debug" in args:
        os.environ[DEBUG_ENV] = "1"
    if not {"--debug", "-v", "--verbose"} & set(args):
        # Prefect's console handler (here and in worker processes, which inherit the environment)
        # would print run states and a failed flow's traceback before our one-line error; the
        # Prefect API still receives every log line for the UI.
        os.environ.setdefault(QUIET_PREFECT_ENV, "CRITICAL")
    try:
        app(args=args, prog_name="mvarchive")
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/]; re-running the same command resumes where it stopped")
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, not a 30-line traceback
        if _debug():
            raise
        from rich.markup import escape

        err.print(f"[bold red]error:[/] {type(exc).__name__}: {escape(str(exc))}", highlight=False)
        err.print("run again with --debug for the traceback")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
