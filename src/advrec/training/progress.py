"""The one progress helper: a Rich display on a terminal, plain lines on stderr elsewhere.

On a terminal every :class:`Progress` opened while another is showing joins its display (the
experiment's cells with their ETA, and under them the current model's epochs), so nesting never
starts a second live display. Not on a terminal (CI, ``nohup``, a log file) it writes one plain
line to stderr per finished unit, or at most one every ``every`` seconds (a heartbeat for
epochs), and a last line when it closes, so a long run never goes silent.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

HEARTBEAT_SECONDS = 30.0
_SHOWN = ("loss", "validation")  # what an epoch line shows of the logs

_live: list[Any] = []  # the Rich Progress on screen, shared by nested displays
_depth = [0]


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def _info(logs: Mapping[str, Any] | None) -> str:
    if not logs:
        return ""
    return "  ".join(f"{k} {v:.4f}" for k, v in logs.items()
                     if k in _SHOWN and isinstance(v, (int, float)))


class Progress:
    """Progress over ``total`` units (cells, epochs) named ``description``.

    ``enabled``: None = a Rich display on a terminal (stderr), plain lines elsewhere; True =
    the Rich display always; False = silent. ``every``: in plain mode, the least number of
    seconds between two lines (None: a line per unit). Used as a context manager; ``advance``
    counts a finished unit (with the logs to show, e.g. an epoch's loss), ``describe`` changes
    the text.
    """

    def __init__(self, description: str, total: int, *, enabled: bool | None = None,
                 done: int = 0, unit: str = "", every: float | None = None,
                 stream=None) -> None:
        self.description, self.total, self.done = description, int(total), int(done)
        self.unit, self.every = unit, every
        self.stream = stream
        terminal = sys.stderr.isatty()
        self.mode = ("off" if enabled is False else "rich" if enabled or terminal else "plain")
        self._task = None
        self._info = ""
        self._shown = -1  # the count the last plain line showed

    # ---------------------------------------------------------------------- context
    def __enter__(self) -> Progress:
        self._t0 = self._last = time.monotonic()
        if self.mode == "rich":
            if not _live:
                _live.append(_new_display())
                _live[0].start()
            _depth[0] += 1
            self._task = _live[0].add_task(self.description, total=self.total,
                                           completed=self.done, info="")
        return self

    def __exit__(self, *exc) -> bool:
        if self.mode == "rich":
            display = _live[0]
            _depth[0] -= 1
            if _depth[0] > 0:  # a nested display (a model's epochs) leaves the screen
                display.remove_task(self._task)
            else:
                display.stop()
                _live.clear()
        elif self.mode == "plain" and self.done != self._shown and exc[0] is None:
            self._line()
        return False

    # ---------------------------------------------------------------------- updates
    def describe(self, text: str) -> None:
        self.description = text
        if self.mode == "rich":
            _live[0].update(self._task, description=text)

    def advance(self, logs: Mapping[str, Any] | None = None, n: int = 1) -> None:
        self.done += n
        self._info = _info(logs)
        if self.mode == "rich":
            _live[0].update(self._task, advance=n, info=self._info)
        elif self.mode == "plain":
            now = time.monotonic()
            if self.every is None or now - self._last >= self.every or self.done >= self.total:
                self._last = now
                self._line()

    def __call__(self, logs: Mapping[str, Any] | None = None) -> None:
        """One finished unit (an epoch hook's form of :meth:`advance`)."""
        self.advance(logs)

    def _line(self) -> None:
        self._shown = self.done
        elapsed = time.monotonic() - self._t0
        eta = ""
        if 0 < self.done < self.total:
            eta = f", about {_fmt_seconds(elapsed / self.done * (self.total - self.done))} left"
        unit = f" {self.unit}" if self.unit else ""
        info = f"  {self._info}" if self._info else ""
        text = (f"{self.description}: {self.done}/{self.total}{unit} "
                f"({_fmt_seconds(elapsed)} elapsed{eta}){info}")
        print(text, file=self.stream or sys.stderr, flush=True)


def _new_display():
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress

    return RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(),
                        TextColumn("{task.fields[info]}"), console=Console(stderr=True),
                        transient=False)


def epoch_progress(enabled: bool | None, description: str, total: int,
                   done: int = 0) -> Progress:
    """The progress of a training loop over epochs: in plain mode a heartbeat line every
    :data:`HEARTBEAT_SECONDS` (and the last epoch)."""
    return Progress(description, total, enabled=enabled, done=done, unit="epochs",
                    every=HEARTBEAT_SECONDS)
