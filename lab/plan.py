"""The lab's intended shape, computed from the configuration (pure, no I/O).

`lab up` turns a :class:`LabPlan` into libvirt objects; `lab status` and the
inventory describe the same plan, so there is one source of names and addresses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lab import naming
from lab.config import LabConfig, Machine


@dataclass(frozen=True)
class DhcpHost:
    """A fixed DHCP lease (for guests that use DHCP, e.g. Windows)."""

    mac: str
    name: str
    ip: str


@dataclass(frozen=True)
class NetworkSpec:
    """An isolated libvirt network: a bridge with the host's address, no forwarding."""

    name: str
    bridge: str
    host_ip: str
    prefix: int
    role: str  # "management" or "test<N>"
    hosts: tuple[DhcpHost, ...]


@dataclass(frozen=True)
class Nic:
    """One virtual NIC of a VM: the same value from the plan to the inventory and replug."""

    alias: str  #: libvirt user alias ("ua-mgmt", "ua-test0", ...)
    role: str  #: "management" or "test"
    mac: str  #: 52:54:00:<lab>:<vm>:<nic>
    model: str  #: QEMU model (virtio, e1000e, ...)
    network: str  #: libvirt network name
    bridge: str  #: host bridge of that network
    address: str  #: the VM's IPv4 address on it
    prefix: int  #: its prefix length

    @property
    def ip(self) -> str:
        """Address with prefix, e.g. 192.168.213.11/24."""
        return f"{self.address}/{self.prefix}"


@dataclass(frozen=True)
class VmSpec:
    """Everything needed to build one VM's domain XML."""

    name: str  # the lab's short name (vm1)
    index: int
    domain: str  # libvirt domain name (dlab-vm1)
    memory_mib: int
    vcpus: int
    machine: Machine
    hotplug_slots: int
    mgmt: Nic
    test_nics: tuple[Nic, ...]
    #: the hypervisor host that runs it ([[hosts]] name; "local": [lab] uri)
    host: str = "local"

    @property
    def nics(self) -> tuple[Nic, ...]:
        return (self.mgmt, *self.test_nics)


@dataclass(frozen=True)
class LabPlan:
    """All networks and VMs of one lab."""

    lab: str
    networks: tuple[NetworkSpec, ...]
    vms: tuple[VmSpec, ...]

    def vm(self, name: str) -> VmSpec:
        for vm in self.vms:
            if vm.name == name:
                return vm
        raise KeyError(name)

    @property
    def hosts(self) -> tuple[str, ...]:
        """The hosts that run VMs of the lab, local first, each once."""
        return tuple(dict.fromkeys(["local", *(vm.host for vm in self.vms)]))

    def on_host(self, host: str) -> LabPlan:
        """The part of the lab one host runs: its VMs, and every network (each host has
        its own, isolated copy) with the DHCP entries of its VMs only."""
        macs = {nic.mac for vm in self.vms if vm.host == host for nic in vm.nics}
        nets = tuple(replace(n, hosts=tuple(h for h in n.hosts if h.mac in macs))
                     for n in self.networks)
        return LabPlan(lab=self.lab, networks=nets,
                       vms=tuple(vm for vm in self.vms if vm.host == host))


def make_plan(config: LabConfig) -> LabPlan:
    lab = config.lab.name
    where = {vm: host.name for host in config.hosts for vm in host.vms}
    vms = tuple(replace(_vm_spec(config, i, name), host=where.get(name, "local"))
                for i, name in enumerate(config.vms.names))
    networks = [_network(naming.mgmt_network(lab), naming.mgmt_bridge(lab),
                         config.network.management, "management",
                         tuple(DhcpHost(vm.mgmt.mac, vm.name, vm.mgmt.address) for vm in vms))]
    for slot in range(len(config.vms.test_nics)):
        hosts = tuple(DhcpHost(vm.test_nics[slot].mac, vm.name, vm.test_nics[slot].address)
                      for vm in vms)
        networks.append(_network(naming.test_network(lab, slot), naming.test_bridge(lab, slot),
                                 config.network.test[slot], f"test{slot}", hosts))
    return LabPlan(lab=lab, networks=tuple(networks), vms=vms)


def _network(name: str, bridge: str, subnet: str, role: str,
             hosts: tuple[DhcpHost, ...]) -> NetworkSpec:
    host = naming.host_address(subnet)
    return NetworkSpec(name=name, bridge=bridge, host_ip=str(host.ip),
                       prefix=host.network.prefixlen, role=role, hosts=hosts)


def _nic(alias: str, role: str, mac: str, model: str, network: str, bridge: str,
         subnet: str, index: int) -> Nic:
    addr = naming.vm_address(subnet, index)
    return Nic(alias=alias, role=role, mac=mac, model=model, network=network, bridge=bridge,
               address=str(addr.ip), prefix=addr.network.prefixlen)


def _vm_spec(config: LabConfig, index: int, name: str) -> VmSpec:
    from lab.guests import kind_class

    lab = config.lab.name
    mgmt = _nic(naming.MGMT_ALIAS, "management", naming.mac_address(lab, index, 0),
                kind_class(str(config.image.kind)).management_nic, naming.mgmt_network(lab),
                naming.mgmt_bridge(lab), config.network.management, index)
    tests = tuple(
        _nic(naming.test_alias(slot), "test", naming.mac_address(lab, index, slot + 1), model,
             naming.test_network(lab, slot), naming.test_bridge(lab, slot),
             config.network.test[slot], index)
        for slot, model in enumerate(config.vms.test_nics)
    )
    return VmSpec(name=name, index=index, domain=naming.domain_name(lab, name),
                  memory_mib=config.vms.memory_mib, vcpus=config.vms.vcpus,
                  machine=config.vms.machine, hotplug_slots=config.vms.hotplug_slots,
                  mgmt=mgmt, test_nics=tests)
