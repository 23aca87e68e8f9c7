"""``mvarchive demo``: sample data, a short training, archive, restore and the results table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .common import call_or_exit, out, services_of


def demo_command(
    ctx: typer.Context,
    output_dir: Annotated[Path, typer.Option("--out", help="Where the sample data, checkpoints, archives and restored images go.")] = Path("demo-output"),
    steps: Annotated[int | None, typer.Option(help="Training steps per codec (default 4800 at batch 1, ~6 min of training on 2 idle cores).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Also print the results table as JSON (last line).")] = False,
) -> None:
    """Build a sample dataset, train LDMIC-fast briefly, archive, restore, print the results."""
    from mvarchive.flows.demo import DemoConfig, run_demo

    config = DemoConfig(output_dir=str(output_dir))
    if steps is not None:
        config.steps = steps
    rows = call_or_exit(run_demo, config, services_of(ctx), out)
    if json_output:
        print(json.dumps([{"row": name, **values} for name, values in rows], default=str))
