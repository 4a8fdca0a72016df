"""The L2 echo oracle counts only the time the adapter has its link (lab.scenarios.common).

An e1000e renegotiates its link after a wake, a reset or a replug, under a busy TCG
host for longer than the transport's L2_ECHO budget now and then; a NIC without link
cannot carry the echo, so that time is the NIC model's, not the driver's. Here, for
real: a network namespace of this module's own (``dlcarr``) with a lab bridge and one
end of a veth pair, the other end in a "guest" namespace (``dlcarg``) with the guest's
address (its kernel resets a connection to a closed port). That end is read by the
micro guest's own handle code (``LinuxMicroHandle``: its adapter listing and
``/sys/class/net/<if>/carrier``) through a shell into that namespace; an L2 echo
responder on it stands in for the transport
(stopped with SIGSTOP: a transport that stopped answering). The link goes down when
the bridge's end of the pair is set down; a stopped responder on an adapter without its
address stands in for a NIC that passes nothing. Budgets and the wait of one probe are
shortened for the test.

The oracle must catch a silent transport with the link up, and after the link came
back; it must pass a healthy transport whose link comes back later than L2_ECHO; a link
that never comes back (NoCarrier) or a NIC that passes nothing at all (NoTraffic) is a
lab failure, never a driver verdict.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from labtier import L2_RESPONDER, REPO, require_lab_host

from lab import budgets, netns
from lab.budgets import Budget
from lab.errors import CommandTimeout, DriverFailure, LabFailure, NoCarrier, NoTraffic
from lab.guests.base import CommandResult, RunningCommand
from lab.guests.linux_micro import LinuxMicroHandle
from lab.plan import Nic
from lab.scenarios import common
from lab.scenarios.common import await_probe
from lab.vm import Timeline, Vm

NS, GUEST_NS = "dlcarr", "dlcarg"
BRIDGE, PORT_IF, GUEST_IF = "dlcar-t0", "dlcarp0", "dlcarg0"
GUEST_MAC = "02:00:5e:10:21:30"
#: the bridge's address and the "guest's" (routed through the bridge; not assigned)
BRIDGE_ADDR, GUEST_ADDR = "192.168.203.1", "192.168.203.2"
L2_ECHO_S, LINK_BACK_S = 1.5, 3.0
#: how long one unanswered L2 probe waits here (the lab's: 2 s)
PROBE_WAIT_S = 0.5


class NamespaceShell:
    """The :class:`lab.guests.base.Shell` of the micro guest's handle, into the test's
    namespace with ``ip netns exec`` (real commands, real sysfs; only ``run`` is used)."""

    name = "carrier-ns"

    def run(self, command: str, timeout: float = 60.0, check: bool = True) -> CommandResult:
        try:
            res = subprocess.run(["ip", "netns", "exec", GUEST_NS, "sh", "-c", command],
                                 capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise CommandTimeout(self.name, command, timeout) from None
        assert not check or res.returncode == 0, res.stderr
        return CommandResult(command, res.returncode, res.stdout, res.stderr)

    def start(self, command: str) -> RunningCommand:
        raise NotImplementedError("not used by the carrier reads")

    def put(self, local: Path, remote: str) -> None:
        raise NotImplementedError("not used by the carrier reads")

    def get(self, remote: str, local: Path) -> None:
        raise NotImplementedError("not used by the carrier reads")

    def close(self) -> None:
        pass


@dataclass
class GuestStandIn:
    """What ``await_probe`` uses of a :class:`lab.vm.Vm`: its guest handle (the micro
    guest's real one, on the namespace) and its timeline."""

    handle: LinuxMicroHandle
    timeline: Timeline


@dataclass
class Rig:
    nic: Nic
    vm: Vm
    responder: subprocess.Popen[str]

    def link(self, up: bool) -> None:
        netns.ip("-n", NS, "link", "set", PORT_IF, "up" if up else "down")

    def link_back_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.link, args=(True,))
        timer.start()
        return timer

    def nic_passes_nothing(self) -> None:
        """Nothing the host sends gets an answer through the guest's adapter (no L2 echo,
        no ARP reply, so no reset from a closed port either); its carrier stays up."""
        self.transport(answers=False)
        netns.ip("-n", GUEST_NS, "addr", "flush", "dev", GUEST_IF)

    def transport(self, answers: bool) -> None:
        self.responder.send_signal(signal.SIGCONT if answers else signal.SIGSTOP)


def _build() -> subprocess.Popen[str]:
    """The host's namespace (bridge, one end of the pair) and the guest's (the other end
    with the guest's address: its kernel resets a connection to a closed port)."""
    for ns in (NS, GUEST_NS):
        netns.delete(ns)  # left by a killed run
        netns.create(ns)
    netns.ip("-n", NS, "link", "add", BRIDGE, "type", "bridge")
    netns.ip("-n", NS, "addr", "add", f"{BRIDGE_ADDR}/24", "dev", BRIDGE)
    netns.ip("-n", NS, "link", "add", PORT_IF, "type", "veth", "peer", "name", GUEST_IF,
             "netns", GUEST_NS)
    netns.ip("-n", NS, "link", "set", PORT_IF, "master", BRIDGE)
    netns.ip("-n", GUEST_NS, "link", "set", GUEST_IF, "address", GUEST_MAC)
    netns.ip("-n", GUEST_NS, "addr", "add", f"{GUEST_ADDR}/24", "dev", GUEST_IF)
    for ns, dev in ((NS, BRIDGE), (NS, PORT_IF), (GUEST_NS, GUEST_IF)):
        netns.ip("-n", ns, "link", "set", dev, "up")
    proc = subprocess.Popen(["ip", "netns", "exec", GUEST_NS, sys.executable, "-c",
                             L2_RESPONDER, GUEST_IF, str(REPO)], text=True,
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    require_lab_host()
    real_probe = common.probe
    monkeypatch.setattr(common, "probe", lambda bridge, mac, timeout=PROBE_WAIT_S:
                        real_probe(bridge, mac, timeout))
    monkeypatch.setattr(budgets, "L2_ECHO", Budget(L2_ECHO_S, "driver", budgets.L2_ECHO.what))
    monkeypatch.setattr(budgets, "LINK_BACK", Budget(LINK_BACK_S, "lab",
                                                     budgets.LINK_BACK.what))
    responder = _build()
    nic = Nic(alias="ua-test0", role="test", mac=GUEST_MAC, model="e1000e",
              network="dlcar-test0", bridge=BRIDGE, address=GUEST_ADDR, prefix=24)
    guest = GuestStandIn(LinuxMicroHandle(NamespaceShell()), Timeline())
    try:
        with netns.inside(NS):
            yield Rig(nic, cast(Vm, guest), responder)
    finally:
        responder.send_signal(signal.SIGCONT)
        responder.kill()
        responder.wait(timeout=10)
        netns.delete(NS)
        netns.delete(GUEST_NS)


def test_a_link_back_later_than_the_echo_budget_passes(rig: Rig) -> None:
    """Healthy but slow: the link is down for longer than L2_ECHO, the transport answers
    as soon as it is back: no verdict against the driver, the timeline says why it
    waited. The same without the guest's view (no ``vm``) blames the driver: the
    control that shows the carrier read is what tells the two apart."""
    rig.link(False)
    timer = rig.link_back_after(L2_ECHO_S + 1.5)
    t0 = time.monotonic()
    rtt = await_probe(rig.nic, "woken", rig.vm)
    timer.join()
    assert 0 < rtt < 2.0 and time.monotonic() - t0 > L2_ECHO_S + 1.5
    assert any("no carrier" in what for _, what in rig.vm.timeline.events)
    rig.link(False)
    timer = rig.link_back_after(L2_ECHO_S + 1.5)
    with pytest.raises(DriverFailure):
        await_probe(rig.nic, "woken")
    timer.join()


def test_a_silent_transport_with_its_link_up_is_a_driver_failure(rig: Rig) -> None:
    """The bug: the link is up (the guest says so), the transport does not answer."""
    assert await_probe(rig.nic, "woken", rig.vm) > 0  # the rig answers while it runs
    rig.transport(answers=False)
    with pytest.raises(DriverFailure) as info:
        await_probe(rig.nic, "woken", rig.vm)
    assert not isinstance(info.value, NoCarrier)
    assert "with its link up" in info.value.summary
    assert info.value.summary.endswith("the guest's own view of the link: carrier")


def test_a_silent_transport_is_caught_after_its_link_came_back(rig: Rig) -> None:
    """The link was down for longer than L2_ECHO, came back, and the transport still
    does not answer: a driver failure after a whole L2_ECHO budget with the link up."""
    rig.transport(answers=False)
    rig.link(False)
    timer = rig.link_back_after(L2_ECHO_S + 1.0)
    t0 = time.monotonic()
    with pytest.raises(DriverFailure) as info:
        await_probe(rig.nic, "woken", rig.vm)
    timer.join()
    assert time.monotonic() - t0 > 2 * L2_ECHO_S + 1.0
    assert info.value.summary.endswith("link: carrier")
    assert any("has carrier again" in what for _, what in rig.vm.timeline.events)


def test_a_nic_that_passes_nothing_is_a_lab_failure(rig: Rig) -> None:
    """Carrier up, but not even the guest kernel answers through the NIC (no reset from
    a closed port): NoTraffic, the NIC's failure, not the transport's."""
    rig.nic_passes_nothing()
    with pytest.raises(NoTraffic) as info:
        await_probe(rig.nic, "woken", rig.vm)
    assert "no IP through it either" in info.value.summary
    assert info.value.summary.count("carrier") == 1  # "its link carrier"


def test_a_link_that_never_comes_back_is_a_lab_failure(rig: Rig) -> None:
    """No carrier for L2_ECHO + LINK_BACK: the NIC model's link, NoCarrier (a lab
    failure), never a driver verdict."""
    rig.link(False)
    with pytest.raises(NoCarrier) as info:
        await_probe(rig.nic, "woken", rig.vm)
    assert isinstance(info.value, LabFailure) and not isinstance(info.value, DriverFailure)
    assert "e1000e (ua-test0)" in info.value.summary


def test_the_evidence_shows_the_guests_link_and_counters(rig: Rig) -> None:
    """A failure's network.txt (lab.evidence): the guest's own adapter listing with its
    carrier, and each interface's packet counters, read by the micro guest's handle code.
    The counters move with the probes: they tell a frame that never arrived from a
    reply that was never sent."""
    def state() -> dict[str, list[str]]:
        lines: dict[str, list[str]] = {}  # per interface: its listing, then its counters
        for line in rig.vm.handle.network_state().splitlines():
            if line:
                lines.setdefault(line.split()[0], []).extend(line.split())
        return lines

    before = state()
    assert before[GUEST_IF][:6] == [GUEST_IF, GUEST_MAC, "ifindex", before[GUEST_IF][3],
                                    "carrier", "1"]
    for _ in range(3):
        assert await_probe(rig.nic, "woken", rig.vm) > 0
    after = state()
    rx = after[GUEST_IF].index("rx_packets") + 1
    assert int(after[GUEST_IF][rx]) >= int(before[GUEST_IF][rx]) + 3
    rig.link(False)
    assert state()[GUEST_IF][4:6] == ["carrier", "0"]
