"""Names, MACs and addresses: deterministic, unique, inside their subnets."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from lab import naming
from lab.config import parse_config
from lab.plan import make_plan


def test_macs_are_unique_and_deterministic() -> None:
    cfg = parse_config({"vms": {"names": [f"vm{i}" for i in range(1, 9)]}}, Path("/x/lab.toml"))
    plan = make_plan(cfg)
    macs = [nic.mac for vm in plan.vms for nic in vm.nics]
    assert len(set(macs)) == len(macs)
    assert macs == [nic.mac for vm in make_plan(cfg).vms for nic in vm.nics]
    assert all(m.startswith("52:54:00:") for m in macs)


def test_labs_get_different_macs() -> None:
    assert naming.mac_address("dlab", 0, 1) != naming.mac_address("other", 0, 1)


def test_addresses_sit_in_their_networks() -> None:
    plan = make_plan(parse_config({}, Path("/x/lab.toml")))
    by_name = {n.name: n for n in plan.networks}
    for vm in plan.vms:
        for nic in vm.nics:
            net = by_name[nic.network]
            subnet = ipaddress.ip_network(f"{net.host_ip}/{net.prefix}", strict=False)
            assert ipaddress.ip_address(nic.address) in subnet
            assert nic.address != net.host_ip
    assert [n.role for n in plan.networks] == ["management", "test0", "test1"]


def test_bridge_names_fit_linux_limit() -> None:
    lab = "abcdefghij"  # the longest lab name the config accepts
    assert len(naming.test_bridge(lab, 9)) <= 15
    assert len(naming.mgmt_bridge(lab)) <= 15


def test_one_test_network_per_nic_slot() -> None:
    plan = make_plan(parse_config({"vms": {"test_nics": ["virtio"]}}, Path("/x/lab.toml")))
    assert len(plan.networks) == 2
    assert all(len(vm.test_nics) == 1 for vm in plan.vms)
