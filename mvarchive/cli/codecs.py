"""``mvarchive codecs``: the registered codecs, their presets and sizes (cached, see
:mod:`mvarchive.cli.codec_catalog`)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .common import out, services_of


def codecs_command(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List registered codecs with presets, accepted view counts and parameter counts."""
    from mvarchive.terminal import compact_table, number, text

    from .codec_catalog import catalog

    rows = catalog(services_of(ctx).home / "cache")
    if json_output:
        print(json.dumps(rows, indent=2))
        return
    table = compact_table([text("name"), number("id"), number("views"), text("preset"), number("encoder"),
                           number("decoder"), number("total")], title="registered codecs (parameters)")
    for row in rows:
        views = row["views"]  # the codec's ViewRange, written when the catalog was built
        for i, (preset, info) in enumerate(row["presets"].items()):
            sizes = [_millions(info["parameters"], part) for part in ("encoder", "decoder", "total")]
            table.add_row(row["name"] if i == 0 else "", str(row["id"]) if i == 0 else "", views if i == 0 else "",
                          preset, *sizes,
                          end_section=i == len(row["presets"]) - 1)
    out.print(table)
    for row in rows:
        out.print(f"{row['name']}: {row['description']}", highlight=False)


def _millions(parameters: dict[str, int], part: str) -> str:
    return f"{parameters[part] / 1e6:.2f} M" if part in parameters else "-"
