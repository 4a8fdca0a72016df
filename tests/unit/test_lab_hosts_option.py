"""pytest's --lab-hosts: lease only VMs of the named hypervisor hosts.

The selection (lab.host_connections.on_hosts) on an inventory of VMs on two hosts, and
the plugin's answer to a host the lab does not have, through a real pytest run on a
copied lab.toml with an inventory in its state directory (no libvirt is reached: the
pool is chosen before any connection).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from make_targets import ROOT

from lab import inventory
from lab.config import parse_config
from lab.errors import LabFailure
from lab.host_connections import on_hosts
from lab.plan import make_plan


def _two_host_inventory() -> inventory.Inventory:
    plan = make_plan(parse_config({}, Path("/x/lab.toml")))
    vms = tuple(inventory.vm_entry(vm, f"/c/{vm.name}.log") for vm in plan.vms)
    vms = tuple(dataclasses.replace(vm, host="host2") if vm.name in ("vm3", "vm4") else vm
                for vm in vms)
    return inventory.Inventory(lab="dlab", run="r1", uri="qemu:///system", netns="driverlab",
                               acceleration="tcg", key_file="/k", host_key="ssh-ed25519 AAA",
                               known_hosts="/kh", management_subnet="192.168.213.0/24", vms=vms)


def test_only_the_named_hosts_vms_are_leasable() -> None:
    vms = _two_host_inventory().vms
    assert [vm.name for vm in on_hosts(vms, "host2", "dlab")] == ["vm3", "vm4"]
    assert [vm.name for vm in on_hosts(vms, "local", "dlab")] == ["vm1", "vm2"]
    assert len(on_hosts(vms, " host2 , local", "dlab")) == 4


@pytest.mark.parametrize("wanted", ["host3", "host2,host3", ",", ""])
def test_a_host_the_lab_does_not_have_names_its_hosts(wanted: str) -> None:
    with pytest.raises(LabFailure) as info:
        on_hosts(_two_host_inventory().vms, wanted, "dlab")
    assert info.value.summary.endswith("its hosts: host2, local")
    assert "\n" not in info.value.summary


def test_the_plugin_fails_a_scenario_with_one_line_for_an_unknown_host(tmp_path: Path) -> None:
    config = tmp_path / "lab.toml"
    shutil.copyfile(ROOT / "lab.toml", config)
    inventory.write(tmp_path / "var" / "inventory.json", _two_host_inventory())
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-p", "no:xdist",
         str(ROOT / "tests" / "scenarios" / "test_scenarios.py"), "-k", "test_unload and idle",
         "--lab-config", str(config), "--lab-hosts", "host9", f"--lab-run-dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 1, res.stdout[-2000:]
    assert (f"--lab-hosts 'host9': lab dlab ({config}) has no VM on host host9; its hosts: "
            "host2, local") in res.stdout
    assert "Traceback" not in res.stdout + res.stderr
