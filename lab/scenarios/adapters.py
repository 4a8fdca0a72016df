"""Adapter scenarios: hot-unplug, protocol unbind/rebind, and the two composed."""

from __future__ import annotations

from lab import budgets
from lab.errors import DriverFailure
from lab.guests.base import Deployment
from lab.journal import Adapter, Journal, check_adapter_removal
from lab.plan import Nic
from lab.scenarios.common import (
    Measurements,
    adapter_of,
    await_probe,
    echo_once,
    journal_mark,
    other_adapters,
    probe,
    require_probe,
    wait_bound,
)
from lab.vm import Vm


def check_observed(vm: Vm, observer: Deployment | None, adapter: Adapter, mark: int) -> None:
    """The transport's clients really got the query-remove, before any teardown.

    Checked by the independent TDI client (the observer), not by the transport's own
    PNP_FORWARDED line; a guest kind without an observer says so in the timeline.
    """
    if observer is None:
        vm.timeline.add("query-remove forwarding checked from the transport's journal only "
                        "(no independent TDI client on this guest kind)")
        return
    from lab.observer import check_client_notified

    check_client_notified(observer.journal(), adapter, after_ns=mark)


def others_intact(tdi: Deployment, journal: Journal, nic: Nic, others: tuple[Nic, ...],
                  before: dict[str, Adapter], doing: str) -> None:
    """The other adapters kept their binding (no UNBIND) and still answer the L2 echo."""
    for other in others:
        if "UNBIND" in journal.of_adapter(before[other.mac]).names():
            raise DriverFailure(f"{tdi.module}: {doing} {nic.alias} also unbound {other.alias}")
        require_probe(other, f"after {doing} {nic.alias}")


def hot_unplug(vm: Vm, tdi: Deployment, nic: Nic, kecho: Deployment | None = None,
               observer: Deployment | None = None,
               deadline: float = budgets.UNPLUG.seconds) -> Measurements:
    """Unplug a test NIC, check the transport's teardown order, replug, traffic again."""
    m = Measurements()
    adapter = adapter_of(vm, nic)
    others, before = other_adapters(vm, vm.entry.test_nics, nic)
    require_probe(nic, "before the unplug")
    seen = journal_mark(observer)
    m.values["unplug_s"] = vm.unplug(nic, deadline=deadline)
    journal = tdi.journal()
    check_adapter_removal(journal, tdi.module, adapter)
    check_observed(vm, observer, adapter, seen)
    others_intact(tdi, journal, nic, others, before, "unplugging")
    last_ns = max(e.t_ns for e in journal)
    vm.replug(nic)
    wait_bound(tdi, nic, last_ns, "replugged")
    m.values["probe_rtt_s"] = await_probe(nic, "replugged", vm)
    if kecho is not None:
        echo_once(nic)
    return m


def unbind_rebind(vm: Vm, tdi: Deployment, nic: Nic, others: tuple[Nic, ...],
                  observer: Deployment | None = None) -> Measurements:
    """Unbind the transport from one adapter: its teardown only, others unaffected."""
    m = Measurements()
    adapter = adapter_of(vm, nic)
    for other in (nic, *others):
        require_probe(other, "before the unbind")
    before = {o.mac: adapter_of(vm, o) for o in others}
    info = vm.handle.adapter(nic.mac)
    seen = journal_mark(observer)
    tdi.unbind(info)
    vm.timeline.add(f"{tdi.module} unbound from {nic.alias}")
    journal = tdi.journal()
    check_adapter_removal(journal, tdi.module, adapter)
    check_observed(vm, observer, adapter, seen)
    if probe(nic.bridge, nic.mac, timeout=budgets.L2_SILENT.seconds) is not None:
        raise DriverFailure(f"{tdi.module} still answers on {nic.alias} after the unbind")
    others_intact(tdi, journal, nic, others, before, "unbinding")
    last_ns = max(e.t_ns for e in journal)
    tdi.bind(info)
    vm.timeline.add(f"{tdi.module} bound to {nic.alias} again")
    wait_bound(tdi, nic, last_ns, "rebound")
    m.values["probe_rtt_s"] = await_probe(nic, "rebound", vm)
    return m


def unbind_rebind_unplug(vm: Vm, tdi: Deployment, nic: Nic, others: tuple[Nic, ...],
                         kecho: Deployment | None = None,
                         observer: Deployment | None = None) -> Measurements:
    """Unbind, rebind, then unplug the same adapter.

    A reference the admin unbind kept is invisible until the adapter is removed: the
    unplug then never completes (driver hung).
    """
    m = unbind_rebind(vm, tdi, nic, others, observer)
    return m.merge(hot_unplug(vm, tdi, nic, kecho=kecho, observer=observer))
