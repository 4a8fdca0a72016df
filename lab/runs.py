"""One folder per scenario run, per lab: what ran, what did not, where its files are.

Layout (``root`` is ``artifacts`` unless ``--lab-run-dir`` names a run folder)::

    artifacts/<lab name>/runs/<run id>/
        run.json        lab, config, state dir, JUnit path, start; then end and exit status
        collected.txt   the node ids of the lab tests collected (written at collection)
        results.jsonl   one line per finished test: node id and outcome (as they finish)
        junit.xml       the JUnit XML (unless --junitxml put it elsewhere; run.json says where)
        evidence/<test>/...
    artifacts/<lab name>/latest -> runs/<run id>

A run id is the UTC start time and a short random suffix (``20261202T101500Z-3f9a``):
ids sort by time and two runs started in the same second never share a folder.
A run whose ``run.json`` has no end (the session was killed) or whose exit status says
it was interrupted, or that has collected tests without a result, is reported as such:
a run never looks more complete than it was.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabFailure

RUN_FILE = "run.json"
COLLECTED_FILE = "collected.txt"
RESULTS_FILE = "results.jsonl"
#: pytest's exit status for a session stopped by Ctrl-C (``pytest.ExitCode.INTERRUPTED``).
EXIT_INTERRUPTED = 2


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(2)


def lab_root(artifacts: Path, lab: str) -> Path:
    """Where the runs of lab ``lab`` live."""
    return artifacts / lab


def run_folder(artifacts: Path, lab: str, run_id: str) -> Path:
    return lab_root(artifacts, lab) / "runs" / run_id


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@dataclass(frozen=True)
class RunStart:
    """What ``run.json`` says when the session starts."""

    run_id: str
    lab: str
    config: str
    state_dir: str
    junit: str
    started: float
    pid: int = 0
    """The pytest controller's process id (tells a running session from a killed one)."""


def write_start(folder: Path, start: RunStart) -> None:
    _write_atomic(folder / RUN_FILE, json.dumps(start.__dict__, indent=1) + "\n")


def write_end(folder: Path, exit_status: int) -> None:
    """Add the end time and pytest's exit status to ``run.json``."""
    data = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    data.update(ended=time.time(), exit_status=exit_status)
    _write_atomic(folder / RUN_FILE, json.dumps(data, indent=1) + "\n")


def write_collected(folder: Path, nodeids: list[str]) -> None:
    """The lab tests of the run (every xdist worker collects the same set: last one wins)."""
    _write_atomic(folder / COLLECTED_FILE, "".join(n + "\n" for n in nodeids))


def append_result(folder: Path, nodeid: str, outcome: str) -> None:
    """One finished test (a single short line: appends from one process stay whole)."""
    line = json.dumps({"nodeid": nodeid, "outcome": outcome}) + "\n"
    with (folder / RESULTS_FILE).open("a", encoding="utf-8") as fh:
        fh.write(line)


def link_latest(folder: Path) -> None:
    """Point ``<lab root>/latest`` at ``folder`` (replaced atomically)."""
    latest = folder.parent.parent / "latest"
    tmp = latest.with_name(f".latest.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(Path("runs") / folder.name)
    os.replace(tmp, latest)


@dataclass(frozen=True)
class RunRecord:
    """A run folder as read back by `lab report`."""

    folder: Path
    start: RunStart
    exit_status: int | None
    """None when the session never finished (killed, or still running)."""
    ended: float | None
    collected: tuple[str, ...]
    finished: dict[str, str]
    """Node id -> outcome of every test that has a result."""

    @property
    def run_id(self) -> str:
        return self.start.run_id

    @property
    def not_run(self) -> tuple[str, ...]:
        """Collected lab tests with no result: never started, or cut off while running."""
        return tuple(n for n in self.collected if n not in self.finished)

    @property
    def state(self) -> str:
        """``complete``, ``running`` (no end record, its process is alive), ``interrupted``
        (Ctrl-C, or no end record and no process) or ``incomplete`` (tests without result)."""
        if self.exit_status is None and _alive(self.start.pid):
            return "running"
        if self.exit_status is None or self.exit_status == EXIT_INTERRUPTED:
            return "interrupted"
        return "incomplete" if self.not_run else "complete"


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_run(folder: Path) -> RunRecord:
    try:
        data = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
        start = RunStart(**{k: data[k] for k in RunStart.__dataclass_fields__ if k in data})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LabFailure(f"{folder} is not a readable run folder ({exc})",
                         hint="run the scenario suite again") from None
    collected = _lines(folder / COLLECTED_FILE)
    finished: dict[str, str] = {}
    for line in _lines(folder / RESULTS_FILE):
        try:
            entry = json.loads(line)
            finished[str(entry["nodeid"])] = str(entry["outcome"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut off by a kill: that test counts as not run
    status = data.get("exit_status")
    return RunRecord(folder=folder, start=start,
                     exit_status=int(status) if status is not None else None,
                     ended=float(data["ended"]) if data.get("ended") else None,
                     collected=collected, finished=finished)


def _lines(path: Path) -> tuple[str, ...]:
    try:
        return tuple(line for line in path.read_text(encoding="utf-8").splitlines() if line)
    except FileNotFoundError:
        return ()


def is_lab_run(folder: Path) -> bool:
    """A run folder of a session that collected lab tests (not, e.g., a unit-test run)."""
    return (folder / RUN_FILE).is_file() and (folder / COLLECTED_FILE).is_file()


def latest_run(artifacts: Path, lab: str) -> RunRecord:
    """The newest run of lab ``lab`` under ``artifacts`` (LabFailure when there is none)."""
    runs = lab_root(artifacts, lab) / "runs"
    folders = sorted((f for f in runs.iterdir() if is_lab_run(f)), key=lambda f: f.name) \
        if runs.is_dir() else []
    if not folders:
        raise LabFailure(f"lab {lab} has no scenario run under {runs}",
                         hint="run the scenario suite first (make lab, or pytest tests/scenarios "
                              "--lab-config ...)")
    return read_run(folders[-1])
