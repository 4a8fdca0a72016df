"""Host-side senders refuse targets whose traffic would leave the lab (real route lookups).

The kernel's own answer (``ip route get``) in this process's namespace decides:
loopback stands in for a lab bridge (its subnet is "the lab network" of a test
inventory), the host's default route for "outside".
"""

from __future__ import annotations

import pytest

from lab import route_guard
from lab.errors import OutsideLab
from lab.inventory import Inventory, VmEntry
from lab.plan import Nic


def _inventory(netns: str | None = None) -> Inventory:
    nics = (Nic(alias="ua-mgmt", role="management", mac="52:54:00:01:01:00", model="virtio",
                network="t-mgmt", bridge="lo", address="127.0.0.2", prefix=8),
            Nic(alias="ua-test0", role="test", mac="52:54:00:01:01:01", model="virtio",
                network="t-test0", bridge="t-nonexistent0", address="10.251.7.11", prefix=24))
    vm = VmEntry(name="vm1", domain="t-vm1", snapshot="clean", console_log="", nics=nics)
    return Inventory(lab="t", run="r", uri="qemu:///system", netns=netns, acceleration="tcg",
                     key_file="k", host_key="ssh-ed25519 AAAA", known_hosts="kh",
                     management_subnet="127.0.0.0/8", vms=(vm,))


def test_a_target_routed_through_its_lab_bridge_passes() -> None:
    route_guard.require_route("127.0.0.2", "lo", "probe")
    route_guard.require_lab_target(_inventory(), "127.0.0.2", "load")


def test_a_target_routed_elsewhere_is_refused() -> None:
    with pytest.raises(OutsideLab, match="not the lab bridge lo"):
        route_guard.require_route("192.0.2.77", "lo", "probe")


def test_a_missing_bridge_is_refused() -> None:
    with pytest.raises(OutsideLab, match="not in this network namespace"):
        route_guard.require_route("10.251.7.11", "t-nonexistent0", "probe")
    with pytest.raises(OutsideLab):
        route_guard.require_lab_target(_inventory(), "10.251.7.11", "load")


def test_an_address_on_no_lab_network_is_refused() -> None:
    with pytest.raises(OutsideLab, match="none of lab t's networks"):
        route_guard.require_lab_target(_inventory(), "192.0.2.77", "load")
    with pytest.raises(OutsideLab, match="not an IP address"):
        route_guard.require_lab_target(_inventory(), "example.com", "load")


def test_outside_the_labs_namespace_is_refused() -> None:
    # The inventory says the lab lives in a namespace this process is not in (after a
    # host reboot it does not even exist): nothing is sent, whatever the address.
    with pytest.raises(OutsideLab, match="not in the lab's network namespace"):
        route_guard.require_lab_target(_inventory(netns="t-no-such-netns"), "127.0.0.2", "ssh")


def test_loopback_load_targets_need_no_lab() -> None:
    route_guard.require_load_targets(None, [("127.0.0.1", None), ("::1", None)])
