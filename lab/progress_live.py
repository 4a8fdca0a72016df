"""`lab up` on a terminal: a live table with one row per VM (its step, for how long,
and its last message; while it boots, the last line its console printed).

Lab-wide lines (image, networks, uploads) print above the table with their timestamps.
When stdout or stderr is not a terminal (CI logs, pipes, tests), or ``LAB_PROGRESS=plain``,
:func:`lab_progress` returns the plain :class:`~lab.progress.Progress` unchanged.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from lab.progress import Progress

#: The first step of every VM: the lab-wide work (golden image, networks) comes first.
WAITING = "image"
#: The step that shows the console's last line instead of the last message.
BOOTING = "boot"
#: The last step: the VM is up (its time column then stays empty).
DONE = "up"

_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Row:
    step: str
    since: float
    message: str = ""


def last_console_line(path: Path, tail: int = 400) -> str | None:
    """The last non-empty line of ``path`` (reads only its last ``tail`` bytes)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(fh.tell() - tail, 0))
            text = fh.read().decode(errors="replace")
    except OSError:
        return None
    lines = [_CONTROL.sub("", ln).strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else None


class VmTable:
    """A :class:`~lab.progress.Sink`: rows per VM, kept up to date by ``event``/``step``
    (called from the VM threads) and drawn by :meth:`render` (from rich's refresh thread)."""

    def __init__(self, vms: Sequence[str], console_log: Callable[[str], Path],
                 console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self._console_log = console_log
        self._clock = clock
        self._start = clock()
        self._lock = threading.Lock()
        self._rows = {vm: Row(WAITING, self._start) for vm in vms}
        self._live: Live | None = None

    def event(self, subject: str, message: str, elapsed: float) -> None:
        with self._lock:
            row = self._rows.get(subject)
            if row is not None:
                self._rows[subject] = replace(row, message=message)
                return
        self.console.print(Text(f"[{elapsed:6.1f}s] {subject}: {message}"))

    def step(self, subject: str, step: str) -> None:
        with self._lock:
            row = self._rows.get(subject, Row(step, self._clock()))
            self._rows[subject] = Row(step, self._clock(), row.message)

    def render(self) -> RenderableType:
        now = self._clock()
        with self._lock:
            rows = dict(self._rows)
        table = Table(box=None, pad_edge=False, show_edge=False, expand=True)
        table.add_column("VM", no_wrap=True, min_width=max(map(len, rows), default=2))
        table.add_column("step", no_wrap=True, min_width=9)  # provision, snapshot
        table.add_column("for", no_wrap=True, justify="right", min_width=6)
        table.add_column("last", no_wrap=True, overflow="ellipsis", ratio=1)
        for vm, row in rows.items():
            took = "" if row.step == DONE else f"{now - row.since:5.0f}s"
            table.add_row(vm, row.step, took, self._detail(vm, row))
        done = sum(row.step == DONE for row in rows.values())
        footer = Text(f"{done}/{len(rows)} VMs up, {now - self._start:.0f}s", style="dim")
        return Group(table, footer)

    def _detail(self, vm: str, row: Row) -> Text:
        if row.step == BOOTING:
            line = last_console_line(self._console_log(vm))
            return Text(f"console: {line}" if line else "console: nothing printed yet",
                        style="cyan")
        return Text(row.message)

    def start(self) -> None:
        self._live = Live(console=self.console, get_renderable=self.render,
                          refresh_per_second=4, transient=False,
                          redirect_stdout=True, redirect_stderr=True)
        self._live.start()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def is_terminal() -> bool:
    return (sys.stdout.isatty() and sys.stderr.isatty()
            and os.environ.get("TERM", "") != "dumb"
            and os.environ.get("LAB_PROGRESS", "") != "plain")


def lab_progress(log: Path, vms: Sequence[str], console_log: Callable[[str], Path]) -> Progress:
    """A :class:`Progress` for `lab up`: a live table on a terminal, else plain lines.
    Use it as a context manager (it stops the live view)."""
    if not is_terminal():
        return Progress(log=log)
    table = VmTable(vms, console_log, Console(file=sys.stderr))
    table.start()
    return Progress(log=log, sink=table)
