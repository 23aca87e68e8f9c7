"""The ``mvarchive`` command: global options, and every command group put together.

Thin layer: each command parses into the typed configs of the flows and calls them. Service
locations come from global options or their environment variables (see ``mvarchive services``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from .archive import archive_command, info_command, migrate_command
from .codecs import codecs_command
from .common import DEBUG_ENV, debug_enabled, err
from .demo import demo_command
from .evaluation import eval_command
from .models import models_app, retrain_command
from .restore import restore_command, verify_command
from .schedule import schedule_app, serve_command
from .services import services_app
from .train import train_command

QUIET_PREFECT_ENV = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"

app = typer.Typer(
    help="Archive multi-camera image datasets with learned multi-view codecs, and restore them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class _OnlyOurs(logging.Filter):
    """Without -v/--debug the console shows mvarchive's own warnings, not the services' (a failed
    flow's traceback from Prefect, Dask's worker chatter): the error line says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(("prefect", "distributed", "dask", "uvicorn", "httpx", "alembic"))


@app.callback()
def main_options(
    ctx: typer.Context,
    home: Annotated[Path | None, typer.Option(help="Local state (MLflow DB, Prefect home). Env: MVARCHIVE_HOME.")] = None,
    dask_address: Annotated[str | None, typer.Option(help="Existing Dask scheduler; default: the running stack (`mvarchive services up`), else a LocalCluster. Env: MVARCHIVE_DASK_ADDRESS.")] = None,
    workers: Annotated[int | None, typer.Option(help="LocalCluster worker processes (default 2). Env: MVARCHIVE_DASK_WORKERS.")] = None,
    prefect_api_url: Annotated[str | None, typer.Option(help="Prefect API; default: the running stack, else a local server per command. Env: PREFECT_API_URL.")] = None,
    mlflow_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI; default: the running stack, else sqlite in HOME. Env: MLFLOW_TRACKING_URI.")] = None,
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


# Working with archives and codecs
app.command("codecs")(codecs_command)
app.command("archive")(archive_command)
app.command("restore")(restore_command)
app.command("verify")(verify_command)
app.command("info")(info_command)
app.command("migrate")(migrate_command)
app.command("demo")(demo_command)
app.command("eval")(eval_command)
# Operating mvarchive: training, persistent services, the model registry, schedules
app.command("train")(train_command)
app.add_typer(services_app, name="services")
app.add_typer(models_app, name="models")
app.command("retrain")(retrain_command)
app.add_typer(schedule_app, name="schedule")
app.command("serve")(serve_command)


def main(argv: list[str] | None = None) -> None:
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
        if debug_enabled():
            raise
        from rich.markup import escape

        err.print(f"[bold red]error:[/] {type(exc).__name__}: {escape(str(exc))}", highlight=False)
        err.print("run again with --debug for the traceback")
        raise SystemExit(1) from None
