"""Reboot with the drivers installed: they come back by themselves, in order.

The drivers were installed to persist (Windows: their services' start types and the
protocol's bindings; the micro guest: its boot list). After a clean guest reboot the
guest loads them at boot in their install order; each journal of the new boot is one
clean load session (LOAD, registrations, no error, no unload); the transport binds
every test adapter and never the management NIC; the L2 and TCP echo answer on every
test NIC. A rebooted guest that never answers is a lab failure unless its console
shows a driver's panic or a boot-time load that never finished.
"""

from __future__ import annotations

import itertools

from lab.errors import DriverFailure
from lab.guests.base import Deployment
from lab.journal import Journal
from lab.plan import Nic
from lab.scenarios.common import Measurements, await_probe, echo_once, wait_bound
from lab.vm import Vm


def check_clean_load(journal: Journal, module: str) -> int:
    """The journal of this boot is one load session without errors; the LOAD's t_ns."""
    names = journal.names()
    if names.count("LOAD") != 1 or "UNLOAD" in names:
        raise DriverFailure(f"{module}: expected one clean load at boot, journaled "
                            f"{names.count('LOAD')} LOAD and {names.count('UNLOAD')} UNLOAD")
    bad = journal.errors()
    if bad:
        first = bad[0]
        raise DriverFailure(f"{module}: {first.name} failed at boot (err:{first.error})")
    return next(e.t_ns for e in journal if e.name == "LOAD")


def check_boot_order(loads: list[tuple[str, int]]) -> None:
    """The drivers loaded in their install order (``loads``: module, LOAD t_ns)."""
    for (first, t_first), (then, t_then) in itertools.pairwise(loads):
        if t_then < t_first:
            raise DriverFailure(f"{then} loaded before {first} at boot: the install order "
                                f"is {' then '.join(m for m, _ in loads)}")


def reboot_installed(vm: Vm, drivers: tuple[Deployment, ...], nics: tuple[Nic, ...],
                     tdi: Deployment) -> Measurements:
    """Reboot the guest with ``drivers`` installed to persist (in that order)."""
    m = Measurements()
    m.values["reboot_s"] = round(vm.reboot(), 3)
    loads = []
    for dep in drivers:
        if not dep.loaded():
            raise DriverFailure(f"{dep.module} is not loaded after the reboot",
                                hint="the guest did not load it at boot (start type / "
                                     "boot list)")
        loads.append((dep.module, check_clean_load(dep.journal(), dep.module)))
    check_boot_order(loads)
    for nic in nics:
        wait_bound(tdi, nic, 0, "rebooted guest's")
    mgmt = vm.handle.management_mac
    if mgmt and any(e.adapter is not None and e.adapter.mac == mgmt for e in tdi.journal()):
        raise DriverFailure(f"{tdi.module} bound the management NIC ({mgmt}) at boot: its "
                            "skip list did not persist or was not applied to the adapters "
                            "present at load")
    for nic in nics:
        m.values[f"probe_rtt_{nic.alias}_s"] = await_probe(nic, "rebooted", vm)
        if any(d.serves_echo for d in drivers):
            echo_once(nic)
    return m


__all__ = ["check_boot_order", "check_clean_load", "reboot_installed"]
