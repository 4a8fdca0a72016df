"""Unload scenarios: unload (idle or with live clients), and unload after churn."""

from __future__ import annotations

import time

from lab import budgets, hostagent
from lab.errors import DriverFailure, LabFailure
from lab.guests.base import Deployment
from lab.journal import check_unload
from lab.naming import ECHO_PORT
from lab.plan import Nic
from lab.scenarios.common import (
    Measurements,
    echo_once,
    require_inside_lab,
)
from lab.scenarios.traffic import load_churn
from lab.vm import Vm

#: how long the lab holds its live clients open after asking for the unload
HOLD_CLIENTS_S = 1.5


def unload(vm: Vm, driver: Deployment, live_connections: int = 0,
           nics: tuple[Nic, ...] = ()) -> Measurements:
    """Unload (optionally with live clients that the lab then closes); pairs exact; reload."""
    m = Measurements()
    if live_connections:
        m.values["unload_s"] = _unload_with_clients(vm, driver, live_connections, nics)
    else:
        m.values["unload_s"] = driver.unload()
    vm.timeline.add(f"{driver.module} unloaded in {m.values['unload_s']:.2f}s")
    check_unload(driver.journal(), driver.module, driver.vocabulary)
    driver.load()
    vm.timeline.add(f"{driver.module} loaded again")
    if driver.serves_echo and nics:
        echo_once(nics[0])
    m.values["reload"] = "ok"
    return m


def _unload_with_clients(vm: Vm, driver: Deployment, count: int,
                         nics: tuple[Nic, ...]) -> float:
    """Start the unload with live clients; it must wait for them, then finish in time.
    The clients live on the VM's host (:meth:`lab.hostagent.Instruments.open_clients`);
    the lab closes even ones with a FIN, odd ones with a RST."""
    if not nics:
        raise LabFailure("an unload with live connections needs a test NIC to connect through")
    require_inside_lab(nics, "unload client to")
    clients = hostagent.current().open_clients(
        [nics[i % len(nics)].address for i in range(count)], ECHO_PORT, driver.module,
        budgets.FIRST_ECHO.seconds)
    try:
        pending = driver.start_unload()
        vm.timeline.add(f"unload of {driver.module} started with {count} live connections")
        time.sleep(HOLD_CLIENTS_S)
        if pending.finished() or not driver.loaded():
            raise DriverFailure(f"{driver.module} unloaded while {count} connections were "
                                "live (the WskDeregister contract waits for them)")
    finally:
        closed = clients.close()
        vm.timeline.add(f"lab closed its {closed} clients (every second one with a reset)")
    return pending.wait(driver.unload_deadline_s)


def churn_then_unload(vm: Vm, nics: tuple[Nic, ...], churn: Nic, action: str,
                      kecho: Deployment, tdi: Deployment) -> Measurements:
    """Load while a NIC churns, then unload both drivers: every connection the churn
    killed must have been closed and released, every binding torn down in order."""
    m = load_churn(vm, nics, churn, action, tdi=tdi)
    for driver in (kecho, tdi):
        took = driver.unload()
        vm.timeline.add(f"{driver.module} unloaded after churn in {took:.2f}s")
        check_unload(driver.journal(), driver.module, driver.vocabulary)
        m.values[f"unload_{driver.module}_s"] = took
    return m
