"""Progress bars for long work, on stderr so ``--json`` output stays clean."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _Bar:
    def __init__(self, progress: Progress | None, task_id: TaskID | None) -> None:
        self._progress, self._task = progress, task_id

    def advance(self, steps: float = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, steps)

    def describe(self, text: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=text)


@contextlib.contextmanager
def progress_bar(description: str, total: float, enabled: bool = True) -> Iterator[_Bar]:
    """A rich progress bar (no-op when disabled, e.g. in tests or non-interactive runs)."""
    if not enabled:
        yield _Bar(None, None)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
    )
    with progress:
        yield _Bar(progress, progress.add_task(description, total=total))
