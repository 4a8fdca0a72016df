"""What every scenario needs: measurements, the L2 and TCP echo probes, journal marks."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any

from lab import budgets, hostagent, route_guard
from lab.errors import DeadlineExceeded, DriverFailure, LabFailure, NoCarrier, NoTraffic
from lab.guests.base import Deployment
from lab.journal import Adapter, Journal
from lab.l2probe import ProbeReply
from lab.load import LoadResult, LoadSpec, Target
from lab.naming import ECHO_PORT
from lab.plan import Nic
from lab.vm import Vm
from lab.wait import wait_for


@dataclass
class Measurements:
    """What a scenario measured (goes to the evidence folder and the summary)."""

    values: dict[str, Any] = field(default_factory=dict)
    loads: list[LoadResult] = field(default_factory=list)

    def merge(self, other: Measurements) -> Measurements:
        self.values.update(other.values)
        self.loads.extend(other.loads)
        return self


def record(vm: Vm, m: Measurements, result: LoadResult) -> None:
    """Keep a load result: in the measurements and, failing or not, in the VM's evidence."""
    m.loads.append(result)
    vm.loads.append(result)


def adapter_of(vm: Vm, nic: Nic) -> Adapter:
    """The adapter of ``nic`` as driver journals name it (by MAC, with its index)."""
    return vm.handle.adapter(nic.mac).journal_adapter


def require_inside_lab(nics: tuple[Nic, ...] | list[Nic], what: str) -> None:
    """Refuse (OutsideLab, a lab verdict) to probe or load a NIC whose traffic would not
    stay on its lab bridge in this namespace (see :mod:`lab.route_guard`). A VM on
    another host is probed by that host's agent, on that host's own bridges."""
    if hostagent.current().host != "local":
        return
    for nic in nics:
        route_guard.require_nic_route(nic, f"{what} {nic.alias} ({nic.address})")


def probe(bridge: str, mac: str, timeout: float = 2.0) -> ProbeReply | None:
    """The host-side L2 echo of the test's VM host (:func:`lab.hostagent.current`)."""
    return hostagent.current().l2_probe(bridge, mac, timeout)


def require_probe(nic: Nic, what: str) -> float:
    require_inside_lab([nic], "L2 probe of")
    reply = probe(nic.bridge, nic.mac)
    if reply is None:
        raise DriverFailure(f"labtdi: no L2 echo from {nic.alias} ({nic.mac}) {what}")
    return reply.rtt_s


def guest_carrier(vm: Vm, nic: Nic) -> bool | None:
    """The guest OS's own view of ``nic``'s link (never the driver under test's); None
    when this guest kind cannot tell or the guest does not list the adapter now."""
    try:
        return vm.handle.carrier_of(vm.handle.adapter(nic.mac))
    except LabFailure:
        return None


def await_probe(nic: Nic, state: str, vm: Vm | None = None) -> float:
    """Wait until the L2 echo answers on ``nic`` again: a driver verdict when it never
    does within L2_ECHO. With ``vm`` only the time the adapter has its link counts: after
    each unanswered probe the guest itself (not the driver under test) is asked for the
    adapter's carrier; while it has none (the NIC model renegotiating, e.g. an e1000e
    after a wake) the budget starts over, for up to LINK_BACK per loss
    (:class:`NoCarrier`, a lab failure, when the link does not come back). When the
    budget runs out on a guest whose kernel resets closed ports, a NIC that passes no IP
    at all either is :class:`NoTraffic` (a lab failure: the NIC passes nothing)."""
    require_inside_lab([nic], "L2 probe of")
    what = f"L2 echo from the {state} {nic.alias} ({nic.mac})"
    if vm is None:
        return budgets.L2_ECHO.wait(
            what, lambda: r.rtt_s if (r := probe(nic.bridge, nic.mac)) else None)
    echo = _EchoWithLink(vm, nic, what)
    cap = 2 * budgets.L2_ECHO.seconds + budgets.LINK_BACK.seconds + 10.0
    try:
        return wait_for(what, echo, cap)
    except DeadlineExceeded as exc:  # the link came and went again and again
        raise NoCarrier(f"{exc.summary}: {nic.model} ({nic.alias}) kept losing its link "
                        "in the guest's own view", hint=_CARRIER_HINT) from None


_CARRIER_HINT = "see the guest's kernel log (link up/down lines)"
_LINK_TEXT = {True: "carrier", False: "no carrier", None: "not known (the guest does not "
              "list the adapter, or its kind cannot tell)"}


@dataclass
class _EchoWithLink:
    """One L2 probe per call; the L2_ECHO budget runs only while the guest reports
    carrier on the NIC (or cannot tell)."""

    vm: Vm
    nic: Nic
    what: str
    deadline: float = field(default_factory=lambda: time.monotonic() + budgets.L2_ECHO.seconds)
    lost_at: float | None = None

    def __call__(self) -> float | None:
        if (reply := probe(self.nic.bridge, self.nic.mac)) is not None:
            return reply.rtt_s
        carrier = guest_carrier(self.vm, self.nic)
        now = time.monotonic()
        if carrier is False:
            self._no_link(now)
        elif self.lost_at is not None:
            self.lost_at = None
            self.deadline = now + budgets.L2_ECHO.seconds
            self.vm.timeline.add(f"{self.nic.alias} has carrier again: its L2_ECHO budget "
                                 "runs from now")
        if now >= self.deadline:
            if (self.vm.handle.resets_closed_ports
                    and not hostagent.current().carries_ip(self.nic.address)):
                raise NoTraffic(f"{self.nic.model} ({self.nic.alias}): no {self.what} and no "
                                "IP through it either (not even the guest kernel's reset on "
                                "a closed port) while the guest reports its link "
                                f"{_LINK_TEXT[carrier]}: the NIC passes nothing, so its L2 "
                                "echo tests nothing of the transport", hint=_CARRIER_HINT)
            raise DriverFailure(f"no {self.what} within {budgets.L2_ECHO.seconds:.0f}s with "
                                f"its link up (budget: {budgets.L2_ECHO.what}); the guest's "
                                f"own view of the link: {_LINK_TEXT[carrier]}")
        return None

    def _no_link(self, now: float) -> None:
        if self.lost_at is None:
            self.lost_at = now
            self.vm.timeline.add(f"no L2 echo from {self.nic.alias} and the guest reports "
                                 "no carrier on it: waiting for its link (LINK_BACK)")
        elif now - self.lost_at > budgets.LINK_BACK.seconds:
            raise NoCarrier(f"{self.nic.model} ({self.nic.alias}): the guest's own adapter "
                            f"has had no carrier for {budgets.LINK_BACK.seconds:.0f}s: the "
                            "NIC model's link, not the transport, so its L2 echo tests "
                            "nothing", hint=_CARRIER_HINT)
        self.deadline = now + budgets.L2_ECHO.seconds


def echo_once(nic: Nic, payload: bytes = b"driver-lab echo probe\n") -> None:
    """One TCP echo round trip to the echo driver on ``nic`` within the FIRST_ECHO budget
    (from the VM's host: through its agent when that is another host)."""
    require_inside_lab([nic], "TCP echo to")
    if hostagent.current().host != "local":
        _echo_remote(nic, len(payload))
        return
    try:
        with socket.create_connection((nic.address, ECHO_PORT),
                                      timeout=budgets.FIRST_ECHO.seconds) as sock:
            sock.sendall(payload)
            got = b""
            while len(got) < len(payload):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                got += chunk
    except OSError as exc:
        raise DriverFailure(f"echo driver: no echo on {nic.alias} {nic.address}: {exc}") from exc
    if got != payload:
        raise DriverFailure(f"echo driver: echo on {nic.alias} returned {got!r}, sent {payload!r}")


def _echo_remote(nic: Nic, size: int) -> None:
    spec = LoadSpec(targets=(Target(nic.address, ECHO_PORT),), connections=1, duration=None,
                    bytes_per_connection=size, connect_timeout=budgets.FIRST_ECHO.seconds,
                    stall_timeout=budgets.FIRST_ECHO.seconds, progress=False)
    result = hostagent.current().run_load(spec)
    if result.errors or result.bytes_echoed < size:
        why = result.errors[0] if result.errors else f"{result.bytes_echoed} of {size} bytes"
        raise DriverFailure(f"echo driver: no echo on {nic.alias} {nic.address}: {why}")


def journal_mark(dep: Deployment | None) -> int:
    """The newest timestamp in ``dep``'s journal (events after it belong to what follows)."""
    if dep is None:
        return 0
    return max((e.t_ns for e in dep.journal()), default=0)


def events_since(dep: Deployment, mac: str, after_ns: int) -> Journal:
    """``dep``'s events for the adapter with ``mac`` (any ifindex: a replugged or rescanned
    adapter comes back with a new one) newer than ``after_ns``."""
    return Journal(tuple(e for e in dep.journal() if e.t_ns > after_ns
                         and e.adapter is not None and e.adapter.mac == mac))


def other_adapters(vm: Vm, nics: tuple[Nic, ...], nic: Nic
                   ) -> tuple[tuple[Nic, ...], dict[str, Adapter]]:
    """The test NICs of ``nics`` other than ``nic``, and their adapters as journals name
    them now (to check afterwards that an action on ``nic`` left them alone)."""
    others = tuple(n for n in nics if n.alias != nic.alias)
    return others, {o.mac: adapter_of(vm, o) for o in others}


def wait_bound(tdi: Deployment, nic: Nic, after_ns: int, how: str) -> None:
    """The transport journals BIND for ``nic`` after ``after_ns`` within the BIND budget."""
    def bound() -> bool | None:
        return True if "BIND" in events_since(tdi, nic.mac, after_ns).names() else None
    budgets.BIND.wait(f"{tdi.module} to bind the {how} {nic.alias} ({nic.mac})", bound)
