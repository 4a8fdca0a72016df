"""Progress of a scenario run that shows a stuck test: which test, on which VM, doing what.

Each process that runs tests (an xdist worker, or pytest itself without xdist) keeps
``<run folder>/progress/<worker>.json`` with its current test, VM and last timeline
step, and appends plain timestamped lines to ``<worker>.log`` (one per step). The
controller's :class:`Watcher` thread reads those files and, every ``interval``
seconds, prints one line per test still running::

    still running: tests/scenarios/test_scenarios.py::test_unload[labtdi-idle] on vm2
    for 95s, last step: labtdi loaded (80s ago)
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class WorkerStatus:
    """The status file and log of one worker (its methods never raise on I/O errors:
    progress must not fail a test)."""

    def __init__(self, folder: Path, worker: str) -> None:
        self.folder = folder
        self.worker = worker
        self._lock = threading.Lock()
        self._state: dict[str, object] = {"worker": worker, "test": None}

    def begin(self, test: str, vm: str) -> None:
        now = time.time()
        self._update(f"{test} on {vm}: started", test=test, vm=vm, since=now,
                     step="leased", step_at=now)

    def step(self, what: str) -> None:
        self._update(f"{self._state.get('test')}: {what}", step=what, step_at=time.time())

    def end(self, test: str, outcome: str) -> None:
        self._update(f"{test}: {outcome}", test=None, vm=None)

    def _update(self, line: str, **fields: object) -> None:
        with self._lock:
            self._state.update(fields)
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                with (self.folder / f"{self.worker}.log").open("a", encoding="utf-8") as fh:
                    fh.write(f"{_stamp()} {self.worker} {line}\n")
                tmp = self.folder / f".{self.worker}.json.tmp"
                tmp.write_text(json.dumps(self._state), encoding="utf-8")
                os.replace(tmp, self.folder / f"{self.worker}.json")
            except OSError:
                pass


@dataclass(frozen=True)
class Running:
    worker: str
    test: str
    vm: str
    seconds: float
    step: str
    step_ago: float

    def line(self) -> str:
        return (f"still running: {self.test} on {self.vm} for {self.seconds:.0f}s, "
                f"last step: {self.step} ({self.step_ago:.0f}s ago)")


def running(folder: Path, now: float | None = None) -> list[Running]:
    """The tests in progress according to the status files in ``folder``."""
    now = time.time() if now is None else now
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if state.get("test"):
            found.append(Running(str(state["worker"]), str(state["test"]), str(state["vm"]),
                                 now - float(state["since"]), str(state["step"]),
                                 now - float(state["step_at"])))
    return found


class Watcher:
    """Controller thread: every ``interval`` s, one line per test running for at least
    ``min_age`` s to ``write`` (on a terminal only tests that look stuck are shown)."""

    def __init__(self, folder: Path, write: Callable[[str], None], interval: float = 30.0,
                 min_age: float = 0.0) -> None:
        self.folder = folder
        self.write = write
        self.interval = interval
        self.min_age = min_age
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lab-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for entry in running(self.folder):
                if entry.seconds >= self.min_age:
                    self.write(entry.line())
