"""Progress lines for long work: time-stamped, thread-safe, to stderr and a log file.

On a terminal a :class:`Sink` (:mod:`lab.progress_live`) may show them instead (a live
table); the log file always gets the plain lines. ``step`` names the phase a subject
is in (define, boot, ssh, snapshot...) for such a sink; plain output ignores it."""

from __future__ import annotations

import copy
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Protocol, TextIO


class Sink(Protocol):
    """Where progress goes instead of plain lines (a live terminal view)."""

    def event(self, subject: str, message: str, elapsed: float) -> None: ...

    def step(self, subject: str, step: str) -> None: ...

    def close(self) -> None: ...


class Progress:
    """Prints ``[  12.3s] subject: message`` lines; also appends them to ``log``."""

    #: Log files this process could not write: said once, then left alone (a command may
    #: make several Progress objects on one log).
    _lost: ClassVar[set[Path]] = set()

    def __init__(self, log: Path | None = None, stream: TextIO | None = None,
                 quiet: bool = False, sink: Sink | None = None) -> None:
        self._sink = sink
        self._start = time.monotonic()
        self._lock = threading.Lock()
        self._stream = stream or sys.stderr
        self._quiet = quiet
        self._log = log
        if log is not None:
            try:
                log.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self._log_lost(exc)

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    #: the subject of a line that names none
    _default = "lab"

    def __call__(self, message: str, subject: str | None = None) -> None:
        subject = subject or self._default
        line = f"[{self.elapsed():6.1f}s] {subject}: {message}"
        with self._lock:
            if self._sink is not None:
                self._sink.event(subject, message, self.elapsed())
            elif not self._quiet:
                print(line, file=self._stream, flush=True)
            self._append(time.strftime("%Y-%m-%dT%H:%M:%S ") + line + "\n")

    def _append(self, text: str) -> None:
        """Best effort: a log file that cannot be written (a full disk) never stops the
        command; the first failure is said once, then the log is left alone."""
        if self._log is None or self._log in Progress._lost:
            return
        try:
            with self._log.open("a", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            self._log_lost(exc)

    def _log_lost(self, exc: OSError) -> None:
        if self._log is None or self._log in Progress._lost:
            return
        Progress._lost.add(self._log)
        why = exc.strerror or str(exc)
        print(f"lab: cannot write the progress log {self._log} ({why}); going on without it",
              file=sys.stderr, flush=True)

    def step(self, subject: str, step: str) -> None:
        """``subject`` entered phase ``step`` (shown by a sink only; no plain line)."""
        if self._sink is not None:
            with self._lock:
                self._sink.step(subject, step)

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def for_subject(self, subject: str) -> SubjectProgress:
        return SubjectProgress(self, subject)

    def on_host(self, host: str) -> Progress:
        """The same output (clock, lock, log, sink) whose lab-wide lines are ``host``'s:
        hosts brought up at once each say which host a line is about."""
        view = copy.copy(self)
        view._default = host
        return view


class SubjectProgress:
    """A :class:`Progress` bound to one subject (a VM name)."""

    def __init__(self, parent: Progress, subject: str) -> None:
        self._parent = parent
        self.subject = subject

    def __call__(self, message: str) -> None:
        self._parent(message, self.subject)

    def step(self, step: str) -> None:
        self._parent.step(self.subject, step)
