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

import socket
import time
from typing import Literal

from lab import budgets
from lab.errors import DeadlineExceeded, DriverFailure, DriverHang, LabFailure
from lab.guests.base import Deployment
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
    require_remote_support,
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


def open_connections(nics: tuple[Nic, ...]) -> list[tuple[Nic, socket.socket]]:
    """``OPEN_PER_NIC`` echo connections per NIC, each with one echo round trip done."""
    require_inside_lab(nics, "TCP echo to")
    require_remote_support("a sleep with open connections (sockets held by the controller)")
    opened: list[tuple[Nic, socket.socket]] = []
    for nic in nics:
        for i in range(OPEN_PER_NIC):
            sock = socket.create_connection((nic.address, ECHO_PORT),
                                            timeout=budgets.FIRST_ECHO.seconds)
            opened.append((nic, sock))
            if round_trip(sock, f"before sleep {i}\n".encode()) != "echoed":
                raise DriverFailure(f"echo driver: no echo on {nic.alias} before the sleep")
    return opened


def round_trip(sock: socket.socket, payload: bytes) -> Literal["echoed", "reset"]:
    """Send ``payload`` and read it back: "echoed" intact, "reset" on a clean reset or
    close; a wrong byte is a DriverFailure, no progress within STALL a DriverHang."""
    sock.settimeout(budgets.STALL.seconds)
    got = b""
    try:
        sock.sendall(payload)
        while len(got) < len(payload):
            chunk = sock.recv(len(payload) - len(got))
            if not chunk:
                break
            got += chunk
    except TimeoutError as exc:
        raise DriverHang(f"echo driver: a connection opened before the sleep made no progress "
                         f"for {budgets.STALL.seconds:.0f}s after the wake (hung)") from exc
    except OSError:  # ECONNRESET, EPIPE: the connection was reset cleanly
        return "reset" if payload.startswith(got) else _corrupt(payload, got)
    if got == payload:
        return "echoed"
    return "reset" if payload.startswith(got) else _corrupt(payload, got)


def _corrupt(sent: bytes, got: bytes) -> Literal["echoed", "reset"]:
    offset = next(i for i, (a, b) in enumerate(zip(sent, got, strict=False)) if a != b)
    raise DriverFailure(f"echo driver: corrupt byte after the wake at offset {offset}: got "
                        f"0x{got[offset]:02x}, expected 0x{sent[offset]:02x}")


def check_open_connections(vm: Vm, opened: list[tuple[Nic, socket.socket]],
                           m: Measurements) -> None:
    """Every connection opened before the sleep still echoes or ended cleanly."""
    kept = reset = 0
    for nic, sock in opened:
        with sock:
            outcome = round_trip(sock, f"after the wake on {nic.alias}\n".encode())
            vm.timeline.add(f"connection {sock.getsockname()[1]} to {nic.alias} opened "
                            f"before the sleep: {outcome}")
            if outcome == "echoed":
                kept += 1
            else:
                reset += 1
    m.values["connections_kept"] = kept
    m.values["connections_reset"] = reset


#: a port nothing listens on in the guests: the guest kernel itself answers with a RST
PROBE_CLOSED_PORT = 9


def carries_ip(nic: Nic) -> bool:
    """The NIC passes IP traffic at all (the guest's kernel resets a connection to a
    closed port): a check that involves neither driver under test."""
    try:
        with socket.create_connection((nic.address, PROBE_CLOSED_PORT), timeout=2.0):
            return True
    except ConnectionRefusedError:
        return True
    except OSError:  # no route to host (ARP unanswered), timeout
        return False


def dead_after_wake(vm: Vm, nics: tuple[Nic, ...]) -> tuple[Nic, ...]:
    """NICs that carry no IP at all after the wake (within the NIC_ALIVE lab budget): the
    NIC model's resume under this hypervisor, not the drivers, so they are not tested."""
    require_inside_lab(nics, "IP liveness probe to")
    deadline = time.monotonic() + budgets.NIC_ALIVE.seconds
    dead = tuple(nics)
    while dead and time.monotonic() < deadline:
        dead = tuple(n for n in dead if not carries_ip(n))
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
    opened = open_connections(nics) if kecho is not None else []
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
        check_open_connections(vm, [(n, s) for n, s in opened if n not in dead], m)
    finally:
        for _, sock in opened:
            sock.close()
    for nic in nics:
        if nic in dead:
            continue
        m.values[f"probe_rtt_{nic.alias}_s"] = await_probe(nic, "woken")
        if kecho is not None:
            echo_once(nic)
    return m


__all__ = ["check_open_connections", "power_outcome", "sleep_resume"]
