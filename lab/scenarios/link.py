"""Link scenarios under load: link flap (media disconnect/connect) and NIC reset.

A link flap is not a removal: the transport must see the status change (LINK_DOWN,
then LINK_UP) and tear nothing down. A NIC reset makes the adapter's driver
reinitialise the device; whatever the transport journals, its binding is intact
afterwards or was torn down and re-established in the contract's order. In both,
traffic on that NIC stops and resumes and the other NICs see no error.
"""

from __future__ import annotations

import time

from lab import budgets
from lab.errors import DeadlineExceeded, DriverFailure, LabFailure, LinkStateUnsupported
from lab.guests.base import Deployment
from lab.journal import BIND_ORDER, REMOVAL_ORDER, Adapter, Journal
from lab.plan import Nic
from lab.scenarios.adapters import others_intact
from lab.scenarios.common import (
    Measurements,
    adapter_of,
    await_probe,
    echo_once,
    events_since,
    journal_mark,
    other_adapters,
    probe,
    require_probe,
    wait_bound,
)
from lab.scenarios.traffic import check_churn, load_during
from lab.vm import Vm

#: how long libvirt keeps the link down once the transport journaled LINK_DOWN
LINK_DOWN_HOLD_S = 2.0
#: events that tear a binding down (none may follow a link down)
TEARDOWN = frozenset(REMOVAL_ORDER)


def since(tdi: Deployment, adapter: Adapter, after_ns: int) -> Journal:
    """``tdi``'s events for ``adapter`` newer than ``after_ns``."""
    return Journal(tuple(e for e in tdi.journal().of_adapter(adapter) if e.t_ns > after_ns))


def wait_journaled(tdi: Deployment, nic: Nic, adapter: Adapter, event: str,
                   after_ns: int) -> int:
    """The transport journals ``event`` for ``nic`` within the LINK_STATE budget; its t_ns."""
    def seen() -> int | None:
        return next((e.t_ns for e in since(tdi, adapter, after_ns) if e.name == event), None)
    return budgets.LINK_STATE.wait(f"{tdi.module} to journal {event} for {nic.alias} "
                                   f"({adapter})", seen)


def check_kept(journal: Journal, module: str, nic: Nic) -> None:
    """A link flap tore nothing down: no teardown event for the adapter."""
    torn = [n for n in journal.names() if n in TEARDOWN]
    if torn:
        raise DriverFailure(f"{module} tore down its binding to {nic.alias} on a link flap "
                            f"({' '.join(torn)}): a media disconnect is not a removal")


def check_link_events(journal: Journal, module: str, nic: Nic) -> None:
    """LINK_DOWN, then LINK_UP, and the last state journaled is up."""
    link = [n for n in journal.names() if n in ("LINK_DOWN", "LINK_UP")]
    if "LINK_DOWN" not in link or link[-1] != "LINK_UP":
        raise DriverFailure(f"{module}: link events of {nic.alias} out of order: "
                            f"{' '.join(link) or 'none'} (expected LINK_DOWN then LINK_UP)")


def check_reset_teardown(journal: Journal, module: str, nic: Nic) -> int | None:
    """A NIC reset left the binding intact (None), or tore it down in the removal order:
    then the t_ns of the teardown's last event."""
    torn = [e for e in journal if e.name in TEARDOWN]
    if not torn:
        return None
    teardown = [e.name for e in torn]
    if teardown != list(REMOVAL_ORDER):
        raise DriverFailure(f"{module}: the reset of {nic.alias} tore its binding down out "
                            f"of order: got {' '.join(teardown)}, expected "
                            f"{' '.join(REMOVAL_ORDER)}",
                            hint="a device stop is a removal: forward the query first")
    return torn[-1].t_ns


def check_bound_again(journal: Journal, module: str, nic: Nic, torn_ns: int) -> None:
    """After the reset's teardown (at ``torn_ns``) the adapter was bound again."""
    up = [e.name for e in journal if e.t_ns > torn_ns and e.name in BIND_ORDER][:3]
    if not up or up[0] != "BIND" or set(up) != set(BIND_ORDER):
        raise DriverFailure(f"{module}: {nic.alias} not bound again after its reset: got "
                            f"{' '.join(up) or 'nothing'} after the teardown, expected "
                            "BIND then NETADDR_REGISTERED and DEVICE_REGISTERED")


def guest_sees_link(vm: Vm, nic: Nic, up: bool) -> None:
    """The guest OS itself (not the driver under test) sees the link state libvirt set;
    an emulation that never reports it gives LinkStateUnsupported (a lab limitation)."""
    info = vm.handle.adapter(nic.mac)
    if vm.handle.media_connected(info) is None:
        return  # this kind cannot tell: the transport's journal is the only witness
    try:
        budgets.LINK_SEEN.wait(f"the guest's {nic.model} adapter {info.name} to report its "
                               f"link {'up' if up else 'down'}",
                               lambda: True if vm.handle.media_connected(info) is up else None)
    except DeadlineExceeded:
        raise LinkStateUnsupported(
            f"{nic.model} ({nic.alias}): libvirt set the link {'up' if up else 'down'} but "
            f"the guest's carrier did not follow within {budgets.LINK_SEEN.seconds:.0f}s: "
            "this NIC model's emulation does not report link changes here, so a link flap "
            "cannot test the driver on it") from None


def _flap(vm: Vm, tdi: Deployment, nic: Nic, adapter: Adapter, mark: int,
          m: Measurements) -> None:
    """Link down (the transport sees it, the NIC goes silent), then up again."""
    t0 = time.monotonic()
    down_ns = mark
    try:
        vm.set_link(nic, False)
        guest_sees_link(vm, nic, up=False)
        down_ns = wait_journaled(tdi, nic, adapter, "LINK_DOWN", mark)
        m.values["link_down_seen_s"] = round(time.monotonic() - t0, 3)
        if probe(nic.bridge, nic.mac, timeout=budgets.L2_SILENT.seconds) is not None:
            raise LabFailure(f"{nic.alias} still answers the L2 echo with its link down "
                             "(libvirt's link state did not reach the NIC)")
        time.sleep(LINK_DOWN_HOLD_S)
        check_kept(since(tdi, adapter, mark), tdi.module, nic)
    finally:
        vm.set_link(nic, True)
    wait_journaled(tdi, nic, adapter, "LINK_UP", down_ns)
    m.values["link_up_seen_s"] = round(time.monotonic() - t0, 3)


def link_flap(vm: Vm, tdi: Deployment, nics: tuple[Nic, ...], nic: Nic,
              seconds: float = 10.0) -> Measurements:
    """Load on every NIC while ``nic``'s link goes down and up (libvirt link state)."""
    m = Measurements()
    adapter = adapter_of(vm, nic)
    others, before = other_adapters(vm, nics, nic)
    require_probe(nic, "before the link flap")
    mark = journal_mark(tdi)
    result, flap_at = load_during(vm, nics, lambda: _flap(vm, tdi, nic, adapter, mark, m),
                                  f"a link flap of {nic.alias}", seconds)
    m.loads.append(result)
    check_churn(result, nic, flap_at)
    own = since(tdi, adapter, mark)
    check_kept(own, tdi.module, nic)
    check_link_events(own, tdi.module, nic)
    others_intact(tdi, tdi.journal(), nic, others, before, "flapping the link of")
    m.values["probe_rtt_s"] = await_probe(nic, "link-up", vm)
    echo_once(nic)  # traffic resumes on the flapped NIC
    m.values["throughput_Bps"] = result.throughput
    m.values["flap_errors"] = len(result.errors)
    return m


def _reset(vm: Vm, nic: Nic, m: Measurements) -> None:
    info = vm.handle.adapter(nic.mac)
    t0 = time.monotonic()
    vm.timeline.add(f"reset {nic.alias} ({info.name}) requested")
    vm.handle.reset_adapter(info, budgets.NIC_RESET.seconds)
    m.values["reset_s"] = round(time.monotonic() - t0, 3)
    vm.timeline.add(f"reset of {nic.alias} returned")


def nic_reset(vm: Vm, tdi: Deployment, nics: tuple[Nic, ...], nic: Nic,
              seconds: float = 10.0) -> Measurements:
    """Load on every NIC while ``nic`` is reset by its guest (driver reinitialisation)."""
    m = Measurements()
    adapter = adapter_of(vm, nic)
    others, before = other_adapters(vm, nics, nic)
    require_probe(nic, "before the reset")
    mark = journal_mark(tdi)
    result, reset_at = load_during(vm, nics, lambda: _reset(vm, nic, m),
                                   f"a reset of {nic.alias}", seconds)
    m.loads.append(result)
    check_churn(result, nic, reset_at)
    torn_ns = check_reset_teardown(since(tdi, adapter, mark), tdi.module, nic)
    m.values["rebound"] = torn_ns is not None
    if torn_ns is not None:
        wait_bound(tdi, nic, torn_ns, "reset")
        check_bound_again(events_since(tdi, adapter.mac, torn_ns), tdi.module, nic, torn_ns)
    others_intact(tdi, tdi.journal(), nic, others, before, "resetting")
    m.values["probe_rtt_s"] = await_probe(nic, "reset", vm)
    echo_once(nic)  # traffic resumes on the reset NIC
    m.values["throughput_Bps"] = result.throughput
    m.values["reset_errors"] = len(result.errors)
    return m


__all__ = ["check_bound_again", "check_kept", "check_link_events", "check_reset_teardown",
           "link_flap", "nic_reset"]
