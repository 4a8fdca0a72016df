"""The run folder of one pytest session (:mod:`lab.runs`), as the pytest plugin uses it.

The controller (or the only process, without xdist) picks the run id and the folder;
xdist workers get both through ``workerinput``. The folder is made only for a session
that collects lab tests: a unit-test run leaves nothing behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lab import runs
from lab.config import LabConfig

if TYPE_CHECKING:
    from pytest import TestReport

#: Where run folders go unless ``--lab-run-dir`` says otherwise.
ARTIFACTS = Path("artifacts")
#: ``workerinput`` keys the controller hands its xdist workers.
RUN_ID_KEY = "lab_run_id"
RUN_DIR_KEY = "lab_run_dir"


@dataclass(frozen=True)
class RunSession:
    run_id: str
    folder: Path
    lab: str
    config: str
    state_dir: str
    default_place: bool
    """True when the folder is ``artifacts/<lab>/runs/<id>`` (then ``latest`` follows it)."""

    @property
    def evidence(self) -> Path:
        return self.folder / "evidence"

    @property
    def junit(self) -> Path:
        return self.folder / "junit.xml"


def make(cfg: LabConfig | None, run_dir: str | None, worker: dict[str, object] | None
         ) -> RunSession:
    """The session's run (from ``workerinput`` on an xdist worker, else a new id)."""
    lab = cfg.lab.name if cfg is not None else "unconfigured"
    config = str(cfg.path) if cfg is not None else "(none)"
    state_dir = str(cfg.state_dir) if cfg is not None else "(none)"
    if worker is not None and RUN_ID_KEY in worker:
        folder = Path(str(worker[RUN_DIR_KEY]))
        return RunSession(str(worker[RUN_ID_KEY]), folder, lab, config, state_dir,
                          folder.parent.name == "runs" and run_dir is None)
    run_id = runs.new_run_id()
    if run_dir is not None:
        return RunSession(run_id, Path(run_dir).resolve(), lab, config, state_dir, False)
    folder = runs.run_folder(ARTIFACTS, lab, run_id).resolve()
    return RunSession(run_id, folder, lab, config, state_dir, True)


def likely_lab_session(args: Iterable[str], lab_config_given: bool) -> bool:
    """Whether the session will probably run lab tests (decides the default JUnit path).

    With ``--lab-config``, or when an argument is or contains a ``scenarios`` folder.
    """
    if lab_config_given:
        return True
    for arg in args:
        path = Path(arg.split("::", 1)[0])
        if "scenarios" in path.parts or (path / "scenarios").is_dir() \
                or (path / "tests" / "scenarios").is_dir():
            return True
    return False


def start(session: RunSession, junit: str) -> None:
    runs.write_start(session.folder, runs.RunStart(
        run_id=session.run_id, lab=session.lab, config=session.config,
        state_dir=session.state_dir, junit=str(Path(junit).resolve()) if junit else "",
        started=time.time(), pid=os.getpid()))


def finish(session: RunSession, exit_status: int) -> None:
    """Close the run record, or remove the folder when the session ran no lab test."""
    if not session.folder.exists():
        return
    if not (session.folder / runs.COLLECTED_FILE).exists():
        _remove_own(session)
        return
    runs.write_end(session.folder, exit_status)
    if session.default_place:
        runs.link_latest(session.folder)


def _remove_own(session: RunSession) -> None:
    """Remove what this module put in the folder of a session without lab tests, and the
    folder if that leaves it empty (never anything else: ``--lab-run-dir`` may be shared)."""
    for name in (runs.RUN_FILE, session.junit.name):
        (session.folder / name).unlink(missing_ok=True)
    folders = [session.folder]
    if session.default_place:  # runs/, the lab's folder and artifacts/, if left empty
        folders += list(session.folder.parents)[:3]
    with suppress(OSError):
        for folder in folders:
            folder.rmdir()


def result_of(when: str, outcome: str) -> str | None:
    """The result a test report stands for, or None when more reports follow
    (a passed setup; a passed teardown adds nothing)."""
    if when == "call" or (when == "setup" and outcome != "passed"):
        return outcome
    if when == "teardown" and outcome == "failed":
        return "error"
    return None


class Recorder:
    """Plugin object (controller only): appends each finished lab test to the run folder."""

    def __init__(self, session: RunSession) -> None:
        self.session = session

    def pytest_runtest_logreport(self, report: TestReport) -> None:
        result = result_of(report.when, report.outcome)
        if result is not None and (self.session.folder / runs.COLLECTED_FILE).exists():
            runs.append_result(self.session.folder, report.nodeid, result)
