"""What the commands print: one console for results, tables that stay readable in 80 columns.

Numbers never wrap or get cut (``0.…`` tells nobody anything); names and notes fold onto a
second line instead, and long notes go under the table as numbered footnotes. Every command
that prints a table also has ``--json`` (the table is for people, the JSON for scripts).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from rich import box
from rich.console import Console
from rich.table import Table

PIPE_WIDTH = 100  # output piped to a file or a CI log: wide enough for every table, still readable

Kind = Literal["text", "number"]


def stdout_console() -> Console:
    """The console results go to: the terminal's width, or ``COLUMNS`` / 100 when piped."""
    if sys.stdout.isatty():
        return Console()
    columns = os.environ.get("COLUMNS", "")
    return Console(width=int(columns) if columns.isdigit() else PIPE_WIDTH)


@dataclass(frozen=True)
class Column:
    """A table column: numbers keep their width and align right; text folds when space is short.

    A header may hold a newline (``"BD-rate\\nPSNR"``) so a narrow number column keeps a long name.
    """

    header: str
    kind: Kind = "text"


def number(header: str) -> Column:
    return Column(header, "number")


def text(header: str) -> Column:
    return Column(header, "text")


def compact_table(columns: Sequence[Column], title: str | None = None) -> Table:
    """A table without side borders and one space between columns (the width goes to the data)."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), title_justify="left",
                  collapse_padding=True)
    for column in columns:
        if column.kind == "number":
            table.add_column(column.header, justify="right", no_wrap=True)
        else:
            table.add_column(column.header, overflow="fold")
    return table


def footnotes(notes: Iterable[str]) -> tuple[list[str], list[str]]:
    """Number non-empty notes: returns the marks to put in the table (``"[1]"`` or ``""``) and the
    lines to print under it (``"[1] note"``); equal notes share a number."""
    marks: list[str] = []
    lines: list[str] = []
    seen: dict[str, str] = {}
    for note in notes:
        if not note:
            marks.append("")
            continue
        if note not in seen:
            seen[note] = f"[{len(seen) + 1}]"
            lines.append(f"{seen[note]} {note}")
        marks.append(seen[note])
    return marks, lines
