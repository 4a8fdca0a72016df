"""Suite progress: status files a worker writes, read back by the controller's watcher."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from lab.suite_progress import Watcher, WorkerStatus, running


def test_a_running_test_is_reported_with_its_vm_and_last_step(tmp_path: Path) -> None:
    status = WorkerStatus(tmp_path, "gw0")
    status.begin("tests/x.py::test_unload", "vm2")
    status.step("kecho loaded")
    [entry] = running(tmp_path, now=time.time() + 40)
    assert (entry.worker, entry.test, entry.vm, entry.step) == (
        "gw0", "tests/x.py::test_unload", "vm2", "kecho loaded")
    assert 39 < entry.seconds < 45 and 39 < entry.step_ago < 45
    assert entry.line().startswith("still running: tests/x.py::test_unload on vm2 for 4")
    status.end("tests/x.py::test_unload", "pass")
    assert running(tmp_path) == []
    log = (tmp_path / "gw0.log").read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in log] == [
        "tests/x.py::test_unload on vm2: started", "tests/x.py::test_unload: kecho loaded",
        "tests/x.py::test_unload: pass"]


def test_the_watcher_prints_a_line_per_running_test_every_interval(tmp_path: Path) -> None:
    WorkerStatus(tmp_path, "gw0").begin("t1", "vm1")
    WorkerStatus(tmp_path, "gw1").begin("t2", "vm2")
    lines: list[str] = []
    got_four = threading.Event()

    def write(line: str) -> None:
        lines.append(line)
        if len(lines) >= 4:
            got_four.set()

    watcher = Watcher(tmp_path, write, interval=0.2)
    watcher.start()
    try:
        assert got_four.wait(timeout=10)
    finally:
        watcher.stop()
    assert any(" t1 on vm1 " in line for line in lines)
    assert any(" t2 on vm2 " in line for line in lines)


def test_a_folder_without_status_files_reports_nothing(tmp_path: Path) -> None:
    assert running(tmp_path / "missing") == []


def test_the_watcher_skips_tests_younger_than_min_age(tmp_path: Path) -> None:
    WorkerStatus(tmp_path, "gw0").begin("young", "vm1")
    lines: list[str] = []
    watcher = Watcher(tmp_path, lines.append, interval=0.1, min_age=60.0)
    watcher.start()
    time.sleep(0.5)
    watcher.stop()
    assert lines == []
