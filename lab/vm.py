"""A lab VM as the scenarios drive it: NIC hot-unplug/replug, link state, revert, crash.

Every action has a deadline and is confirmed twice: by libvirt (device-removed
event, live XML) and from inside the guest (the adapter vanishes or comes back
with its address). A removal that never completes, or that libvirt reports as
failed, means the driver did not let go of the adapter: a DriverFailure.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lab import domxml, inventory
from lab.errors import DriverFailure, LabFailure
from lab.guest import Guest, GuestAddress
from lab.hypervisor import DomainState, Hypervisor
from lab.plan import NicSpec
from lab.wait import wait_for

UNPLUG_DEADLINE = 60.0
REPLUG_DEADLINE = 60.0


@dataclass
class Timeline:
    """Time-stamped lab events of one test (libvirt events and the lab's own actions)."""

    start: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str) -> None:
        with self._lock:
            self.events.append((time.monotonic() - self.start, what))

    def text(self) -> str:
        with self._lock:
            return "".join(f"{t:9.3f}s  {what}\n" for t, what in self.events)


def nic_spec(entry: inventory.NicEntry) -> NicSpec:
    """The NIC's spec again (for replug), from the inventory entry."""
    return NicSpec(alias=entry.alias, network=entry.network, mac=entry.mac, model=entry.model,
                   ip=f"{entry.address}/{entry.prefix}", role=entry.role)


class Vm:
    """One leased VM: its libvirt domain and its guest over SSH."""

    def __init__(self, inv: inventory.Inventory, entry: inventory.VmEntry,
                 hv: Hypervisor, timeline: Timeline | None = None) -> None:
        self.inv = inv
        self.entry = entry
        self.hv = hv
        self.timeline = timeline or Timeline()
        self.address = GuestAddress.of(inv, entry)
        self.guest = Guest(self.address)

    @property
    def name(self) -> str:
        return self.entry.name

    def domain(self) -> Any:
        dom = self.hv.domain(self.entry.domain)
        if dom is None:
            raise LabFailure(f"{self.name}: domain {self.entry.domain} is gone",
                             hint="run `lab up` to recreate it")
        return dom

    def state(self) -> int:
        return self.hv.state(self.domain())

    def crashed(self) -> bool:
        return bool(self.state() == DomainState.CRASHED)

    def guest_macs(self) -> set[str]:
        out = self.guest.run("cat /sys/class/net/*/address", timeout=30).stdout
        return {line.strip() for line in out.splitlines() if line.strip()}

    def ifname(self, nic: inventory.NicEntry) -> str:
        """The guest's interface name for a NIC (by MAC)."""
        out = self.guest.run(f"grep -l '{nic.mac}' /sys/class/net/*/address", timeout=30,
                             check=False).stdout.strip()
        if not out:
            raise LabFailure(f"{self.name}: no interface with MAC {nic.mac} in the guest")
        return out.splitlines()[0].split("/")[-2]

    def unplug(self, nic: inventory.NicEntry, deadline: float = UNPLUG_DEADLINE) -> float:
        """Hot-unplug ``nic``; returns seconds until libvirt's device-removed event.

        Raises DriverFailure ("driver hung") when the removal does not complete in
        time, or when libvirt reports the removal failed.
        """
        if nic.role != "test":
            raise LabFailure(f"refusing to unplug {nic.alias}: only test NICs are unplugged")
        dom = self.domain()
        removed = threading.Event()
        t0 = time.monotonic()

        def on_removed(alias: str) -> None:
            if alias == nic.alias:
                self.timeline.add(f"libvirt device-removed {alias}")
                removed.set()

        failed: list[str] = []

        def on_failed(alias: str) -> None:
            if alias == nic.alias:
                self.timeline.add(f"libvirt device-removal-failed {alias}")
                failed.append(alias)
                removed.set()

        cancel = self.hv.watch_device_removed(dom, on_removed)
        cancel_failed = self.hv.watch_removal_failed(dom, on_failed)
        try:
            self.timeline.add(f"detach {nic.alias} ({nic.model}, {nic.mac}) requested")
            self.hv.detach_alias(dom, nic.alias)
            if not removed.wait(deadline):
                self.timeline.add(f"no device-removed for {nic.alias} within {deadline:.0f}s")
                raise DriverFailure(
                    f"driver hung: hot-unplug of {nic.alias} ({nic.mac}) on {self.name} did "
                    f"not complete within {deadline:.0f}s (the adapter was never released)")
            if failed:
                raise DriverFailure(f"driver failed: the guest refused the removal of "
                                    f"{nic.alias} ({nic.mac}) on {self.name}")
        finally:
            cancel()
            cancel_failed()
        took = time.monotonic() - t0
        wait_for(f"{nic.mac} to vanish inside {self.name}",
                 lambda: True if nic.mac not in self.guest_macs() else None, 30)
        self.timeline.add(f"guest no longer lists {nic.mac}")
        return took

    def replug(self, nic: inventory.NicEntry, deadline: float = REPLUG_DEADLINE) -> None:
        """Hot-plug ``nic`` again (same alias, MAC, network) and wait for its address."""
        self.timeline.add(f"attach {nic.alias} ({nic.model}, {nic.mac})")
        self.hv.attach(self.domain(), domxml.interface_xml(nic_spec(nic)))
        wait_for(f"{nic.address} configured on replugged {nic.alias} in {self.name}",
                 lambda: True if f"inet {nic.address}/" in self.guest.run(
                     "ip -o -4 addr", timeout=30).stdout else None, deadline)
        self.timeline.add(f"guest configured {nic.address} on {nic.mac}")

    def set_link(self, nic: inventory.NicEntry, up: bool) -> None:
        """Link state of a NIC, as `virsh domif-setlink` does."""
        xml = domxml.interface_xml(nic_spec(nic)).replace(
            "</interface>", f'  <link state="{"up" if up else "down"}" />\n</interface>')
        self.timeline.add(f"link {nic.alias} {'up' if up else 'down'}")
        self.hv.update_device(self.domain(), xml)

    def revert(self) -> float:
        """Back to the clean snapshot (running); returns seconds until SSH answers again."""
        self.guest.close()
        t0 = time.monotonic()
        self.hv.revert_snapshot(self.domain(), self.entry.snapshot)
        self.timeline.add(f"reverted to snapshot {self.entry.snapshot}")
        wait_for(f"{self.name} to answer SSH after revert", self._answers, 60, interval=0.2)
        return time.monotonic() - t0

    def _answers(self) -> bool | None:
        try:
            ok: bool = self.guest.run("true", timeout=10, check=False).ok
            return True if ok else None
        except LabFailure:
            self.guest.close()
            return None

    def close(self) -> None:
        self.guest.close()
