"""SSH to a lab guest, timed: `Guest(...).run("true")` on a fresh and on a reused connection.

Used by bench/remote/run.py while one of its labs is up. A guest on a namespace host is
reached through that host's sshd (lab/gateway.py: one shared transport per host and
process, one direct-tcpip channel per guest connection); a local guest directly from the
lab's network namespace. The same code times both: only the inventory differs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from lab import gateway as gateways
from lab.config import LabConfig
from lab.guest import Guest, GuestAddress
from lab.host import inside_lab
from lab.lab_ref import read_inventory


@dataclass(frozen=True)
class SshTimes:
    """Seconds per round of each measurement (one entry per round)."""

    #: a new guest connection (TCP or gateway channel, SSH handshake, login) + run("true");
    #: through a gateway, its transport is already open (it is shared per process)
    fresh: list[float]
    #: run("true") on one open connection
    reused: list[float]
    #: like ``fresh``, but the gateway's own connection is closed first (so its TCP
    #: connect, handshake and login are included); equal to ``fresh`` for a local guest
    cold: list[float]


def _timed(fn: Callable[[], object], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        t0 = time.monotonic()
        fn()
        times.append(time.monotonic() - t0)
    return times


def _one_shot(addr: GuestAddress) -> None:
    with Guest(addr) as guest:
        guest.run("true")


def _cold(addr: GuestAddress) -> None:
    gateways.close()
    _one_shot(addr)


def measure(config: LabConfig, vm: str, rounds: int) -> SshTimes:
    """Time SSH to ``vm`` of the (up) lab ``config`` from inside the lab's namespace."""
    inv = read_inventory(config)
    addr = GuestAddress.of(inv, inv.vm(vm))
    with inside_lab(config):
        try:
            _one_shot(addr)  # warm-up: guest's sshd caches, gateway transport opened
            fresh = _timed(lambda: _one_shot(addr), rounds)
            with Guest(addr) as guest:
                guest.run("true")
                reused = _timed(lambda: guest.run("true"), rounds)
            cold = _timed(lambda: _cold(addr), rounds)
        finally:
            gateways.close()
    return SshTimes(fresh=fresh, reused=reused, cold=cold)
