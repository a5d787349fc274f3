"""The experiment's progress bar: one overall Rich bar plus the current cell."""

from __future__ import annotations


class Progress:
    """One overall Rich progress bar plus the current cell (silent when not on a TTY)."""

    def __init__(self, enabled: bool | None, total: int):
        import sys

        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.total = total

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(TextColumn("cells"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.description}"))
            self._bar.start()
            self._task = self._bar.add_task("", total=self.total)
        return self

    def describe(self, text: str) -> None:
        if self.enabled:
            self._bar.update(self._task, description=text)

    def advance(self) -> None:
        if self.enabled:
            self._bar.update(self._task, advance=1)

    def __exit__(self, *exc) -> bool:
        if self.enabled:
            self._bar.stop()
        return False
