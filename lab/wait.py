"""Waiting with a deadline: every wait names what it waits for and gives up in time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from lab.errors import DeadlineExceeded

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float,
             interval: float = 0.1, max_interval: float = 2.0,
             last_seen: Callable[[], str | None] | None = None) -> T:
    """Call ``probe`` with exponential back-off until it returns a value that is not None.

    Raises :class:`DeadlineExceeded` naming ``what`` (and what was last seen) on timeout.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        result = probe()
        if result is not None:
            return result
        now = time.monotonic()
        if now >= deadline:
            raise DeadlineExceeded(what, timeout, last_seen() if last_seen else None)
        time.sleep(min(delay, max(deadline - now, 0.01)))
        delay = min(delay * 1.5, max_interval)
