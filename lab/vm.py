"""A lab VM as the scenarios drive it: NIC hot-unplug/replug, link state, revert, crash.

Every action has a deadline and is confirmed twice: by libvirt (device-removed
event, live XML) and from inside the guest, through its guest kind's handle
(the adapter vanishes or comes back with its address). A removal that never
completes means the driver did not let go of the adapter: a DriverHang; one
that libvirt reports as failed is a DriverFailure.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lab import agent, budgets, domxml, fast_revert, inventory
from lab.errors import (
    DeadlineExceeded,
    DriverCrash,
    DriverFailure,
    DriverHang,
    GuestCommandError,
    LabError,
    LabFailure,
    NetworkBroken,
)
from lab.guest import Guest, GuestAddress
from lab.guests.base import GuestHandle, GuestKind
from lab.hypervisor import DomainState, Hypervisor
from lab.plan import Nic
from lab.wait import Abort, wait_event, wait_for

if TYPE_CHECKING:
    from lab.load import LoadResult

UNPLUG_DEADLINE = budgets.UNPLUG.seconds
REPLUG_DEADLINE = budgets.REPLUG.seconds
REVERT_DEADLINE = 60.0
#: A guest loaded in place answers SSH in about a second here. One that has not within
#: this long, or crashed, gets libvirt's revert (a new QEMU process from the snapshot)
#: before the test runs: once in CI, a guest loaded in place after a reboot locked up
#: in its NIC driver's poll loop within the first seconds (soft lockup, panic).
IN_PLACE_DEADLINE = 20.0


@dataclass
class Timeline:
    """Time-stamped lab events of one test (libvirt events and the lab's own actions)."""

    start: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: Called with each event after it is added (the suite's progress status).
    listener: Callable[[str], None] | None = None

    def add(self, what: str) -> None:
        with self._lock:
            self.events.append((time.monotonic() - self.start, what))
        if self.listener is not None:
            self.listener(what)

    def text(self) -> str:
        with self._lock:
            return "".join(f"{t:9.3f}s  {what}\n" for t, what in self.events)


#: what the micro image's /etc/init.d/lab-drivers writes around each boot-time load
BOOT_LOADING, BOOT_LOADED = "lab-drivers: loading ", "lab-drivers: loaded "


def boot_verdict(kind: GuestKind, console: str, exc: LabError) -> LabError:
    """Why a rebooted guest never answered: a panic on the console is the driver's
    crash, a boot-time driver load that never finished its hang, else ``exc`` (the lab)."""
    fatal = kind.fatal_console_line(console)
    if fatal is not None and any(m in fatal for m in kind.panic_markers):
        return DriverCrash(f"driver crashed while the guest booted: {fatal}")
    loading = [line.split(BOOT_LOADING, 1)[1].strip() for line in console.splitlines()
               if BOOT_LOADING in line]
    done = {line.split(BOOT_LOADED, 1)[1].strip() for line in console.splitlines()
            if BOOT_LOADED in line}
    stuck = [name for name in loading if name not in done]
    if stuck:
        return DriverHang(f"driver hung: loading {stuck[-1]} at boot never finished "
                          f"({exc.summary})")
    return exc


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _tail(path: str, offset: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


class Vm:
    """One leased VM: its libvirt domain and its guest over SSH."""

    def __init__(self, inv: inventory.Inventory, entry: inventory.VmEntry,
                 hv: Hypervisor, kind: GuestKind, timeline: Timeline | None = None) -> None:
        self.inv = inv
        self.entry = entry
        self.hv = hv
        self.timeline = timeline or Timeline()
        self.address = GuestAddress.of(inv, entry)
        self.guest = Guest(self.address)
        self.kind = kind
        #: the guest OS behind the interface (adapters, logs, deployments)
        self.handle: GuestHandle = kind.handle(self.guest)
        #: set by the lab_vm fixture's lifecycle watcher on libvirt's crashed event; waits
        #: inside ``lab.wait.crash_watch(vm.crash_seen)`` then raise DriverCrash at once
        self.crash_seen = Abort()
        #: every load run of the test, appended as it finishes (written as evidence even
        #: when the scenario fails afterwards)
        self.loads: list[LoadResult] = []
        self.handle.management_mac = entry.mgmt.mac
        self.handle.oob_sysrq = lambda keys: agent.sysrq(self.hv, self.domain(), keys)

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

    def unplug(self, nic: Nic, deadline: float = UNPLUG_DEADLINE) -> float:
        """Hot-unplug ``nic``; returns seconds until libvirt's device-removed event.

        Raises DriverHang when the removal does not complete in time, DriverFailure
        when libvirt reports the removal failed.
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
            if not wait_event(removed, deadline, f"the removal of {nic.alias}",
                              abort=self.crash_seen):
                self.timeline.add(f"no device-removed for {nic.alias} within {deadline:.0f}s")
                raise DriverHang(
                    f"driver hung: hot-unplug of {nic.alias} ({nic.mac}) on {self.name} did "
                    f"not complete within {deadline:.0f}s (the adapter was never released)")
            if failed:
                raise DriverFailure(f"driver failed: the guest refused the removal of "
                                    f"{nic.alias} ({nic.mac}) on {self.name}")
        finally:
            cancel()
            cancel_failed()
        took = time.monotonic() - t0
        budgets.ADAPTER_GONE.wait(f"{nic.mac} to vanish inside {self.name}",
                                  lambda: True if not self.handle.lists_mac(nic.mac) else None)
        self.timeline.add(f"guest no longer lists {nic.mac}")
        return took

    def replug(self, nic: Nic, deadline: float = REPLUG_DEADLINE) -> None:
        """Hot-plug ``nic`` again (same alias, MAC, network) and wait for its address."""
        self.timeline.add(f"attach {nic.alias} ({nic.model}, {nic.mac})")
        self.hv.attach(self.domain(), domxml.interface_xml(nic))
        wait_for(f"{nic.address} configured on replugged {nic.alias} in {self.name}",
                 lambda: True if self.handle.configured(nic) else None, deadline)
        self.timeline.add(f"guest configured {nic.address} on {nic.mac}")

    def set_link(self, nic: Nic, up: bool) -> None:
        """Link state of a NIC, as `virsh domif-setlink` does."""
        xml = domxml.interface_xml(nic, link="up" if up else "down")
        self.timeline.add(f"link {nic.alias} {'up' if up else 'down'}")
        self.hv.update_device(self.domain(), xml)

    def sleep(self) -> float:
        """Suspend the guest to RAM (its agent or itself, per guest kind); returns seconds
        until libvirt reports it suspended. Past the SUSPEND budget: DriverHang."""
        self.timeline.add("suspend to RAM requested")
        t0 = time.monotonic()
        if self.handle.sleeps_through_agent:
            self.hv.pm_suspend(self.domain())
        else:
            self.handle.start_sleep()
        budgets.SUSPEND.wait(f"{self.name} to reach the sleep state",
                             lambda: True if self.state() == DomainState.PMSUSPENDED else None)
        self.guest.close()  # its session sleeps too; the wake-up reconnects
        self.timeline.add("libvirt reports the guest suspended")
        return time.monotonic() - t0

    def wake(self) -> float:
        """Wake a suspended guest (libvirt pmWakeup); seconds until it answers SSH again."""
        t0 = time.monotonic()
        self.hv.pm_wakeup(self.domain())
        self.timeline.add("wake-up sent")
        budgets.RESUME.wait(f"{self.name} to run and answer SSH after the wake-up",
                            lambda: True if self.state() == DomainState.RUNNING
                            and self.handle.alive() else None)
        self.timeline.add("guest answers SSH after the wake-up")
        return time.monotonic() - t0

    def reboot(self) -> float:
        """Reboot the guest (it shuts down cleanly and boots again, the disk kept);
        seconds until it answers SSH with a new boot. Past the REBOOT budget a lab
        failure -- unless the console since the reboot shows a panic (DriverCrash) or a
        boot-time driver load that never finished (DriverHang)."""
        before = self.handle.boot_id()
        if before is None:
            raise LabFailure(f"{self.name}: not answering, cannot reboot it")
        offset = _size(self.entry.console_log)
        self.timeline.add("reboot requested")
        t0 = time.monotonic()
        self.handle.start_reboot()
        self.guest.close()
        def back() -> str | None:
            if self.crashed():  # pvpanic: no need to wait out the budget
                raise boot_verdict(self.kind, _tail(self.entry.console_log, offset),
                                   DriverCrash(f"driver crashed: {self.name} crashed (pvpanic)"
                                               " while it rebooted"))
            now = self.handle.boot_id()
            return now if now not in (None, before) else None
        try:
            budgets.REBOOT.wait(f"{self.name} to answer SSH after the reboot", back)
        except DeadlineExceeded as exc:
            raise boot_verdict(self.kind, _tail(self.entry.console_log, offset), exc) from None
        self.timeline.add("guest answers SSH with a new boot")
        return time.monotonic() - t0

    def revert(self) -> float:
        """Back to the clean snapshot (running); returns seconds until SSH answers again."""
        self.guest.close()
        t0 = time.monotonic()
        dom = self.domain()
        in_place = fast_revert.revert_in_place(self.hv, dom, self.entry.snapshot)
        if not in_place:
            self.hv.revert_snapshot(dom, self.entry.snapshot)
        self.timeline.add(f"reverted to snapshot {self.entry.snapshot}"
                          + (" (loaded in place)" if in_place else ""))
        if in_place and not self._answers_after_load(IN_PLACE_DEADLINE):
            self.guest.close()
            self.hv.revert_snapshot(self.domain(), self.entry.snapshot)
            self.timeline.add(f"reverted to snapshot {self.entry.snapshot} by libvirt (a new "
                              "QEMU process)")
        wait_for(f"{self.name} to answer SSH after revert",
                 lambda: True if self.handle.alive() else None, REVERT_DEADLINE, interval=0.05,
                 max_interval=0.25)
        return time.monotonic() - t0

    def _answers_after_load(self, deadline: float) -> bool:
        """Whether the guest loaded in place answers SSH within ``deadline`` seconds; when
        it does not (or crashes), the timeline says so and why."""
        def back() -> str | None:
            if self.crashed():
                return "crashed"
            return "answers" if self.handle.alive() else None
        try:
            how = wait_for(f"{self.name} to answer SSH after the in-place load", back,
                           deadline, interval=0.05, max_interval=0.25)
        except DeadlineExceeded:
            self.timeline.add(f"the guest loaded in place did not answer SSH within "
                              f"{deadline:.0f}s: libvirt's revert instead")
            return False
        if how == "crashed":
            self.timeline.add("the guest crashed right after the in-place load: "
                              "libvirt's revert instead")
            return False
        return True

    def agent_alive(self, deadline: float = agent.PING_DEADLINE_S) -> bool:
        """Whether the guest agent answers over virtio-serial (never raises a LabFailure)."""
        try:
            return agent.ping(self.hv, self.domain(), deadline)
        except LabFailure:
            return False

    def judge_lost(self, exc: BaseException | None) -> BaseException | None:
        """``exc`` judged again when the guest's command channel failed: SSH still lost
        but the agent answers -> :class:`NetworkBroken` (the driver's doing); otherwise
        ``exc`` unchanged (the lab lost the guest)."""
        if not isinstance(exc, GuestCommandError) or self.handle.alive():
            return exc
        if not self.agent_alive():
            return exc
        self.timeline.add("SSH lost, guest agent answers: the guest's network is broken")
        broken = NetworkBroken(f"{self.name}: the guest is alive (agent answered) but "
                               f"unreachable on its management network: {exc}")
        broken.__cause__ = exc
        return broken

    def close(self) -> None:
        self.guest.close()
