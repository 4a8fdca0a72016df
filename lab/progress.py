"""Progress lines for long work: time-stamped, thread-safe, to stderr and a log file."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import TextIO


class Progress:
    """Prints ``[  12.3s] subject: message`` lines; also appends them to ``log``."""

    def __init__(self, log: Path | None = None, stream: TextIO | None = None,
                 quiet: bool = False) -> None:
        self._start = time.monotonic()
        self._lock = threading.Lock()
        self._stream = stream or sys.stderr
        self._quiet = quiet
        self._log = log
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def __call__(self, message: str, subject: str = "lab") -> None:
        line = f"[{self.elapsed():6.1f}s] {subject}: {message}"
        with self._lock:
            if not self._quiet:
                print(line, file=self._stream, flush=True)
            if self._log is not None:
                with self._log.open("a", encoding="utf-8") as fh:
                    fh.write(time.strftime("%Y-%m-%dT%H:%M:%S ") + line + "\n")

    def for_subject(self, subject: str) -> SubjectProgress:
        return SubjectProgress(self, subject)


class SubjectProgress:
    """A :class:`Progress` bound to one subject (a VM name)."""

    def __init__(self, parent: Progress, subject: str) -> None:
        self._parent = parent
        self.subject = subject

    def __call__(self, message: str) -> None:
        self._parent(message, self.subject)
