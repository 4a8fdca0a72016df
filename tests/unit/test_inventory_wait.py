"""Inventory round trip and atomic write; waits that name what they waited for."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from lab import inventory
from lab.config import parse_config
from lab.errors import DeadlineExceeded, LabFailure
from lab.plan import make_plan
from lab.wait import wait_for


def _inventory() -> inventory.Inventory:
    plan = make_plan(parse_config({}, Path("/x/lab.toml")))
    vms = tuple(inventory.vm_entry(vm, f"/c/{vm.name}.log") for vm in plan.vms)
    return inventory.Inventory(lab="dlab", run="r1", uri="qemu:///system", netns="driverlab",
                               acceleration="tcg", key_file="/k", host_key="ssh-ed25519 AAA",
                               known_hosts="/kh", management_subnet="192.168.213.0/24", vms=vms)


def test_round_trip(tmp_path: Path) -> None:
    inv = _inventory()
    path = tmp_path / "inventory.json"
    inventory.write(path, inv)
    assert inventory.read(path) == inv
    assert not list(tmp_path.glob(".*tmp"))
    vm1 = inv.vm("vm1")
    assert vm1.mgmt.role == "management" and len(vm1.test_nics) == 2


def test_unknown_vm_lists_known_ones() -> None:
    with pytest.raises(LabFailure, match="known VMs: vm1, vm2, vm3, vm4"):
        _inventory().vm("vm9")


def test_missing_and_corrupt_inventory(tmp_path: Path) -> None:
    with pytest.raises(LabFailure, match="not up"):
        inventory.read(tmp_path / "inventory.json")
    (tmp_path / "inventory.json").write_text("{")
    with pytest.raises(LabFailure, match="not a valid inventory"):
        inventory.read(tmp_path / "inventory.json")


def test_known_hosts_pins_each_management_address() -> None:
    inv = _inventory()
    text = inventory.known_hosts_text(inv.vms, inv.host_key)
    assert text.splitlines()[0] == "192.168.213.11 ssh-ed25519 AAA"


def test_wait_returns_first_value() -> None:
    counter = itertools.count()
    assert wait_for("three calls", lambda: 3 if next(counter) >= 2 else None, 5,
                    interval=0.01) == 3


def test_wait_deadline_names_what_and_last_seen() -> None:
    with pytest.raises(DeadlineExceeded) as info:
        wait_for("the moon", lambda: None, 0.2, interval=0.05, last_seen=lambda: "clouds")
    assert "waiting for the moon" in str(info.value)
    assert "clouds" in str(info.value)
