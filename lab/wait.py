"""Waiting with a deadline: every wait names what it waits for and gives up in time.

A wait also gives up early when the guest crashed: inside ``with crash_watch(event)``
(the ``lab_vm`` fixture wraps each test in one, with ``Vm.crash_seen``, which its
libvirt lifecycle watcher sets on the crashed event), or given ``abort=event``,
:func:`wait_for`, :func:`wait_event`, :func:`pause` and ``wait_or_hang`` raise
:class:`~lab.errors.DriverCrash` within :data:`CRASH_POLL` seconds of the event
instead of waiting out a deadline that can no longer be met. The watch is per
thread of control (a context variable): threads a test starts pass ``abort=``.

The event may be an :class:`Abort` tripped with another reason than a crash (libvirtd
went away, the VM paused on a disk error): the waits then raise that reason's error,
a lab failure, so the driver is not blamed for a wait the lab itself cut short.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from lab.errors import DeadlineExceeded, DriverCrash, LabError

T = TypeVar("T")


class Abort(threading.Event):
    """An event that also says why the waits on it stop (the first reason wins).

    ``set()`` alone means the guest crashed; :meth:`trip` gives another reason.
    """

    def __init__(self) -> None:
        super().__init__()
        self._reason: Callable[[str], LabError] | None = None

    def trip(self, reason: Callable[[str], LabError]) -> None:
        """Stop the waits with ``reason(what they waited for)``."""
        if not self.is_set() and self._reason is None:
            self._reason = reason
        self.set()

    def error(self, what: str) -> LabError:
        return self._reason(what) if self._reason is not None else _crashed(what)

#: Longest a wait goes without looking at the crash event (sleeps wake at once).
CRASH_POLL = 0.25

_CRASH_SEEN: ContextVar[threading.Event | None] = ContextVar("lab_crash_seen", default=None)


@contextmanager
def crash_watch(event: threading.Event) -> Iterator[threading.Event]:
    """Within this block (this thread), waits abort with DriverCrash once ``event`` is set."""
    previous = _CRASH_SEEN.get()
    _CRASH_SEEN.set(event)
    try:
        yield event
    finally:  # set, not reset: a fixture's teardown may run in another context
        _CRASH_SEEN.set(previous)


def crash_event(abort: threading.Event | None = None) -> threading.Event | None:
    """``abort`` if given, else the event of the enclosing :func:`crash_watch`, if any."""
    return abort if abort is not None else _CRASH_SEEN.get()


def _crashed(what: str) -> DriverCrash:
    return DriverCrash(f"guest crashed (libvirt crashed event) while waiting for {what}")


def crash_error(what: str, event: threading.Event | None = None) -> LabError:
    """The error a wait for ``what`` raises once ``event`` (else the enclosing watch's)
    is set: its :class:`Abort` reason, else :class:`~lab.errors.DriverCrash`."""
    event = crash_event(event)
    return event.error(what) if isinstance(event, Abort) else _crashed(what)


def pause(seconds: float, what: str, abort: threading.Event | None = None) -> None:
    """Sleep ``seconds``; raises DriverCrash at once if the guest crashes meanwhile."""
    event = crash_event(abort)
    if event is None:
        time.sleep(seconds)
    elif event.wait(seconds):
        raise crash_error(what, event)


def wait_event(event: threading.Event, timeout: float, what: str,
               abort: threading.Event | None = None) -> bool:
    """``event.wait(timeout)`` that raises DriverCrash once the guest crashed."""
    crash = crash_event(abort)
    if crash is None:
        return event.wait(timeout)
    deadline = time.monotonic() + timeout
    while not event.is_set():
        if crash.is_set():
            raise crash_error(what, crash)
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        event.wait(min(CRASH_POLL, left))
    return True


def wait_for(what: str, probe: Callable[[], T | None], timeout: float,
             interval: float = 0.1, max_interval: float = 2.0,
             last_seen: Callable[[], str | None] | None = None,
             abort: threading.Event | None = None) -> T:
    """Call ``probe`` with exponential back-off until it returns a value that is not None.

    Raises :class:`DeadlineExceeded` naming ``what`` (and what was last seen) on timeout,
    :class:`DriverCrash` as soon as the guest crashed (see the module docstring).
    """
    crash = crash_event(abort)
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        if crash is not None and crash.is_set():
            raise crash_error(what, crash)
        result = probe()
        if result is not None:
            return result
        now = time.monotonic()
        if now >= deadline:
            raise DeadlineExceeded(what, timeout, last_seen() if last_seen else None)
        pause(min(delay, max(deadline - now, 0.01)), what, crash)
        delay = min(delay * 1.5, max_interval)
