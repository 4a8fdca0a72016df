"""The console keeper's file handling and process life cycle, without a VM.

The process tests run the real keeper against libvirt's built-in test driver
(``test:///default``: no daemon, its consoles cannot be opened), so it keeps retrying
until stopped; the lab tier (tests/lab/test_console_keeper.py) mirrors a real console.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from lab import console_keeper
from lab.console_keeper import ConsoleFile, bounded
from lab.errors import LabFailure


def test_a_console_file_appends_and_marks_on_a_line_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "consoles" / "vm1.log"
    path.parent.mkdir()
    path.write_bytes(b"old output, no newline")
    path.chmod(0o644)
    out = ConsoleFile(path)
    out.note("attached now (stream)")
    out.write(b"boot\r\npartial")
    out.note("detached later (end of stream)")
    out.close()
    assert path.read_bytes() == (b"old output, no newline\n[lab console keeper: attached now "
                                 b"(stream)]\nboot\r\npartial\n[lab console keeper: detached "
                                 b"later (end of stream)]\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_console_file_removed_under_the_keeper_is_written_again(tmp_path: Path) -> None:
    path = tmp_path / "vm1.log"
    out = ConsoleFile(path)
    out.write(b"first\n")
    path.unlink()
    out.reopen_if_replaced()
    out.write(b"second\n")
    out.close()
    assert path.read_bytes() == b"second\n"


def test_bounded_gives_up_on_a_stuck_call() -> None:
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="stuck: no answer within 0s"):
        bounded("stuck", lambda: time.sleep(5), 0.2)
    assert time.monotonic() - t0 < 1.0
    assert bounded("quick", lambda: 42, 1.0) == 42
    with pytest.raises(ZeroDivisionError):
        bounded("failing", lambda: 1 // 0, 1.0)


def test_bounded_hands_a_late_result_over_and_stops_waiting_on_abort() -> None:
    late: list[str] = []
    released = threading.Event()

    def slow() -> str:
        time.sleep(0.5)
        return "stream"

    def release(value: str) -> None:
        late.append(value)
        released.set()

    with pytest.raises(TimeoutError):
        bounded("slow", slow, 0.1, on_late=release)
    assert released.wait(5) and late == ["stream"]
    stop = threading.Event()
    stop.set()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        bounded("stopped", lambda: time.sleep(5), 30, abort=stop)
    assert time.monotonic() - t0 < 1.0


def _wait_for_log(state: Path, text: bytes, count: int = 1) -> bytes:
    log = state / "logs" / "console-keeper.log"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        data = log.read_bytes() if log.exists() else b""
        if data.count(text) >= count:
            return data
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not {count} times in {log}:\n{data.decode()}")


def test_start_and_stop_the_keeper_process(tmp_path: Path) -> None:
    one = {"test": tmp_path / "consoles" / "test.log"}
    pid = console_keeper.start(tmp_path, "test:///default", one)
    try:
        console_keeper.confirm(tmp_path)  # it runs: no error
        assert console_keeper.running(tmp_path) == pid
        assert (tmp_path / "console-keeper.pid").read_text() == f"{pid}\n"
        _wait_for_log(tmp_path, b"console not open")
        time.sleep(1.0)  # several retries: the same error is logged once
        assert _wait_for_log(tmp_path, b"console not open").count(b"console not open") == 1
        assert console_keeper.start(tmp_path, "test:///default", one) == pid  # unchanged
        two = {**one, "other": tmp_path / "consoles" / "other.log"}
        assert console_keeper.start(tmp_path, "test:///default", two) == pid  # taken over
        assert console_keeper.read_spec(tmp_path) == {
            "test:///default": {d: str(f) for d, f in two.items()}}
        _wait_for_log(tmp_path, b"other: console not open")
        assert _wait_for_log(tmp_path, b"keeping test:///default").count(b"keeping ") == 2
    finally:
        assert console_keeper.stop(tmp_path) is True
    assert console_keeper.running(tmp_path) is None
    assert not (tmp_path / "console-keeper.pid").exists()
    assert not (tmp_path / "console-keeper.json").exists()
    assert not Path(f"/proc/{pid}").exists()
    assert b"keeper exits" in (tmp_path / "logs" / "console-keeper.log").read_bytes()


def test_a_keeper_that_exits_at_once_is_one_lab_failure_when_confirmed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """start() does not wait; confirm() (before the VMs start) names the exit code and
    the keeper's log, and forgets the pid file."""
    monkeypatch.setattr(console_keeper, "command", lambda _state: [
        sys.executable, "-c", "import sys; sys.stderr.write('no libvirt here\\n'); sys.exit(3)"])
    t0 = time.monotonic()
    console_keeper.start(tmp_path, "test:///default", {"test": tmp_path / "test.log"})
    assert time.monotonic() - t0 < 0.25  # the launch itself does not wait
    with pytest.raises(LabFailure) as failed:
        console_keeper.confirm(tmp_path)
    assert "exited at once (exit code 3)" in str(failed.value)
    assert str(tmp_path / "logs" / "console-keeper.log") in (failed.value.hint or "")
    assert b"no libvirt here" in (tmp_path / "logs" / "console-keeper.log").read_bytes()
    assert not (tmp_path / "console-keeper.pid").exists()
    console_keeper.confirm(tmp_path)  # confirmed once: nothing left to check


def test_a_pid_file_naming_another_process_is_not_a_keeper(tmp_path: Path) -> None:
    (tmp_path / "console-keeper.pid").write_text(f"{os.getpid()}\n")
    assert console_keeper.running(tmp_path) is None
    assert console_keeper.stop(tmp_path) is False  # and this process is still here
    assert not (tmp_path / "console-keeper.pid").exists()
