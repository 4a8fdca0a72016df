"""End to end against real libvirtd + QEMU: up, SSH, idempotence, NIC hot-unplug, down.

Tests in this module run in order and share one lab (module fixture).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from labtier import REPO
from ptyrun import run_in_pty

from lab import host, inventory
from lab.commands import guest_address
from lab.config import LabConfig
from lab.domxml import interface_xml
from lab.guest import Guest, wait_for_ssh
from lab.hypervisor import DomainState, Hypervisor
from lab.netns import exists as netns_exists
from lab.paths import StatePaths
from lab.plan import make_plan
from lab.sandbox import Sandbox
from lab.wait import wait_for
from tests import proctree

LabCli = Callable[..., "subprocess.CompletedProcess[str]"]

pytestmark = pytest.mark.lab


def _inventory(cfg: LabConfig) -> inventory.Inventory:
    return inventory.read(StatePaths(cfg.state_dir).inventory)


def _proc_rss_mib(domain: str) -> int:
    """VmRSS of the QEMU process running ``domain``, from /proc (not through libvirt)."""
    pid = proctree.qemu_pid(domain)
    assert pid is not None, f"no QEMU process runs {domain}"
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("VmRSS:"))) // 1024


def test_up_brings_up_both_vms(running_lab: LabConfig, cli: LabCli) -> None:
    res = cli(running_lab.path, "status")
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"lab {running_lab.lab.name} (config ")  # which lab it read
    head = next(i for i, line in enumerate(lines) if line.split()[:1] == ["VM"])
    assert lines[head].split()[:4] == ["VM", "STATE", "RSS", "MANAGEMENT"]
    rows = {line.split()[0]: line for line in lines[head + 1:] if line.strip()}
    assert set(rows) == {"t1", "t2"}
    assert all(" running " in row for row in rows.values())
    for vm in ("t1", "t2"):  # QEMU's RSS as libvirt reports it vs the process's own
        shown = int(rows[vm].split()[2])
        assert rows[vm].split()[3] == "MiB"
        vm_rss = _proc_rss_mib(f"{running_lab.lab.name}-{vm}")
        assert abs(shown - vm_rss) <= 8 + vm_rss // 10, (vm, shown, vm_rss)
    inv = _inventory(running_lab)
    data = json.loads(StatePaths(running_lab.state_dir).inventory.read_text())
    assert data["vms"][0]["snapshot"] == "clean"
    assert {n.model for n in inv.vm("t1").test_nics} == {"virtio", "vmxnet3"}


def test_ssh_answers_with_the_guest_kernel(running_lab: LabConfig, cli: LabCli) -> None:
    res = cli(running_lab.path, "ssh", "t1", "uname", "-r")
    assert res.returncode == 0
    assert res.stdout.strip().endswith("-amd64")
    res = cli(running_lab.path, "ssh", "t2", "exit", "7")
    assert res.returncode == 7


def test_the_sandbox_libvirtd_runs_on_every_cpu(running_lab: LabConfig) -> None:
    """It starts pinned to the CPU that probed QEMU's cached capabilities (lab.caps_cpu,
    so it trusts the cache) and must get every CPU back once it answers."""
    state = Sandbox().state()
    if state is None:
        pytest.skip("the lab uses a libvirtd the lab did not start")
    ours = os.sched_getaffinity(0)
    tasks = list(Path(f"/proc/{state.libvirtd_pid}/task").iterdir())
    assert tasks and all(os.sched_getaffinity(int(t.name)) == ours for t in tasks)


def test_second_up_changes_nothing(running_lab: LabConfig, cli: LabCli) -> None:
    before = _inventory(running_lab)
    res = cli(running_lab.path, "up")
    assert res.returncode == 0
    assert res.stderr.count("already up") == 2
    assert "created" not in res.stderr.replace("already there", "")
    assert _inventory(running_lab).run == before.run


def _virt_admin(*args: str) -> str:
    res = subprocess.run(["virt-admin", "-c", "libvirtd:///system", *args],
                         capture_output=True, text=True, timeout=30, check=True)
    return res.stdout


def _current(kind: str) -> str:
    """The daemon's current log filters/outputs ('' when none), to put them back."""
    text = _virt_admin(f"daemon-log-{kind}").strip()
    return text.split(":", 1)[1].strip() if ":" in text else ""


def test_a_vm_start_reads_its_cpu_in_a_few_monitor_calls(running_lab: LabConfig) -> None:
    """libvirt 9 would read a new QEMU's CPU with ~400 qom-get calls (one per feature,
    0.4-0.5 s per VM start under TCG); the lab's domains drop the QEMU capability that
    selects that path (lab.domxml.fewer_cpu_queries). Counted in libvirtd's own log of
    the monitor traffic while t2 starts again from its clean snapshot."""
    state = Sandbox().state()
    if state is None:
        pytest.skip("the lab uses a libvirtd the lab did not start")
    log = f"/var/tmp/driver-lab-monitor-{os.getpid()}.log"
    seen = Path(f"/proc/{state.libvirtd_pid}/root{log}")  # its mount namespace's /var/tmp
    filters, outputs = _current("filters"), _current("outputs")
    inv = _inventory(running_lab)
    with host.inside_lab(running_lab), Hypervisor(inv.uri) as hv:
        dom = hv.domain(inv.vm("t2").domain)
        assert dom is not None
        _virt_admin("daemon-log-filters", "--filters", "1:qemu.qemu_monitor 3:*")
        _virt_admin("daemon-log-outputs", "--outputs", f"1:file:{log}")
        try:
            try:
                hv.destroy(dom)
                hv.revert_snapshot(dom, inventory.SNAPSHOT_NAME)  # a new QEMU, -loadvm
            finally:
                _virt_admin("daemon-log-outputs", "--outputs", outputs or "3:stderr")
                _virt_admin("daemon-log-filters", "--filters", filters)
            text = seen.read_text(errors="replace")
        finally:
            seen.unlink(missing_ok=True)  # also when the start failed
        assert hv.state(dom) == DomainState.RUNNING
        sent = [line for line in text.splitlines() if "QEMU_MONITOR_SEND_MSG" in line]
        assert any('"execute":"cont"' in line for line in sent), "no VM start in the log"
        qom_gets = sum('"execute":"qom-get"' in line for line in sent)
        assert qom_gets <= 10, f"{qom_gets} qom-get calls for one VM start"
        wait_for_ssh(guest_address(inv, "t2"), 120, alive=lambda g: g.run("true").ok)


def test_up_on_a_terminal_shows_a_live_row_per_vm(running_lab: LabConfig) -> None:
    """On a terminal `lab up` draws a table, one row per VM with its step (issue 16)."""
    rc, out = run_in_pty([sys.executable, "-m", "lab", "-c", str(running_lab.path), "up"],
                         REPO, timeout=600)
    print(out[-4000:])
    assert rc == 0
    rows = [line.split() for line in out.splitlines()]
    for vm in ("t1", "t2"):
        assert [vm, "up"] in [row[:2] for row in rows], f"no live row for {vm}"
    assert ["2/2", "VMs", "up,"] in [row[:3] for row in rows]
    assert any(row[:3] == ["VM", "step", "for"] for row in rows)


def test_test_nic_hot_unplug_is_seen_in_the_guest(running_lab: LabConfig) -> None:
    inv = _inventory(running_lab)
    vm = inv.vm("t1")
    nic = vm.test_nics[0]
    plan_nic = make_plan(running_lab).vm("t1").test_nics[0]
    removed = threading.Event()
    with host.inside_lab(running_lab), Hypervisor(inv.uri) as hv, \
            Guest(guest_address(inv, "t1")) as guest:
        dom = hv.domain(vm.domain)
        assert dom is not None and hv.state(dom) == DomainState.RUNNING
        assert nic.mac in guest.run("cat /sys/class/net/*/address").stdout
        cancel = hv.watch_device_removed(dom, lambda alias: removed.set()
                                         if alias == nic.alias else None)
        try:
            hv.detach_alias(dom, nic.alias)
            assert removed.wait(60), "libvirt sent no device-removed event within 60s"
        finally:
            cancel()
        assert nic.alias not in {n["alias"] for n in hv.interfaces(dom)}
        wait_for(f"{nic.mac} to vanish inside t1",
                 lambda: True if nic.mac not in guest.run(
                     "cat /sys/class/net/*/address").stdout else None, 30)
        # The management NIC (our SSH path) was never touched, and replug brings it back.
        hv.attach(dom, interface_xml(plan_nic))
        wait_for(f"{nic.address} configured on the replugged NIC",
                 lambda: True if f"inet {nic.address}/" in guest.run(
                     "ip -o -4 addr").stdout else None, 60)


def test_down_leaves_nothing(running_lab: LabConfig, cli: LabCli) -> None:
    res = cli(running_lab.path, "down")
    assert res.returncode == 0, res.stderr
    assert not StatePaths(running_lab.state_dir).inventory.exists()
    for name in ("t1", "t2"):
        assert not Path(f"/etc/libvirt/qemu/dltest-{name}.xml").exists()
    for net in ("mgmt", "test0", "test1"):
        assert not Path(f"/etc/libvirt/qemu/networks/dltest-{net}.xml").exists()
    assert not Path(running_lab.pool_path).exists()
    sandbox = Sandbox()
    if sandbox.running():  # another lab still uses the shared sandbox: ask it directly
        with Hypervisor(running_lab.lab.uri) as hv:
            assert not hv.owned_domains("dltest") and not hv.owned_networks("dltest")
            assert hv.pool("dltest-pool") is None
    else:
        assert not netns_exists(sandbox.netns)
    assert "0 libvirt objects removed" in cli(running_lab.path, "down").stderr
