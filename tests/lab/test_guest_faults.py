"""Issue 15 against a real lab: per-VM pinned host keys, guests that stop answering or crash,
and `lab up` healing a crashed or paused VM.

"Stops answering" is a real libvirt suspend (the vCPUs stop, TCP is no longer
answered); "crashed" is a real NMI that panics the micro guest (pvpanic, the domain
is kept "crashed"). Tests run in order on the module's lab and leave it running.
"""

from __future__ import annotations

import dataclasses
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from lab import host, inventory
from lab.config import LabConfig
from lab.errors import CommandTimeout, DriverCrash, HostKeyRefused
from lab.guest import Guest, GuestAddress
from lab.hypervisor import DomainState, Hypervisor
from lab.paths import StatePaths
from lab.wait import crash_watch, wait_for

LabCli = Callable[..., "subprocess.CompletedProcess[str]"]
MARGIN = 2.5

pytestmark = pytest.mark.lab


@contextmanager
def _vm(cfg: LabConfig) -> Iterator[tuple[Hypervisor, Any, GuestAddress]]:
    """The lab's first VM: its hypervisor (in the lab's namespace), domain and address."""
    inv = inventory.read(StatePaths(cfg.state_dir).inventory)
    entry = inv.vms[0]
    with host.inside_lab(cfg), Hypervisor(inv.uri) as hv:
        dom = hv.domain(entry.domain)
        assert dom is not None
        yield hv, dom, GuestAddress.of(inv, entry)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_each_vm_has_its_own_pinned_host_key(running_lab: LabConfig) -> None:
    inv = inventory.read(StatePaths(running_lab.state_dir).inventory)
    keys = [vm.host_key for vm in inv.vms]
    assert all(keys) and len(set(keys)) == len(keys) and inv.host_key not in keys
    known = Path(inv.known_hosts).read_text()
    assert all(f"{vm.mgmt.address} {vm.host_key}" in known for vm in inv.vms)
    images = StatePaths(running_lab.state_dir).images / "linux-micro"
    assert _mode(images) == 0o700 and _mode(images / "golden.qcow2") == 0o600
    with _vm(running_lab) as (_hv, _dom, addr):
        with Guest(addr) as guest:
            assert "tmpfs" in guest.run("grep ' /etc/dropbear ' /proc/mounts").stdout
        with pytest.raises(HostKeyRefused, match="not its own pinned key"), \
                Guest(dataclasses.replace(addr, host_key=inv.host_key)) as guest:
            guest.run("true")


def test_a_command_on_a_guest_that_stops_answering_ends_in_time(running_lab: LabConfig) -> None:
    with _vm(running_lab) as (_hv, dom, addr), Guest(addr) as guest:
        guest.run("true")
        timer = threading.Timer(1.0, dom.suspend)
        timer.start()
        try:
            t0 = time.monotonic()
            with pytest.raises(CommandTimeout):
                guest.run("sleep 60", timeout=5)
            assert time.monotonic() - t0 < 5 + MARGIN
        finally:
            timer.join()
            dom.resume()


def test_the_crashed_event_aborts_a_command(running_lab: LabConfig, cli: LabCli) -> None:
    crashed = threading.Event()
    with _vm(running_lab) as (hv, dom, addr), Guest(addr) as guest:
        cancel = hv.watch_lifecycle(dom, lambda event: crashed.set()
                                    if event.crashed else None)
        try:
            guest.run("true")
            with crash_watch(crashed):
                threading.Timer(1.0, dom.injectNMI, (0,)).start()
                t0 = time.monotonic()
                with pytest.raises(DriverCrash):
                    guest.run("sleep 120", timeout=120)
                assert time.monotonic() - t0 < 10
        finally:
            cancel()
        wait_for("the VM to be kept crashed", lambda: True if hv.state(dom) ==
                 DomainState.CRASHED else None, 30)
    res = cli(running_lab.path, "up")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "was crashed: reverted to its clean snapshot" in res.stderr + res.stdout


def test_up_heals_a_paused_vm(running_lab: LabConfig, cli: LabCli) -> None:
    with _vm(running_lab) as (hv, dom, _addr):
        dom.suspend()
        assert hv.state(dom) == DomainState.PAUSED
    res = cli(running_lab.path, "up")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "was paused: reverted to its clean snapshot" in res.stderr + res.stdout
    with _vm(running_lab) as (hv, dom, addr), Guest(addr) as guest:
        assert hv.state(dom) == DomainState.RUNNING
        assert guest.run("echo back").stdout == "back\n"
