"""The scenarios: hot-unplug, unbind/rebind, load, load + churn, unload.

Each scenario is a function of a leased :class:`~lab.vm.Vm` and the deployed
drivers (:class:`~lab.guests.base.Deployment`); it speaks only the guest
interface, so the same code runs on every guest kind. It returns its
measurements, or raises :class:`DriverFailure` naming
the broken rule (the oracles of DESIGN.md and the seed documents) or
:class:`LabFailure` when the lab itself could not do its part. The pytest suite
(tests/scenarios) and the fault-knob self-test call the same functions.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lab.errors import DriverFailure, LabFailure
from lab.guests.base import Deployment
from lab.journal import Adapter, check_adapter_removal, check_unload
from lab.l2probe import probe
from lab.load import ErrorClass, LoadResult, LoadSpec, Target, run_load
from lab.naming import ECHO_PORT
from lab.plan import Nic
from lab.vm import Vm
from lab.wait import wait_for


@dataclass
class Measurements:
    """What a scenario measured (goes to the evidence folder and the summary)."""

    values: dict[str, Any] = field(default_factory=dict)
    loads: list[LoadResult] = field(default_factory=list)


def adapter_of(vm: Vm, nic: Nic) -> Adapter:
    """The adapter of ``nic`` as driver journals name it (by MAC, with its index)."""
    return vm.handle.adapter(nic.mac).journal_adapter


def require_probe(nic: Nic, what: str) -> float:
    reply = probe(nic.bridge, nic.mac)
    if reply is None:
        raise DriverFailure(f"labtdi: no L2 echo from {nic.alias} ({nic.mac}) {what}")
    return reply.rtt_s


def await_probe(nic: Nic, state: str, timeout: float = 30) -> float:
    """Wait until the L2 echo answers on ``nic`` again; returns the round trip (s)."""
    return wait_for(f"L2 echo from the {state} {nic.alias}",
                    lambda: r.rtt_s if (r := probe(nic.bridge, nic.mac)) else None, timeout)


def echo_once(nic: Nic, payload: bytes = b"driver-lab echo probe\n") -> None:
    """One TCP echo round trip to the echo driver on ``nic`` (traffic flows)."""
    try:
        with socket.create_connection((nic.address, ECHO_PORT), timeout=10) as sock:
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


def _journal_has_bind(tdi: Deployment, mac: str, after_ns: int) -> bool:
    return any(e.name == "BIND" and e.adapter is not None and e.adapter.mac == mac
               and e.t_ns > after_ns for e in tdi.journal())


def hot_unplug(vm: Vm, tdi: Deployment, nic: Nic,
               kecho: Deployment | None = None,
               deadline: float = 60.0) -> Measurements:
    """Unplug a test NIC, check the transport's teardown order, replug, traffic again."""
    m = Measurements()
    adapter = adapter_of(vm, nic)
    require_probe(nic, "before the unplug")
    m.values["unplug_s"] = vm.unplug(nic, deadline=deadline)
    journal = tdi.journal()
    check_adapter_removal(journal, "labtdi", adapter)
    last_ns = max(e.t_ns for e in journal)
    vm.replug(nic)
    wait_for(f"labtdi to bind the replugged {nic.mac}",
             lambda: True if _journal_has_bind(tdi, nic.mac, last_ns) else None, 30)
    m.values["probe_rtt_s"] = await_probe(nic, "replugged")
    if kecho is not None:
        echo_once(nic)
    return m


def unbind_rebind(vm: Vm, tdi: Deployment, nic: Nic,
                  others: tuple[Nic, ...]) -> Measurements:
    """Unbind the transport from one adapter: its teardown only, others unaffected."""
    m = Measurements()
    adapter = adapter_of(vm, nic)
    for other in (nic, *others):
        require_probe(other, "before the unbind")
    before = {o.mac: adapter_of(vm, o) for o in others}
    info = vm.handle.adapter(nic.mac)
    tdi.unbind(info)
    vm.timeline.add(f"labtdi unbound from {nic.alias}")
    journal = tdi.journal()
    check_adapter_removal(journal, "labtdi", adapter)
    if probe(nic.bridge, nic.mac, timeout=1.0) is not None:
        raise DriverFailure(f"labtdi still answers on {nic.alias} after the unbind")
    for other in others:
        own = journal.of_adapter(before[other.mac]).names()
        if "UNBIND" in own:
            raise DriverFailure(f"labtdi: unbinding {nic.alias} also unbound {other.alias}")
        require_probe(other, f"while {nic.alias} is unbound")
    tdi.bind(info)
    vm.timeline.add(f"labtdi bound to {nic.alias} again")
    m.values["probe_rtt_s"] = await_probe(nic, "rebound")
    return m


def check_load(result: LoadResult) -> None:
    """Every byte echoed intact, no connection failed."""
    mismatches = [e for e in result.errors if e.cls is ErrorClass.MISMATCH]
    if mismatches:
        raise DriverFailure(f"corrupt byte: {mismatches[0].describe()}")
    if result.errors:
        raise DriverFailure(f"echo load failed: {result.errors[0].describe()} "
                            f"({len(result.errors)} errors: {result.error_counts})")
    if result.bytes_echoed == 0 and result.ops == 0:
        raise DriverFailure("echo load moved no data")


def load(vm: Vm, nics: tuple[Nic, ...], seconds: float = 3.0,
         connections: int = 4) -> Measurements:
    """Echo load on every test NIC at once; every byte must come back intact."""
    m = Measurements()
    spec = LoadSpec(targets=tuple(Target(n.address, ECHO_PORT) for n in nics),
                    connections=connections, duration=seconds, progress=False)
    vm.timeline.add(f"load: {connections} connections x {len(nics)} NICs for {seconds}s")
    result = run_load(spec)
    m.loads.append(result)
    m.values["throughput_Bps"] = result.throughput
    vm.timeline.add(f"load done: {result.bytes_echoed} bytes, {len(result.errors)} errors")
    check_load(result)
    return m


def load_churn(vm: Vm, nics: tuple[Nic, ...], churn: Nic,
               action: str, tdi: Deployment | None = None,
               seconds: float = 8.0) -> Measurements:
    """Load on every NIC while ``churn`` is unplugged/replugged (or unbound/rebound)."""
    m = Measurements()
    spec = LoadSpec(targets=tuple(Target(n.address, ECHO_PORT) for n in nics),
                    connections=2, duration=seconds, reconnect=True, stall_timeout=2.0,
                    progress=False)
    box: dict[str, LoadResult | BaseException] = {}

    def runner() -> None:
        try:
            box["result"] = run_load(spec)
        except BaseException as exc:  # handed to the main thread below
            box["result"] = exc

    thread = threading.Thread(target=runner, name="churn-load")
    thread.start()
    time.sleep(seconds * 0.25)
    _churn(vm, churn, action, tdi)
    thread.join(seconds + 60)
    if thread.is_alive():
        raise LabFailure(f"the churn load did not stop within {seconds + 60:.0f}s")
    result = box.get("result")
    if isinstance(result, BaseException):
        raise result
    assert isinstance(result, LoadResult)
    m.loads.append(result)
    _check_churn(result, churn)
    echo_once(churn)  # traffic resumes on the churned NIC
    m.values["throughput_Bps"] = result.throughput
    m.values["affected"] = [t.target for t in result.affected_targets]
    return m


def _churn(vm: Vm, nic: Nic, action: str,
           tdi: Deployment | None) -> None:
    if action == "unplug":
        vm.unplug(nic)
        time.sleep(1.0)
        vm.replug(nic)
    elif action == "unbind":
        if tdi is None:
            raise LabFailure("unbind churn needs the labtdi deployment")
        info = vm.handle.adapter(nic.mac)
        tdi.unbind(info)
        time.sleep(1.0)
        tdi.bind(info)
    else:
        raise LabFailure(f"unknown churn action {action!r} (unplug or unbind)")


def _check_churn(result: LoadResult, churn: Nic) -> None:
    churn_target = f"{churn.address}:{ECHO_PORT}"
    mismatches = [e for e in result.errors if e.cls is ErrorClass.MISMATCH]
    if mismatches:
        raise DriverFailure(f"corrupt byte during churn: {mismatches[0].describe()}")
    stray = [e for e in result.errors if e.target != churn_target]
    if stray:
        raise DriverFailure(f"churn of {churn.alias} broke connections on another NIC: "
                            f"{stray[0].describe()}")
    for target in result.targets:
        if target.bytes == 0:
            raise DriverFailure(f"no traffic at all on {target.target} during churn")


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
    """Start the unload with live clients; it must wait for them, then finish in time."""
    if not nics:
        raise LabFailure("an unload with live connections needs a test NIC to connect through")
    clients = [socket.create_connection((nics[i % len(nics)].address, ECHO_PORT), timeout=10)
               for i in range(count)]
    try:
        pending = driver.start_unload()
        vm.timeline.add(f"unload of {driver.module} started with {count} live connections")
        time.sleep(1.5)
        if pending.finished() or not driver.loaded():
            raise DriverFailure(f"{driver.module} unloaded while {count} connections were "
                                "live (the WskDeregister contract waits for them)")
    finally:
        for sock in clients:
            sock.close()
        vm.timeline.add(f"lab closed its {count} clients")
    return pending.wait(driver.unload_deadline_s)
