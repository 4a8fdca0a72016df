"""VMs made from the lab's template (lab.template, lab.clone), on a real lab: each one
is its own (name, host key, addresses, clock), reverts load in place when they may
(lab.fast_revert), and a broken template falls back to a boot. Its own lab (dltpl,
192.168.212-214.x, var/test-template) with a cold template."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labtier import REPO, lab_cli, require_lab_host, seed_cache

from lab import fast_revert, host, inventory, template
from lab import vm as vm_module
from lab.config import LabConfig, load_config
from lab.guest import Guest, GuestAddress
from lab.guests import guest_kind
from lab.hypervisor import DomainState, Hypervisor
from lab.paths import StatePaths
from lab.vm import Vm
from lab.wait import wait_for

STATE = REPO / "var" / "test-template"
TOML = """\
[lab]
name = "dltpl"
state_dir = "."

[image]
kernel_package = "linux-image-amd64"  # the cloud kernel has no e1000e

[network]
management = "192.168.212.0/24"
test = ["192.168.213.0/24", "192.168.214.0/24"]

[vms]
names = ["p1", "p2"]
test_nics = ["e1000e", "vmxnet3"]
boot_timeout_s = 300
"""


@pytest.fixture(scope="module")
def cold_up() -> Iterator[tuple[LabConfig, str]]:
    """`lab up` with an empty template cache (so the template is built), its output;
    `lab down` afterwards whatever happened."""
    require_lab_host()
    STATE.mkdir(parents=True, exist_ok=True)
    seed_cache(STATE, REPO / "var" / "cache", REPO / "var" / "test-kernel-drivers" / "cache")
    (STATE / "lab.toml").write_text(TOML)
    config = load_config(STATE / "lab.toml")
    lab_cli(config.path, "down")
    shutil.rmtree(template.TemplateCache(config.state_dir).root, ignore_errors=True)
    res = lab_cli(config.path, "up")
    try:
        assert res.returncode == 0, f"lab up failed:\n{res.stderr[-3000:]}"
        yield config, res.stderr
    finally:
        lab_cli(config.path, "down")


def _guest(config: LabConfig, vm: str) -> Guest:
    inv = inventory.read(StatePaths(config.state_dir).inventory)
    return Guest(GuestAddress.of(inv, inv.vm(vm)))


def test_every_vm_is_restored_from_a_template_built_in_the_same_run(
        cold_up: tuple[LabConfig, str]) -> None:
    _config, log = cold_up
    assert "template: booting (no NICs, no identity)" in log
    assert "cached for the next `lab up`" in log
    for vm in ("p1", "p2"):
        assert f"{vm}: restored from the template:" in log, f"{vm} was not restored"
    assert "booting instead" not in log


def test_each_restored_vm_has_its_own_name_addresses_and_clock(
        cold_up: tuple[LabConfig, str]) -> None:
    """Connecting at all proves the host key: Guest accepts only the VM's pinned key."""
    config, _log = cold_up
    inv = inventory.read(StatePaths(config.state_dir).inventory)
    keys = set()
    with host.inside_lab(config):
        for entry in inv.vms:
            with _guest(config, entry.name) as guest:
                assert guest.run("hostname").stdout.strip() == entry.name
                addrs = guest.run("ip -o -4 addr").stdout
                for nic in (entry.mgmt, *entry.test_nics):
                    assert f"inet {nic.address}/" in addrs, f"{entry.name}: {nic.address}"
                guest_clock = int(guest.run("date +%s").stdout.strip())
                assert abs(guest_clock - time.time()) < 30
            keys.add(entry.host_key)
    assert len(keys) == 2 and inv.host_key not in keys  # own keys, not the image's


def _vm(config: LabConfig, hv: Hypervisor, name: str) -> Vm:
    inv = inventory.read(StatePaths(config.state_dir).inventory)
    return Vm(inv, inv.vm(name), hv, guest_kind(config))


def test_an_in_place_revert_restores_memory_and_disk(cold_up: tuple[LabConfig, str]) -> None:
    """lab.fast_revert: the clean snapshot loaded into the running QEMU (same devices)."""
    config, _log = cold_up
    with host.inside_lab(config), Hypervisor(config.lab.uri) as hv:
        vm = _vm(config, hv, "p1")
        try:
            vm.guest.run("echo x > /tmp/in-ram; echo x > /root/on-disk; sync")
            vm.revert()
            assert "(loaded in place)" in vm.timeline.events[-1][1]
            left = vm.guest.run("ls /tmp/in-ram /root/on-disk 2>&1; hostname").stdout
            assert "No such file" in left and left.count("No such file") == 2, left
            assert left.strip().endswith("p1")
        finally:
            vm.guest.close()


def test_every_nic_has_carrier_right_after_a_revert(cold_up: tuple[LabConfig, str]) -> None:
    """The clean snapshot was taken with every NIC settled (lab.settle): an e1000e that
    negotiates its link about 2 s after it is up would otherwise replay that wait at each
    revert, and a test's first L2 probe would find no carrier. Read without waiting,
    from iproute2's own view (LOWER_UP), not through lab.settle."""
    config, _log = cold_up
    with host.inside_lab(config), Hypervisor(config.lab.uri) as hv:
        for name in ("p1", "p2"):
            vm = _vm(config, hv, name)
            try:
                vm.revert()
                links = vm.guest.run("ip -o link").stdout
                for nic in vm.entry.test_nics:
                    line = next((ln for ln in links.splitlines() if nic.mac in ln), "")
                    flags = line.split("<", 1)[-1].split(">", 1)[0].split(",")
                    assert "LOWER_UP" in flags, f"{name} {nic.alias} ({nic.model}): {line}"
            finally:
                vm.guest.close()


def test_a_revert_after_an_unplug_goes_through_libvirt(cold_up: tuple[LabConfig, str]) -> None:
    """A NIC unplugged and not put back: the devices differ, libvirt's revert (a new QEMU)
    brings the NIC back."""
    config, _log = cold_up
    with host.inside_lab(config), Hypervisor(config.lab.uri) as hv:
        vm = _vm(config, hv, "p1")
        nic = vm.entry.test_nics[0]
        try:
            gone = threading.Event()
            cancel = hv.watch_device_removed(vm.domain(), lambda alias: gone.set())
            try:
                hv.detach_alias(vm.domain(), nic.alias)
                assert gone.wait(60), "no device-removed event"
            finally:
                cancel()
            vm.revert()
            assert "(loaded in place)" not in vm.timeline.events[-1][1]
            assert nic.alias in {n["alias"] for n in hv.interfaces(vm.domain())}
            assert f"inet {nic.address}/" in vm.guest.run("ip -o -4 addr").stdout
        finally:
            vm.guest.close()


@pytest.mark.parametrize("how", ["crashes", "stops answering"])
def test_a_guest_that_does_not_come_back_from_an_in_place_load_gets_libvirts_revert(
        cold_up: tuple[LabConfig, str], monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """Right after the in-place load the guest really panics (an NMI, which it is booted
    to panic on: pvpanic, libvirt's crashed state) or is paused (SSH never answers): the
    revert must not hand that guest to a test; libvirt's revert (a new QEMU) brings the
    clean state."""
    config, _log = cold_up
    real = fast_revert.revert_in_place

    def load_then_break(hv: Hypervisor, dom: object, name: str) -> bool:
        loaded = real(hv, dom, name)
        assert loaded, "the in-place load was not taken: nothing to fall back from"
        if how == "crashes":  # booted with unknown_nmi_panic: the guest kernel panics
            hv.inject_nmi(dom)
            wait_for("the guest's panic (pvpanic)",
                     lambda: True if hv.state(dom) == DomainState.CRASHED else None, 30)
        else:
            dom.suspend()  # type: ignore[attr-defined]
        return loaded

    monkeypatch.setattr(fast_revert, "revert_in_place", load_then_break)
    monkeypatch.setattr(vm_module, "IN_PLACE_DEADLINE", 5.0)
    with host.inside_lab(config), Hypervisor(config.lab.uri) as hv:
        vm = _vm(config, hv, "p1")
        try:
            vm.revert()
            said = [text for _t, text in vm.timeline.events]
            expected = ("the guest crashed right after the in-place load" if how == "crashes"
                        else "the guest loaded in place did not answer SSH within 5s")
            assert any(text.startswith(expected) for text in said), said
            assert said[-1] == "reverted to snapshot clean by libvirt (a new QEMU process)"
            assert not vm.crashed()
            assert vm.guest.run("hostname").stdout.strip() == "p1"
        finally:
            vm.guest.close()


def test_a_template_without_its_saved_state_falls_back_to_a_boot(
        cold_up: tuple[LabConfig, str]) -> None:
    """p2 is removed and the cached template (each VM's overlay is copied from it) loses
    its saved state (the internal snapshot): `lab up` must say the restore failed and
    boot p2 instead."""
    config, _log = cold_up
    inv = inventory.read(StatePaths(config.state_dir).inventory)
    with Hypervisor(inv.uri) as hv:
        dom = hv.domain(inv.vm("p2").domain)
        assert dom is not None
        hv.remove_domain(dom)
    volume = next(template.TemplateCache(config.state_dir).root.glob("*.qcow2"))
    subprocess.run(["qemu-img", "snapshot", "-d", template.SNAPSHOT, str(volume)],
                   check=True, timeout=60)
    res = lab_cli(config.path, "up")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "p2: restore from the template failed" in res.stderr
    assert "booting instead" in res.stderr
    assert "p2: SSH answers after" in res.stderr
    assert "p1: " in res.stderr and "already up" in res.stderr
    with host.inside_lab(config), _guest(config, "p2") as guest:
        assert guest.run("hostname").stdout.strip() == "p2"


def test_down_removes_the_pool_template_and_keeps_the_cache(
        cold_up: tuple[LabConfig, str]) -> None:
    config, _log = cold_up
    res = lab_cli(config.path, "down")
    assert res.returncode == 0, res.stderr
    assert "kept" not in res.stderr.replace("sandbox libvirtd kept", "")
    assert not Path(config.pool_path).exists()
    assert list(template.TemplateCache(config.state_dir).root.glob("*.json"))
