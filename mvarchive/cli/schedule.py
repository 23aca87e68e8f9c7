"""``mvarchive schedule add|list|remove|run`` and ``mvarchive serve``.

Registered in :mod:`mvarchive.cli.app` with ``app.add_typer(schedule_app, name="schedule")`` and
``app.command("serve")(serve_command)``. Schedules live on a persistent Prefect server (the
``mvarchive services up`` stack, or PREFECT_API_URL); without one the commands refuse in one
line. Prefect, torch and MLflow are imported inside the commands only.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from .common import call_or_exit, fail, services_of

schedule_app = typer.Typer(
    help="Scheduled archive runs: Prefect deployments of the archive flow, executed by `mvarchive serve`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _api_url(ctx: typer.Context) -> str:
    from mvarchive.scheduling.deployments import require_api_url

    return call_or_exit(require_api_url, services_of(ctx).prefect_api_url)


@schedule_app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Schedule name (letters, digits, . _ -); the deployment is archive-dataset/NAME.")],
    source: Annotated[str, typer.Option(help="Dataset folder or URL that grows; each run appends its new groups.")],
    dest: Annotated[str, typer.Option(help="Archive location (local path or s3://...).")],
    model: Annotated[str | None, typer.Option(help="Checkpoint path/URL or models:/NAME@champion (resolved at each run).")] = None,
    untrained: Annotated[bool, typer.Option("--untrained", help="Random weights (tests only).")] = False,
    cron: Annotated[str | None, typer.Option(help='Cron expression, e.g. "0 2 * * *".')] = None,
    every: Annotated[str | None, typer.Option(help="Interval: 30s, 10m, 1h, 1d.")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA timezone of the cron schedule (default UTC).")] = None,
    codec: Annotated[str, typer.Option(help="Codec name (see `mvarchive codecs`).")] = "ldmic-fast",
    preset: Annotated[str, typer.Option(help="Size preset: paper or tiny.")] = "paper",
    layout: Annotated[str, typer.Option(help="auto, camera-folders, group-folders or manifest.")] = "auto",
    shard_size: Annotated[int, typer.Option(help="Groups per shard (one task each).")] = 4,
) -> None:
    """Create or update a schedule (checks the source, codec and model first)."""
    from mvarchive.scheduling.deployments import apply_schedule
    from mvarchive.scheduling.spec import ScheduleSpec, parse_every

    services = services_of(ctx)
    spec = call_or_exit(lambda: ScheduleSpec(
        name=name, source=source, dest=dest, model=model, untrained=untrained, codec=codec, preset=preset,
        layout=layout, shard_size=shard_size, cron=cron, every=parse_every(every) if every else None, timezone=timezone,
    ))
    call_or_exit(spec.prefect_schedule)
    groups = call_or_exit(spec.check_inputs, services.storage_options)
    api_url = _api_url(ctx)
    deployment_id = call_or_exit(apply_schedule, api_url, spec)
    when = f"cron {cron} ({timezone or 'UTC'})" if cron else f"every {every}"
    print(f"schedule {name} ({spec.deployment_name}, id {deployment_id}): {when}; source has {groups} groups; "
          f"runs execute while `mvarchive serve` runs; UI {api_url.removesuffix('/api')}/deployments/deployment/{deployment_id}")


@schedule_app.command("list")
def list_(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Schedules with their timing, source, destination, model, next run and last run's state."""
    from mvarchive.scheduling.deployments import list_schedules

    rows = call_or_exit(list_schedules, _api_url(ctx))
    if json_output:
        print(json.dumps([row.as_json() for row in rows], indent=2))
        return
    from mvarchive.terminal import stdout_console

    stdout_console().print(schedules_table(rows))


def schedules_table(rows: list[Any]) -> Any:
    """``schedule list`` as an 80-column table (``--json`` for scripts)."""
    from mvarchive.terminal import compact_table, text

    table = compact_table([text(c) for c in ("name", "schedule", "active", "source", "dest", "model", "next run",
                                             "last run")], title="mvarchive schedules")
    for row in rows:
        last = f"{row.last_state} {row.last_run}" if row.last_state else "-"
        table.add_row(row.name, row.schedule, "yes" if row.active else "paused", row.source, row.dest, row.model,
                      row.next_run or "-", last)
    return table


@schedule_app.command("remove")
def remove(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Schedule name.")]) -> None:
    """Delete a schedule's deployment; its past runs stay visible in Prefect."""
    from mvarchive.scheduling.deployments import remove_schedule

    deployment_id = call_or_exit(remove_schedule, _api_url(ctx), name)
    print(f"removed schedule {name} (deployment {deployment_id}); its past runs stay on the Prefect server")


@schedule_app.command("run")
def run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Schedule name.")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the run to finish and print its final state.")] = False,
) -> None:
    """Start a run of a schedule now (executed by `mvarchive serve`)."""
    from mvarchive.scheduling.deployments import run_schedule, run_summary

    flow_run = call_or_exit(run_schedule, _api_url(ctx), name, wait)
    if not wait:
        print(f"started run {flow_run.name} ({flow_run.id}) of schedule {name}; `mvarchive serve` executes it")
        return
    state = flow_run.state
    print(f"run {flow_run.name} ({flow_run.id}) of schedule {name}: {state.name if state else 'unknown'}"
          + (f" ({state.message})" if state is not None and state.message and not state.is_completed() else ""))
    summary = run_summary(_api_url(ctx), flow_run)
    if summary:
        print(", ".join(f"{key} {value}" for key, value in summary.items()))
    if state is None or not state.is_completed():
        raise typer.Exit(1)


def serve_command(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="Flow runs at once (each archive run uses all Dask workers).")] = 1,
    poll_seconds: Annotated[float, typer.Option(help="Seconds between polls for due runs.")] = 10.0,
    retrain: Annotated[bool, typer.Option("--retrain/--no-retrain", help="Also deploy retrain/auto, started by drift events.")] = True,
    retrain_steps: Annotated[int, typer.Option(help="Fine-tuning steps of a triggered retraining.")] = 200,
    retrain_crop: Annotated[int, typer.Option(help="Crop size of a triggered retraining.")] = 256,
    retrain_batch_size: Annotated[int, typer.Option(help="Batch size of a triggered retraining.")] = 8,
    retrain_eval_groups: Annotated[int, typer.Option(help="Groups the gate evaluates candidate and champion on.")] = 8,
    retrain_baselines: Annotated[str, typer.Option(help="Baselines in a retraining's RD plot (comma-separated, or none).")] = "jpeg,x265-intra",
) -> None:
    """Execute every schedule (and triggered retraining) until stopped; stopping never pauses schedules."""
    from mvarchive.scheduling.serve import ServeConfig, serve

    services = services_of(ctx)
    if min(retrain_steps, retrain_batch_size, retrain_eval_groups) < 1 or retrain_crop < 64:
        fail("--retrain-steps, --retrain-batch-size and --retrain-eval-groups must be >= 1, --retrain-crop >= 64")
    budget = {"steps": retrain_steps, "crop": retrain_crop, "batch_size": retrain_batch_size,
              "eval_groups": retrain_eval_groups, "eval_baselines": retrain_baselines}
    config = call_or_exit(ServeConfig, limit=limit, poll_seconds=poll_seconds, retrain=retrain, retrain_parameters=budget)
    serve(config, services, _api_url(ctx), printer=lambda line: print(line, flush=True))
