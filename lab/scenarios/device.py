"""Device disable/enable: a PnP removal without hardware removal, then a clean rebind.

Windows disables the adapter (``Disable-NetAdapter``); the Linux twin's equivalent is
removing the NIC's PCI function in the guest and rescanning the bus. Either way the
transport must tear its binding down exactly as for a hot-unplug (query-remove seen,
forwarded to its clients -- checked by the independent observer --, unbind, net
address and device object deregistered), let go within the DISABLE budget (else
driver hung), and bind the adapter again once it is back (on Linux with a new
ifindex): BIND, the L2 echo, the TCP echo.
"""

from __future__ import annotations

import time

from lab import budgets
from lab.guests.base import AdapterInfo, Deployment
from lab.journal import check_adapter_removal
from lab.plan import Nic
from lab.scenarios.adapters import check_observed, others_intact
from lab.scenarios.common import (
    Measurements,
    adapter_of,
    await_probe,
    echo_once,
    journal_mark,
    other_adapters,
    require_probe,
    wait_bound,
)
from lab.vm import Vm


def _disable(vm: Vm, nic: Nic, m: Measurements) -> None:
    info = vm.handle.adapter(nic.mac)
    t0 = time.monotonic()
    vm.timeline.add(f"disable {nic.alias} ({info.name}) requested")
    vm.handle.disable_adapter(info, budgets.DISABLE.seconds)
    m.values["disable_s"] = round(time.monotonic() - t0, 3)
    vm.timeline.add(f"disable of {nic.alias} returned")


def _enable(vm: Vm, nic: Nic, m: Measurements) -> None:
    # Windows lists a disabled adapter (Status Disabled); Linux has no netdev until the rescan
    info = vm.handle.adapter(nic.mac) if vm.handle.lists_mac(nic.mac) else None
    t0 = time.monotonic()
    vm.handle.enable_adapter(info or AdapterInfo(mac=nic.mac, name="", index=0),
                             budgets.ENABLE.seconds)
    budgets.ENABLE.wait(f"{nic.alias} ({nic.mac}) back and configured after the enable",
                        lambda: True if vm.handle.configured(nic) else None)
    m.values["enable_s"] = round(time.monotonic() - t0, 3)
    vm.timeline.add(f"{nic.alias} enabled and configured again")


def disable_enable(vm: Vm, tdi: Deployment, nic: Nic, kecho: Deployment | None = None,
                   observer: Deployment | None = None) -> Measurements:
    """Disable a test NIC in the guest, check the removal's teardown order, enable it,
    check the rebind and traffic."""
    m = Measurements()
    adapter = adapter_of(vm, nic)
    others, before = other_adapters(vm, vm.entry.test_nics, nic)
    require_probe(nic, "before the disable")
    seen = journal_mark(observer)
    _disable(vm, nic, m)
    journal = tdi.journal()
    check_adapter_removal(journal, tdi.module, adapter)
    check_observed(vm, observer, adapter, seen)
    others_intact(tdi, journal, nic, others, before, "disabling")
    last_ns = max(e.t_ns for e in journal)
    _enable(vm, nic, m)
    wait_bound(tdi, nic, last_ns, "enabled")
    m.values["new_index"] = adapter_of(vm, nic).ifindex != adapter.ifindex
    m.values["probe_rtt_s"] = await_probe(nic, "enabled", vm)
    if kecho is not None:
        echo_once(nic)
    return m


__all__ = ["disable_enable"]
