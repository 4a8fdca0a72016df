"""SSH to lab guests, timed: `Guest(...).run("true")` on a fresh and on a reused
connection, a local VM's and a remote VM's rounds interleaved.

Used by bench/remote/run.py while both of its labs are up (each on its own subnets). A
guest on a namespace host is reached through that host's sshd (lab/gateway.py: one
shared transport per host and process, one direct-tcpip channel per guest connection);
a local guest directly from the lab's network namespace. The same code times both: only
the inventory differs. Rounds alternate between the two (which one goes first alternates
too), so a busy moment of the machine falls on both sides alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lab import gateway as gateways
from lab.config import LabConfig
from lab.guest import Guest, GuestAddress
from lab.host import inside_lab
from lab.lab_ref import read_inventory


@dataclass
class SshTimes:
    """Seconds per round of each measurement (one entry per round)."""

    #: a new guest connection (TCP or gateway channel, SSH handshake, login) + run("true");
    #: through a gateway, its transport is already open (it is shared per process)
    fresh: list[float] = field(default_factory=list)
    #: run("true") on one open connection
    reused: list[float] = field(default_factory=list)
    #: like ``fresh``, but the gateway's own connection is closed first (so its TCP
    #: connect, handshake and login are included); equal to ``fresh`` for a local guest
    cold: list[float] = field(default_factory=list)


def _alternate(rounds: int, run: Callable[[int], object],
               into: Callable[[SshTimes], list[float]], times: tuple[SshTimes, SshTimes]
               ) -> None:
    """``rounds`` timed calls of ``run(side)`` per side, the sides alternating (and which
    goes first in a round too)."""
    for i in range(rounds):
        for side in ((0, 1) if i % 2 == 0 else (1, 0)):
            t0 = time.monotonic()
            run(side)
            into(times[side]).append(time.monotonic() - t0)


def _one_shot(addr: GuestAddress) -> None:
    with Guest(addr) as guest:
        guest.run("true")


def _cold(addr: GuestAddress) -> None:
    gateways.close()
    _one_shot(addr)


def _address(config: LabConfig, vm: str) -> GuestAddress:
    inv = read_inventory(config)
    return GuestAddress.of(inv, inv.vm(vm))


def measure(local: LabConfig, remote: LabConfig, vm: str, rounds: int
            ) -> tuple[SshTimes, SshTimes]:
    """Time SSH to ``vm`` of both (up) labs, their rounds interleaved, from inside the
    labs' network namespace (both run in the one sandbox)."""
    addrs = (_address(local, vm), _address(remote, vm))
    times = (SshTimes(), SshTimes())
    with inside_lab(local):
        try:
            for addr in addrs:
                _one_shot(addr)  # warm-up: guest's sshd caches, gateway transport opened
            _alternate(rounds, lambda side: _one_shot(addrs[side]), lambda t: t.fresh, times)
            with Guest(addrs[0]) as near, Guest(addrs[1]) as far:
                guests = (near, far)
                for guest in guests:
                    guest.run("true")
                _alternate(rounds, lambda side: guests[side].run("true"), lambda t: t.reused,
                           times)
            _alternate(rounds, lambda side: _cold(addrs[side]), lambda t: t.cold, times)
        finally:
            gateways.close()
    return times
