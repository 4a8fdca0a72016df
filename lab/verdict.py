"""Verdicts: every failed scenario says whether the driver or the lab failed.

Decided by the error's class and by crash evidence (libvirt's crashed event, or the
guest kind's fatal line on the serial console -- a panic without pvpanic), never by
the error's text: ``driver crashed`` / ``driver hung`` / ``driver failed`` / ``lab
failed``. :func:`verdict_text` words it so that a crash is never described as the
hang or failure through which the test noticed it.
"""

from __future__ import annotations

from typing import Protocol

from lab.errors import DriverCrash, DriverFailure, DriverHang, LabError

PASS = "pass"
DRIVER_CRASHED = "driver crashed"
DRIVER_HUNG = "driver hung"
DRIVER_FAILED = "driver failed"
LAB_FAILED = "lab failed"

#: The crash cause when only libvirt said so (pvpanic / guest-panicked device).
LIBVIRT_CRASHED = "libvirt crashed event"


class ConsoleMarkers(Protocol):
    """What :func:`crash_cause` needs of a guest kind (``lab.guests.base.GuestKind``)."""

    def fatal_console_line(self, text: str) -> str | None: ...


def classify(exc: BaseException | None, crashed: bool) -> str:
    """The verdict line for a failed scenario."""
    if crashed or isinstance(exc, DriverCrash):
        return DRIVER_CRASHED
    if isinstance(exc, DriverHang):
        return DRIVER_HUNG
    if isinstance(exc, (DriverFailure, AssertionError)):
        return DRIVER_FAILED
    return LAB_FAILED


def crash_cause(libvirt_crashed: bool, console: str, kind: ConsoleMarkers) -> str | None:
    """Why the guest counts as crashed, or None when it does not.

    The kind's fatal line in the test's console slice (its panic markers: a panic with
    no pvpanic device never reaches libvirt), else :data:`LIBVIRT_CRASHED` when libvirt
    sent its crashed event.
    """
    line = kind.fatal_console_line(console)
    if line is not None:
        return line
    return LIBVIRT_CRASHED if libvirt_crashed else None


def verdict_text(verdict: str, exc: BaseException | None, cause: str | None) -> str:
    """The verdict as reports and ``verdict.txt`` show it.

    ``driver crashed: <cause>`` then ``noticed while: <the error's message>`` (a hang or
    a failed check that only followed from the crash); other verdicts as
    ``<verdict>: <message>``.
    """
    message = error_line(exc)
    if verdict != DRIVER_CRASHED:
        if not message or message.startswith(f"{verdict}:"):  # DriverHang says it already
            return message or verdict
        return f"{verdict}: {message}"
    if cause is None and isinstance(exc, DriverCrash):
        return f"{DRIVER_CRASHED}: {message}"
    text = f"{DRIVER_CRASHED}: {cause or LIBVIRT_CRASHED}"
    return text + (f"\nnoticed while: {message}" if message else "")


def error_line(exc: BaseException | None, limit: int = 500) -> str:
    """The error's message on one line (its summary for lab errors), or ''."""
    if exc is None:
        return ""
    text = exc.summary if isinstance(exc, LabError) else str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    return first[:limit]
