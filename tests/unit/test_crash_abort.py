"""Waits give up within a second of libvirt's crashed event instead of waiting out their
deadlines: wait_or_hang (a guest command that never returns), wait_for, wait_event; the
event is set from another thread, as the libvirt event loop thread does."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from lab.errors import CommandTimeout, DriverCrash, DriverHang
from lab.guests.base import CommandResult, wait_or_hang
from lab.wait import crash_event, crash_watch, wait_event, wait_for

LIMIT = 1.5  # seconds from the event to the DriverCrash


class NeverFinishes:
    """A RunningCommand stand-in whose command never returns (a blocked rmmod)."""

    def __init__(self) -> None:
        self.closed = False

    def finished(self) -> bool:
        return False

    def wait(self, timeout: float) -> CommandResult:
        time.sleep(timeout)
        raise CommandTimeout("vm1", "rmmod kecho", timeout)

    def close(self) -> None:
        self.closed = True


def crash_later(event: threading.Event, after: float = 0.3) -> threading.Thread:
    """Set ``event`` from another thread after ``after`` seconds (as libvirt's loop does)."""

    def later() -> None:
        time.sleep(after)
        event.set()

    thread = threading.Thread(target=later)
    thread.start()
    return thread


def seconds_to_crash(fn: Callable[[], object], event: threading.Event
                     ) -> tuple[float, DriverCrash]:
    thread = crash_later(event)
    t0 = time.monotonic()
    with pytest.raises(DriverCrash) as info:
        fn()
    took = time.monotonic() - t0
    thread.join()
    return took, info.value


def test_wait_or_hang_raises_driver_crash_soon_after_the_event() -> None:
    crashed, running = threading.Event(), NeverFinishes()
    took, err = seconds_to_crash(
        lambda: wait_or_hang(running, 60, "rmmod kecho", abort=crashed), crashed)
    assert took < LIMIT
    assert str(err) == "guest crashed (libvirt crashed event) while waiting for rmmod kecho"
    assert running.closed


def test_the_crash_watch_reaches_waits_that_were_not_given_the_event() -> None:
    crashed = threading.Event()
    with crash_watch(crashed):
        took, _ = seconds_to_crash(lambda: wait_or_hang(NeverFinishes(), 60, "rmmod"), crashed)
    assert took < LIMIT
    assert crash_event() is None  # the watch ends with its block


def test_wait_for_and_wait_event_raise_driver_crash_soon_after_the_event() -> None:
    crashed = threading.Event()
    with crash_watch(crashed):
        took, err = seconds_to_crash(
            lambda: wait_for("eth1 to vanish", lambda: None, 60, max_interval=5.0), crashed)
        assert took < LIMIT and "while waiting for eth1 to vanish" in str(err)
    crashed.clear()
    removed = threading.Event()
    took, err = seconds_to_crash(
        lambda: wait_event(removed, 60, "the removal of net1", abort=crashed), crashed)
    assert took < LIMIT and "the removal of net1" in str(err)


def test_without_a_crash_the_deadlines_and_verdicts_are_unchanged() -> None:
    calm = threading.Event()
    for abort in (calm, None):
        t0 = time.monotonic()
        with pytest.raises(DriverHang, match="rmmod kecho did not return within"):
            wait_or_hang(NeverFinishes(), 0.4, "rmmod kecho", abort=abort)
        assert 0.3 < time.monotonic() - t0 < 2.0
    assert wait_event(threading.Event(), 0.3, "nothing", abort=calm) is False
    seen = iter([None, None, "up"])
    assert wait_for("up", lambda: next(seen), 5, interval=0.01, abort=calm) == "up"


@pytest.fixture
def watched() -> Iterator[threading.Event]:
    """Like the lab_vm fixture: the test body runs inside the fixture's crash watch."""
    with crash_watch(threading.Event()) as event:
        yield event


def test_a_fixture_s_crash_watch_covers_the_test_body(watched: threading.Event) -> None:
    assert crash_event() is watched
