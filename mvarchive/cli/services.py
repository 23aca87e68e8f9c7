"""``mvarchive services up | status | down``: the persistent service stack.

Registered in :mod:`mvarchive.cli.app` with ``app.add_typer(services_app, name="services")``.
Only typer is imported here; the stack code (and Prefect, MLflow, Dask with it)
loads inside the commands, so ``--help`` answers at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .common import fail

services_app = typer.Typer(
    help="Persistent services (Prefect, MLflow, Dask, optional S3) that every command uses while "
    "they run. State, logs and data live under MVARCHIVE_HOME.",
    no_args_is_help=True,
)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="State directory (default ./.mvarchive). Env: MVARCHIVE_HOME."),
]


def _config(home: Path | None):  # type: ignore[no-untyped-def]
    from mvarchive.infra.settings import ServicesConfig

    # The stack's own settings must not feed back into starting it.
    return ServicesConfig.from_env(home=home, use_stack=False)


@services_app.command()
def up(
    workers: Annotated[int, typer.Option(help="Dask worker processes.", min=1)] = 2,
    threads: Annotated[int, typer.Option(help="Threads per Dask worker.", min=1)] = 1,
    s3: Annotated[bool, typer.Option("--s3/--no-s3", help="Also run a SeaweedFS S3 store.")] = False,
    bucket: Annotated[str, typer.Option(help="S3 bucket created with --s3.")] = "mvarchive",
    prefect_port: Annotated[int | None, typer.Option(help="Prefect port (default 4200 if free).")] = None,
    mlflow_port: Annotated[int | None, typer.Option(help="MLflow port (default 5000 if free).")] = None,
    dask_port: Annotated[int | None, typer.Option(help="Dask scheduler port (default 8786 if free).")] = None,
    dashboard_port: Annotated[int | None, typer.Option(help="Dask dashboard port (default 8787 if free).")] = None,
    home: HomeOption = None,
) -> None:
    """Start the services that are not running yet; report the ones that are."""
    from mvarchive.infra.ports import ServiceStartError
    from mvarchive.infra.seaweedfs import validate_bucket_name
    from mvarchive.infra.stack import StackOptions, stack_up, ui_lines
    from mvarchive.infra.stack_state import state_path

    try:
        validate_bucket_name(bucket)
        config = _config(home)
    except ValueError as exc:
        fail(str(exc), 2)
    options = StackOptions(
        workers=workers, threads_per_worker=threads, s3=s3, bucket=bucket,
        prefect_port=prefect_port, mlflow_port=mlflow_port,
        scheduler_port=dask_port, dashboard_port=dashboard_port,
    )  # fmt: skip
    try:
        report = stack_up(config, options)
    except (ServiceStartError, FileNotFoundError, ValueError) as exc:
        fail(str(exc), 1)
    for name in report.running:
        typer.echo(f"already running  {name}")
    for name in report.remote:
        typer.echo(f"configured       {name} (remote, not started)")
    if report.started:
        typer.echo(f"started          {', '.join(report.started)} in {report.seconds:.1f} s")
    else:
        typer.echo("nothing to start")
    typer.echo("")
    for line in ui_lines(report.state):
        typer.echo(line)
    typer.echo(f"state           {state_path(config.home)}")
    typer.echo("Commands use these services while they run; `mvarchive services down` stops them.")


@services_app.command()
def status(
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    home: HomeOption = None,
) -> None:
    """One line per service: name, health, PID (or "remote" when configured), URL.

    Exit status 0 when every recorded service is healthy, 1 when one is not,
    3 when no stack is recorded under HOME.
    """
    from mvarchive.infra.stack import stack_status
    from mvarchive.infra.stack_state import state_path

    try:
        config = _config(home)
    except ValueError as exc:
        fail(str(exc), 2)
    state, lines = stack_status(config)
    code = 3 if state is None else (0 if all(line.ok for line in lines) else 1)
    if json_output:
        payload = {
            "home": str(config.home),
            "state": str(state_path(config.home)) if state is not None else None,
            "running": state is not None and code == 0,
            "services": [line.as_dict() for line in lines],
        }
        typer.echo(json.dumps(payload, indent=2))
        raise typer.Exit(code)
    if state is None:
        typer.echo(f"no stack recorded under {config.home} (start one: mvarchive services up)")
    for line in lines:
        pid = str(line.pid) if line.pid is not None else ("-" if line.managed else "remote")
        typer.echo(f"{line.name:<15} {line.health:<13} {pid:>7}  {line.url}")
    if any(not line.managed for line in lines):
        typer.echo("remote: configured (PREFECT_API_URL, ...), not started or stopped by `up`/`down`")
    raise typer.Exit(code)


@services_app.command()
def down(
    timeout: Annotated[float, typer.Option(help="Seconds to wait before SIGKILL.")] = 20.0,
    home: HomeOption = None,
) -> None:
    """Stop what `up` started (by recorded PID and process group) and remove the state file."""
    from mvarchive.infra.stack import stack_down

    try:
        config = _config(home)
    except ValueError as exc:
        fail(str(exc), 2)
    report = stack_down(config, timeout)
    if not report.had_state:
        typer.echo(f"no stack recorded under {config.home}; nothing to stop")
        return
    for name, pid in report.stopped:
        typer.echo(f"stopped  {name} (pid {pid})")
    for name, reason in report.skipped:
        typer.echo(f"left     {name}: {reason}")
    typer.echo("logs and data stay in " + str(config.home))

