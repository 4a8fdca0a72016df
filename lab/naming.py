"""Deterministic names, MAC and IP addresses of everything the lab creates.

Pure functions of the configuration: the same lab.toml always yields the same
objects, so a second `lab up` finds what the first one made instead of guessing.
"""

from __future__ import annotations

import ipaddress
import zlib

#: XML namespace of the lab's metadata element on domains and networks.
METADATA_NS = "urn:x-driver-lab:metadata:1"
METADATA_PREFIX = "dlab"

#: First host number used for VMs in every lab subnet (.1 is the host bridge).
FIRST_VM_HOST = 11

#: Name suffix of the empty volume that marks a storage pool as made by lab ``<lab>``
#: (``<lab>.driver-lab-owner``); `lab down` removes only pools carrying it.
POOL_OWNER_SUFFIX = ".driver-lab-owner"

#: Alias libvirt keeps for the management NIC ("ua-" marks a user alias).
MGMT_ALIAS = "ua-mgmt"

#: TCP port the echo drivers listen on (the `port`/`Port` parameter of
#: drivers/wskecho/driver.toml); the scenarios connect to it, images open it.
ECHO_PORT = 7007


def domain_name(lab: str, vm: str) -> str:
    return f"{lab}-{vm}"


def mgmt_network(lab: str) -> str:
    return f"{lab}-mgmt"


def test_network(lab: str, slot: int) -> str:
    return f"{lab}-test{slot}"


def mgmt_bridge(lab: str) -> str:
    return f"{lab}-m"


def test_bridge(lab: str, slot: int) -> str:
    return f"{lab}-t{slot}"


def pool_name(lab: str) -> str:
    return f"{lab}-pool"


def test_alias(slot: int) -> str:
    """libvirt user alias of test NIC ``slot`` (stable across unplug/replug)."""
    return f"ua-test{slot}"


#: The name the lab's template (lab.template) goes by where a VM's would: its console
#: log, its domain suffix, its identity media. '_' is in no VM's name.
TEMPLATE_VM = "_template"


def overlay_volume(vm: str) -> str:
    return f"{vm}.qcow2"


def lab_byte(lab: str) -> int:
    """One byte that tells labs apart in MAC addresses."""
    return zlib.crc32(lab.encode()) & 0xFF


def mac_address(lab: str, vm_index: int, nic_index: int) -> str:
    """MAC of NIC ``nic_index`` (0 = management, 1.. = test NICs) of VM ``vm_index``.

    52:54:00 is QEMU's locally administered prefix; then the lab byte, the VM
    index and the NIC index, so a MAC read in a guest log names its VM and NIC.
    """
    if not 0 <= vm_index < 256 or not 0 <= nic_index < 256:
        raise ValueError("VM and NIC indexes must fit one byte")
    return f"52:54:00:{lab_byte(lab):02x}:{vm_index:02x}:{nic_index:02x}"


def host_address(subnet: str) -> ipaddress.IPv4Interface:
    """The host side of a lab network: the first address of the subnet."""
    net = ipaddress.IPv4Network(subnet)
    return ipaddress.IPv4Interface(f"{net.network_address + 1}/{net.prefixlen}")


def vm_address(subnet: str, vm_index: int) -> ipaddress.IPv4Interface:
    """Address of VM ``vm_index`` on a lab network."""
    net = ipaddress.IPv4Network(subnet)
    addr = net.network_address + FIRST_VM_HOST + vm_index
    if addr not in net or addr == net.broadcast_address:
        raise ValueError(f"VM index {vm_index} does not fit in {subnet}")
    return ipaddress.IPv4Interface(f"{addr}/{net.prefixlen}")
