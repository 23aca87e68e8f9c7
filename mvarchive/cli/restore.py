"""``mvarchive restore`` and ``verify``: decode an archive (or check it without writing), in
this process, on the running stack or as a Prefect flow (see :mod:`mvarchive.flows.placement`)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated

import typer

from .common import call_or_exit, err, fail, out, services_of, split_list, storage_options

if TYPE_CHECKING:
    from mvarchive.flows.placement import Placement
    from mvarchive.flows.restore_config import RestoreConfig, RestoreReport, VerifyConfig
    from mvarchive.infra import ServicesConfig

PLACEMENT_HELP = ("auto: a small job (at most 8 groups) decodes in this process, or on a warm worker of the running "
                  "stack; larger ones run the Prefect flow on Dask. in-process, stack or flow to choose.")


def _skip_collection_at_exit() -> None:
    """Leave the objects alive at exit to the operating system instead of Python's last garbage
    collections: after torch (in-process) or distributed (stack) is imported, tearing down the
    interpreter took 1.1-1.4 s against 0.35-0.4 s with the collector frozen (``import
    mvarchive.codecs``, load ~7 on 2 cores), 0.2-0.3 s against ~0.1 s for the stack path. Runs
    as an atexit hook, so it changes nothing while the process (or a test session) goes on; the
    other hooks (log handlers, Dask's client) still run after it, and everything the command
    writes is written and closed before it answers."""
    import atexit

    atexit.unregister(_freeze_collector)  # once per process, however many commands it runs
    atexit.register(_freeze_collector)


def _freeze_collector() -> None:
    import gc

    gc.disable()
    gc.freeze()


def _group_count(archive_url: str, groups: list[str] | None, options: dict) -> int:
    """How many groups the job has: the names given, else the archive's count (opening it)."""
    if groups is not None:
        return len(set(groups))
    from mvarchive.storage import ArchiveReader, Location, absolute_url

    return len(call_or_exit(ArchiveReader, Location(absolute_url(archive_url), options)).names)


def _on_demand(services: ServicesConfig, config: RestoreConfig | VerifyConfig, placement: Placement, track: bool,
               show_progress: bool) -> tuple[RestoreReport, str | None]:
    """Run a small job in this process or on the running cluster (see mvarchive.flows.placement);
    errors become one line, as for the flow. Also returns the request id the stack's worker
    records the job under (None in this process)."""
    from mvarchive.flows.placement import Placement

    if placement is Placement.STACK:
        from mvarchive.flows.on_demand import OnDemandJob, run_on_cluster

        job = OnDemandJob(config, services.resolved_mlflow_uri(), services.mlflow_experiment, services.prefect_api_url)
        outcome = call_or_exit(run_on_cluster, job, services.dask_address)
        if outcome.error is not None:
            if outcome.user_error:
                fail(outcome.error)
            from rich.markup import escape

            err.print(f"[bold red]error:[/] {outcome.error_type}: {escape(outcome.error)}", highlight=False)
            raise typer.Exit(1)
        return outcome.report, job.request
    from mvarchive.flows.restore_config import VerifyConfig
    from mvarchive.flows.restore_core import restore_here, verify_here

    tracking = None
    if track:
        from mvarchive.infra import offline_environment
        from mvarchive.tracking import TrackingConfig

        os.environ.update(offline_environment())
        tracking = TrackingConfig(services.resolved_mlflow_uri(), services.mlflow_experiment)
    here = verify_here if isinstance(config, VerifyConfig) else restore_here
    return call_or_exit(here, config, tracking, show_progress=show_progress), None


def _recorded(report: RestoreReport, placement: Placement, services: ServicesConfig, request: str | None) -> str:
    """Where the job ran and what recorded it, for the last line of restore and verify. A stack
    worker answers before it finishes its records: the ids it had opened by then are shown, and
    the request id finds both runs in any case."""
    text = placement.describe(services.dask_address)
    if report.placement == "in-process" and report.mlflow_run_id:
        text = "decoded in this process"
    if report.flow_run_id:
        text += f"; Prefect flow run {report.flow_run_id}"
    if report.mlflow_run_id:
        text += f"; MLflow run {report.mlflow_run_id}"
    if request:
        runs = [name for name, on in (("Prefect flow run", services.prefect_api_url),
                                      ("MLflow run", services.resolved_mlflow_uri())) if on]
        if runs:
            text += f"; the worker records the {' and the '.join(runs)} after this answer (request {request})"
    return text


def restore_command(
    ctx: typer.Context,
    archive_url: Annotated[str, typer.Argument(metavar="ARCHIVE", help="Archive location.")],
    out_dir: Annotated[str, typer.Argument(metavar="OUT", help="Where to write decoded images (never the source).")],
    groups: Annotated[str | None, typer.Option(help="Comma-separated group names (default: all).")] = None,
    cameras: Annotated[str | None, typer.Option(help="Comma-separated cameras (default: all).")] = None,
    checkpoint: Annotated[str | None, typer.Option("--checkpoint", "--model", help="a checkpoint path/URL or models:/NAME@ALIAS or models:/NAME/VERSION, if the archive holds no copy and it moved.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace files that already exist in OUT.")] = False,
    exact: Annotated[bool, typer.Option("--exact", help="Also refuse groups whose pixels differ from the encoder's by rounding.")] = False,
    placement: Annotated[str, typer.Option(help=PLACEMENT_HELP)] = "auto",
    track: Annotated[bool, typer.Option("--track", help="Record an MLflow run for an in-process job too (costs seconds).")] = False,
    archive_options: Annotated[str | None, typer.Option(help="fsspec options for ARCHIVE as JSON.")] = None,
    out_options: Annotated[str | None, typer.Option(help="fsspec options for OUT as JSON.")] = None,
) -> None:
    """Decode an archive (or some groups / cameras) back to images with their original names.

    Every group is checked against what the encoder produced; a group that does not match is
    named and not written. Existing files are never replaced without --overwrite. A few groups
    restore in seconds: without a running stack they decode in this process (no Prefect or
    MLflow run unless --track or --placement flow)."""
    from mvarchive.flows.placement import Placement, choose_placement
    from mvarchive.flows.restore_config import RestoreConfig
    from mvarchive.integrity import Status
    from mvarchive.storage.options import StorageOptions

    _skip_collection_at_exit()
    services = services_of(ctx)
    config = RestoreConfig(
        archive=archive_url, out=out_dir, groups=split_list(groups), cameras=split_list(cameras), checkpoint=checkpoint,
        overwrite=overwrite, exact=exact,
        archive_options=StorageOptions(storage_options(archive_options, archive_url, services.storage_options)),
        out_options=StorageOptions(storage_options(out_options, out_dir, services.storage_options)),
        registry_uri=services.resolved_mlflow_uri(),
    )
    count = _group_count(archive_url, config.groups, config.archive_options.reveal())
    where = call_or_exit(choose_placement, placement, count, services.dask_address)
    if where is Placement.FLOW:
        from mvarchive.flows.restore import plan_restore, restore_dataset
        from mvarchive.flows.runtime import prefect_session, run_on_dask
        from mvarchive.tracking import TrackingConfig

        call_or_exit(plan_restore, config)  # every user error shows here, before any service starts
        request = None
        with prefect_session(services) as api_url:
            report = call_or_exit(run_on_dask, restore_dataset, services, api_url, config=config,
                          tracking=TrackingConfig(services.resolved_mlflow_uri(), services.mlflow_experiment))
    else:
        report, request = _on_demand(services, config, where, track, show_progress=True)
    close = report.count(Status.CLOSE)
    out.print(f"restored {report.images} images of {report.groups} groups into {report.out} "
              f"(decode {report.decode_s:.2f} s, wall {report.wall_s:.1f} s); verified: "
              f"{report.count(Status.OK)} exact" + (f", {close} within rounding" if close else ""), soft_wrap=True)
    out.print(_recorded(report, where, services, request), highlight=False, soft_wrap=True)


def verify_command(
    ctx: typer.Context,
    archive_url: Annotated[str, typer.Argument(metavar="ARCHIVE", help="Archive location.")],
    groups: Annotated[str | None, typer.Option(help="Comma-separated group names (default: all).")] = None,
    checkpoint: Annotated[str | None, typer.Option(help="Codec weights, if the archive holds no copy and they moved.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    placement: Annotated[str, typer.Option(help=PLACEMENT_HELP)] = "auto",
    track: Annotated[bool, typer.Option("--track", help="Record an MLflow run for an in-process job too (costs seconds).")] = False,
    archive_options: Annotated[str | None, typer.Option(help="fsspec options for ARCHIVE as JSON.")] = None,
) -> None:
    """Decode an archive without writing images and check every group against the encoder.

    Per group: ok (exact), close (symbols exact, pixels differ by rounding on this CPU),
    mismatch or undecodable. Exits 1 when any group fails. Placement as for restore."""
    from mvarchive.flows.placement import Placement, choose_placement
    from mvarchive.flows.restore_config import VerifyConfig
    from mvarchive.integrity import Status
    from mvarchive.storage.options import StorageOptions

    _skip_collection_at_exit()
    services = services_of(ctx)
    config = VerifyConfig(archive=archive_url, groups=split_list(groups), checkpoint=checkpoint,
                          archive_options=StorageOptions(storage_options(archive_options, archive_url,
                                                                         services.storage_options)),
                          registry_uri=services.resolved_mlflow_uri())
    count = _group_count(archive_url, config.groups, config.archive_options.reveal())
    where = call_or_exit(choose_placement, placement, count, services.dask_address)
    if where is Placement.FLOW:
        from mvarchive.flows.restore import plan_verify, verify_archive
        from mvarchive.flows.runtime import prefect_session, run_on_dask
        from mvarchive.tracking import TrackingConfig

        call_or_exit(plan_verify, config)
        request = None
        with prefect_session(services) as api_url:
            report = call_or_exit(run_on_dask, verify_archive, services, api_url, config=config,
                          show_progress=not json_output,
                          tracking=TrackingConfig(services.resolved_mlflow_uri(), services.mlflow_experiment))
    else:
        report, request = _on_demand(services, config, where, track, show_progress=not json_output)
    failed = [c for c in report.checks if c.status.failed]
    if json_output:
        print(json.dumps({
            "archive": archive_url, "groups": len(report.checks),
            "counts": {s.value: report.count(s) for s in Status}, "decode_s": report.decode_s,
            "placement": report.placement, "prefect_flow_run": report.flow_run_id, "mlflow_run": report.mlflow_run_id,
            "request": request,
            "results": [{"group": c.group, "status": c.status.value, "detail": c.describe(),
                         "views": {v.camera: v.status.value for v in c.views}} for c in report.checks],
        }, indent=2))
    else:
        for check in report.checks:
            if check.status is not Status.OK:
                (err if check.status.failed else out).print(check.describe())
        counts = ", ".join(f"{report.count(s)} {s.value}" for s in Status)
        out.print(f"verified {len(report.checks)} groups of {archive_url}: {counts} (decode {report.decode_s:.2f} s)", soft_wrap=True)
        out.print(_recorded(report, where, services, request), highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)
