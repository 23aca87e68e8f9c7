"""Command line: ``mvarchive --help``; one module per command group, put together in :mod:`.app`.

``common`` holds what every command shares (consoles, services, one-line errors). Nothing
heavy (torch, Prefect, MLflow, Dask) is imported before a command runs, so ``--help`` answers
at once.
"""

from .app import app, main

__all__ = ["app", "main"]
