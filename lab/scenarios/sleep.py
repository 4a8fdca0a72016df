"""Sleep and resume with the drivers loaded and connections open.

The guest suspends to RAM (itself, or through its guest agent) and libvirt wakes it.
The transport journals the set-power to a low state before the sleep and back to full
power after the wake for every bound adapter (Windows ``NetEventSetPower``; the Linux
twin's PM notifier): its binding survives the sleep, or was torn down in the removal
order and bound again. After the wake the L2 and TCP echo answer on every test NIC,
and every connection opened before the sleep either still echoes intact or ends with
a clean reset or close -- never a corrupt byte, never a hang.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from lab import budgets, hostagent
from lab.errors import DeadlineExceeded, DriverFailure, LabFailure, NicModelDown
from lab.guests.base import Deployment
from lab.hostagent import Clients
from lab.journal import BIND_ORDER, REMOVAL_ORDER, Journal
from lab.naming import ECHO_PORT
from lab.plan import Nic
from lab.scenarios.common import (
    Measurements,
    await_probe,
    echo_once,
    events_since,
    journal_mark,
    require_inside_lab,
    require_probe,
)
from lab.vm import Vm
from lab.wait import wait_for

#: how long the guest stays asleep before the lab wakes it
SLEEP_HOLD_S = 3.0
#: connections opened per test NIC before the sleep
OPEN_PER_NIC = 2
LOW, ON = "SET_POWER_LOW", "SET_POWER_ON"
TEARDOWN = frozenset(REMOVAL_ORDER)

Outcome = Literal["kept", "rebound"]


def power_outcome(journal: Journal, module: str, nic: Nic) -> Outcome | None:
    """How ``nic``'s binding went through the sleep, from its journal since before it:
    "kept" (SET_POWER_LOW, then SET_POWER_ON, nothing torn down), "rebound" (torn down
    in the removal order after SET_POWER_LOW, then BIND and the registrations), None
    while neither is complete. A broken order is a DriverFailure."""
    names = [e.name for e in journal]
    if LOW not in names:
        if ON in names or any(n in TEARDOWN for n in names):
            raise DriverFailure(f"{module}: {nic.alias} saw {' '.join(names)} around the sleep "
                                f"without {LOW} first (the set-power to a low state)")
        return None
    after = names[names.index(LOW) + 1:]
    torn = [n for n in after if n in TEARDOWN]
    if not torn:
        return "kept" if ON in after else None
    if torn[:len(REMOVAL_ORDER)] != list(REMOVAL_ORDER)[:len(torn)]:
        raise DriverFailure(f"{module}: the sleep tore the binding to {nic.alias} down out of "
                            f"order: got {' '.join(torn)}, expected {' '.join(REMOVAL_ORDER)}",
                            hint="a binding released for the sleep is a removal: forward "
                                 "the query first")
    last = len(after) - 1 - after[::-1].index(torn[-1])
    up = [n for n in after[last + 1:] if n in BIND_ORDER][:3]
    return "rebound" if up and up[0] == "BIND" and set(up) == set(BIND_ORDER) else None


def wait_power_events(tdi: Deployment, nic: Nic, mark: int) -> Outcome:
    """The binding of ``nic`` settles as kept or rebound within the POWER_STATE budget
    (a driver budget: running out of it is a driver failure naming what was journaled)."""
    def settled() -> Outcome | None:
        return power_outcome(events_since(tdi, nic.mac, mark), tdi.module, nic)
    try:
        return wait_for(f"{tdi.module} to journal {nic.alias}'s power events", settled,
                        budgets.POWER_STATE.seconds)
    except DeadlineExceeded as exc:
        names = " ".join(events_since(tdi, nic.mac, mark).names()) or "nothing"
        raise DriverFailure(f"{tdi.module}: the binding to {nic.alias} neither survived the "
                            f"sleep ({LOW} then {ON}) nor was bound again after it: journaled "
                            f"{names}") from exc


@dataclass(frozen=True)
class OpenConnections:
    """Echo connections opened before the sleep, held on the VM's host, and the NIC
    each one goes through."""

    clients: Clients
    nics: tuple[Nic, ...]


def open_connections(nics: tuple[Nic, ...]) -> OpenConnections:
    """``OPEN_PER_NIC`` echo connections per NIC, each with one echo round trip done."""
    require_inside_lab(nics, "TCP echo to")
    per = tuple(nic for nic in nics for _ in range(OPEN_PER_NIC))
    clients = hostagent.current().open_clients([n.address for n in per], ECHO_PORT,
                                               "echo driver", budgets.FIRST_ECHO.seconds)
    try:
        for i, nic in enumerate(per):
            if clients.round_trip(i, f"before sleep {i}\n".encode(),
                                  budgets.STALL.seconds) != "echoed":
                raise DriverFailure(f"echo driver: no echo on {nic.alias} before the sleep")
    except BaseException:
        clients.close()
        raise
    return OpenConnections(clients, per)


def check_open_connections(vm: Vm, opened: OpenConnections, m: Measurements,
                           dead: tuple[Nic, ...] = ()) -> None:
    """Every connection opened before the sleep (through a NIC not in ``dead``) still
    echoes or ended cleanly: never a corrupt byte, never a hang."""
    kept = reset = 0
    for i, nic in enumerate(opened.nics):
        if nic in dead:
            continue
        outcome = opened.clients.round_trip(i, f"after the wake on {nic.alias}\n".encode(),
                                            budgets.STALL.seconds)
        vm.timeline.add(f"connection {opened.clients.ports[i]} to {nic.alias} opened "
                        f"before the sleep: {outcome}")
        if outcome == "echoed":
            kept += 1
        else:
            reset += 1
    m.values["connections_kept"] = kept
    m.values["connections_reset"] = reset


def dead_after_wake(vm: Vm, nics: tuple[Nic, ...]) -> tuple[Nic, ...]:
    """NICs that carry no IP at all after the wake (within the NIC_ALIVE lab budget): the
    NIC model's resume under this hypervisor, not the drivers, so they are not tested."""
    require_inside_lab(nics, "IP liveness probe to")
    if not vm.handle.resets_closed_ports:
        vm.timeline.add("the guest may drop a connection to a closed port silently: no IP "
                        "liveness check after the wake, every test NIC is tested")
        return ()
    instruments = hostagent.current()
    deadline = time.monotonic() + budgets.NIC_ALIVE.seconds
    dead = tuple(nics)
    while dead and time.monotonic() < deadline:
        dead = tuple(n for n in dead if not instruments.carries_ip(n.address))
        if dead:
            time.sleep(1.0)
    if len(dead) == len(nics):
        names = ", ".join(n.alias for n in dead)
        raise LabFailure(f"no test NIC carries IP after the wake ({names}): the guest's "
                         "resume failed", hint="see the console log")
    for nic in dead:
        vm.timeline.add(f"NOT TESTED after the wake: {nic.alias} ({nic.model}) carries no IP "
                        "at all (not even the kernel's reset on a closed port): the NIC "
                        "model's resume here, not the drivers under test")
    return dead


def sleep_resume(vm: Vm, tdi: Deployment, nics: tuple[Nic, ...],
                 kecho: Deployment | None = None) -> Measurements:
    """Suspend the guest to RAM with the drivers loaded and connections open, wake it."""
    m = Measurements()
    for nic in nics:
        require_probe(nic, "before the sleep")
    opened = open_connections(nics) if kecho is not None else None
    try:
        mark = journal_mark(tdi)
        m.values["suspend_s"] = round(vm.sleep(), 3)
        time.sleep(SLEEP_HOLD_S)
        m.values["resume_s"] = round(vm.wake(), 3)
        for nic in nics:
            outcome = wait_power_events(tdi, nic, mark)
            m.values[f"binding_{nic.alias}"] = outcome
            vm.timeline.add(f"{tdi.module}: binding to {nic.alias} {outcome} over the sleep")
        dead = dead_after_wake(vm, nics)
        m.values["not_tested"] = [f"{n.alias} ({n.model}): no IP after the wake"
                                  for n in dead]
        if opened is not None:
            check_open_connections(vm, opened, m, dead)
    finally:
        if opened is not None:
            opened.clients.close()
    for nic in nics:
        if nic in dead:
            continue
        try:
            m.values[f"probe_rtt_{nic.alias}_s"] = await_probe(nic, "woken", vm)
        except NicModelDown as exc:  # the NIC model's resume, as a NIC with no IP at all
            if len(m.values["not_tested"]) == len(nics) - 1:
                raise  # no test NIC left: the guest's resume failed, a lab failure
            vm.timeline.add(f"NOT TESTED after the wake: {exc.summary}")
            m.values["not_tested"].append(f"{nic.alias} ({nic.model}): no carrier or no "
                                          "traffic at all after the wake")
            continue
        if kecho is not None:
            echo_once(nic)
    return m


__all__ = ["check_open_connections", "power_outcome", "sleep_resume"]
