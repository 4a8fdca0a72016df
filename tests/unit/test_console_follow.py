"""`lab console VM --follow` on a real file: history first, then what is appended."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

from lab.console_follow import follow, tail_start


def test_tail_start_finds_the_last_lines() -> None:
    data = b"one\ntwo\nthree\nfour\n"
    assert data[tail_start(len(data), data, 2):] == b"three\nfour\n"
    assert data[tail_start(len(data), data, 10):] == data
    assert data[tail_start(len(data), data, 0):] == b""
    partial = b"one\ntwo\nthr"  # a line QEMU is still writing counts as the last one
    assert partial[tail_start(len(partial), partial, 1):] == b"thr"


def test_follow_prints_history_then_appended_bytes_until_the_deadline(tmp_path: Path) -> None:
    log = tmp_path / "vm1.log"
    log.write_bytes(b"boot 1\nboot 2\nboot 3\n")

    def writer() -> None:
        time.sleep(0.4)
        with log.open("ab") as fh:
            fh.write(b"login: \n")

    thread = threading.Thread(target=writer)
    thread.start()
    out = io.BytesIO()
    t0 = time.monotonic()
    follow(log, out, lines=2, seconds=1.2)
    elapsed = time.monotonic() - t0
    thread.join()
    assert out.getvalue() == b"boot 2\nboot 3\nlogin: \n"
    assert 1.1 <= elapsed < 3.0


def test_follow_starts_over_when_the_log_is_recreated(tmp_path: Path) -> None:
    log = tmp_path / "vm1.log"
    log.write_bytes(b"old boot, a long line\n")

    def recreate() -> None:
        time.sleep(0.4)
        log.write_bytes(b"new\n")  # truncates: the lab was brought up again

    thread = threading.Thread(target=recreate)
    thread.start()
    out = io.BytesIO()
    follow(log, out, lines=5, seconds=1.2)
    thread.join()
    assert out.getvalue() == b"old boot, a long line\nnew\n"
