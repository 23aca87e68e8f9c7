"""What every command shares: the two consoles, the services of the global options, and how a
user's mistake becomes one line and exit code 2 (the traceback only with ``--debug``).

Only typer and rich are imported here, so every command's ``--help`` answers at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, NoReturn

import typer
from rich.console import Console

from mvarchive.terminal import stdout_console

DEBUG_ENV = "MVARCHIVE_DEBUG"

out = stdout_console()  # results
err = Console(stderr=True, soft_wrap=True)  # errors and warnings


def debug_enabled() -> bool:
    """``--debug`` was given (here or in the process that started this one)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def user_errors() -> tuple[type[BaseException], ...]:
    """What a user's mistake raises. The library's own errors (``DatasetError``, ``ArchiveError``,
    ``BitstreamError``, ``CheckpointError``, ``ScheduleError``) are ``ValueError``s, so nothing
    needs importing to name them here."""
    return (KeyError, FileNotFoundError, FileExistsError, ValueError, TypeError)


def call_or_exit(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the library; user mistakes become one clear line and exit code 2 (the traceback
    only with --debug)."""
    try:
        return fn(*args, **kwargs)
    except user_errors() as exc:
        if debug_enabled():
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        fail(str(message))


def services_of(ctx: typer.Context) -> Any:
    """The services of the global options (``mvarchive --home … CMD``), else the environment's
    (a command group run on its own)."""
    root = ctx.find_root() if ctx is not None else None
    obj = root.obj if root is not None else None
    if isinstance(obj, dict) and "services" in obj:
        return obj["services"]
    from mvarchive.infra import ServicesConfig

    return ServicesConfig.from_env()


def storage_options(text: str | None, url: str, default: dict[str, Any]) -> dict[str, Any]:
    """fsspec options given as JSON; else ``default`` for a remote URL and none for a local path."""
    if text:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            fail(f"storage options must be a JSON object: {exc}")
        if not isinstance(value, dict):
            fail("storage options must be a JSON object")
        return value
    return dict(default) if "://" in url and not url.startswith("file://") else {}


def split_list(value: str | None) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]``; nothing given -> None (meaning all)."""
    return [v for v in value.split(",") if v] if value else None
