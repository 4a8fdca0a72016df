"""The scenario suite on a terminal: a panel below pytest's output, redrawn twice a second,
with one row per running test (worker, test, VM, current step and for how long) and a
footer (done/total and counts by verdict).

pytest keeps writing its own output (dots, failures, summary) to its terminal writer.
rich's ``Live`` cannot share the terminal with that writer (each refresh would erase the
row of dots pytest is writing), so :class:`PanelTerminal` sits between the writer and the
terminal instead: before each pytest write it erases the panel (``ESC [ J``: everything
after the cursor, which always stays at the end of pytest's text), and it redraws the panel
(rendered by rich) below pytest's current line, then moves the cursor back to it.
"""

from __future__ import annotations

import io
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import pytest
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from lab import suite_progress
from lab.run_session import result_of

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: rows shown at most (a -n 8 run fits; more running tests are counted in the footer)
MAX_ROWS = 8


class SuiteState:
    """What the panel shows: the workers' status files plus the verdicts seen so far."""

    def __init__(self, folder: Path, clock: Callable[[], float] = time.time) -> None:
        self.folder = folder
        self._clock = clock
        self._lock = threading.Lock()
        self.verdicts: Counter[str] = Counter()
        #: tests collected (set by the plugin once collection is done; 0: not yet known)
        self.total = 0

    def record(self, verdict: str) -> None:
        with self._lock:
            self.verdicts[verdict] += 1

    def render(self) -> RenderableType:
        now = self._clock()
        entries = suite_progress.running(self.folder / "progress", now)
        table = Table(box=None, pad_edge=False, show_edge=False)
        for title, width in (("worker", 6), ("test", 12), ("VM", 3), ("step", 12),
                             ("for", 5), ("total", 5)):
            table.add_column(title, no_wrap=True, overflow="ellipsis", min_width=width)
        for e in entries[:MAX_ROWS]:
            cells = (e.worker, e.test.rsplit("::", 1)[-1], e.vm, e.step,
                     f"{e.step_ago:4.0f}s", f"{e.seconds:4.0f}s")
            table.add_row(*(Text(cell) for cell in cells))  # no markup: test ids have [..]
        with self._lock:
            counts = ", ".join(f"{n} {v}" for v, n in sorted(self.verdicts.items()))
            done = sum(self.verdicts.values())
        total = self.total
        more = f" (+{len(entries) - MAX_ROWS} more running)" if len(entries) > MAX_ROWS else ""
        footer = Text(f"{done}/{total or '?'} done" + (f": {counts}" if counts else "") + more,
                      style="bold")
        return Group(table, footer) if entries else footer


def render_lines(renderable: RenderableType, width: int) -> list[str]:
    """``renderable`` as terminal lines (with colours), each shorter than ``width``."""
    buf = io.StringIO()
    Console(file=buf, width=width - 1, force_terminal=True, color_system="standard",
            legacy_windows=False).print(renderable)
    return buf.getvalue().rstrip("\n").split("\n")


class PanelTerminal:
    """The file pytest's terminal writer writes to: the real terminal, with a panel kept
    below the text (see the module doc)."""

    def __init__(self, real: TextIO, width: int) -> None:
        self.real = real
        self.width = width
        self._lock = threading.RLock()
        self._column = 0
        self._drawn = False

    def write(self, text: str) -> int:
        with self._lock:
            self._erase()
            self.real.write(text)
            tail = re.split("[\r\n]", _ESCAPE.sub("", text))
            self._column = len(tail[-1]) + (self._column if len(tail) == 1 else 0)
            return len(text)

    def flush(self) -> None:
        self.real.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, encoding, fileno...
        return getattr(self.real, name)

    def draw(self, lines: list[str]) -> None:
        with self._lock:
            self._erase()
            if self._column >= self.width - 1:
                return  # pytest's line is full: wait for its newline
            self.real.write("\n" + "\n".join(lines)
                            + f"\x1b[{len(lines)}A\x1b[{self._column + 1}G")
            self.real.flush()
            self._drawn = True

    def _erase(self) -> None:
        if self._drawn:
            self.real.write("\x1b[J")
            self._drawn = False

    def close(self) -> None:
        with self._lock:
            self._erase()
            self.real.flush()


class SuitePanel:
    """Controller thread: redraws the panel every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, state: SuiteState, terminal: PanelTerminal, interval: float = 0.5
                 ) -> None:
        self.state = state
        self.terminal = terminal
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lab-panel", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.terminal.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.terminal.draw(render_lines(self.state.render(), self.terminal.width))
            except Exception:  # the panel must never break the run
                continue


# ---- pytest glue (the controller only; see lab.pytest_plugin) --------------------------


def wanted(config: pytest.Config, writer: Any) -> bool:
    """A panel on a terminal only (CI logs and pipes keep the plain lines), and only in
    an xdist controller: without xdist the tests run in this process, where pytest
    captures the terminal's file descriptor while a test runs."""
    real = getattr(writer, "_file", None)
    return (config.pluginmanager.get_plugin("dsession") is not None
            and real is not None and hasattr(real, "isatty") and real.isatty()
            and os.environ.get("TERM", "") != "dumb"
            and os.environ.get("LAB_PROGRESS", "") != "plain")


def attach(writer: Any, run_folder: Path) -> SuitePanel:
    """Put a :class:`PanelTerminal` under pytest's terminal writer and start the panel."""
    terminal = PanelTerminal(writer._file, int(writer.fullwidth))
    writer._file = terminal
    panel = SuitePanel(SuiteState(run_folder), terminal)
    panel.start()
    return panel


def detach(writer: Any, panel: SuitePanel) -> None:
    panel.stop()
    if writer._file is panel.terminal:
        writer._file = panel.terminal.real


class Counting:
    """Plugin object: counts finished tests by verdict, and the tests collected."""

    def __init__(self, state: SuiteState) -> None:
        self.state = state

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.state.total = max(self.state.total, len(session.items))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.state.total = max(self.state.total, len(ids))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = result_of(report.when, report.outcome)
        if result is not None:
            verdict = dict(report.user_properties).get("verdict", result)
            self.state.record(str(verdict))
