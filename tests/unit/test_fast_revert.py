"""When the lab may load the clean snapshot into the running QEMU (lab.fast_revert): only
when the live devices are the snapshot's. The XML has the shape of libvirt 9's live
domain XML and of `virsh snapshot-dumpxml` (a <domain> and an <inactiveDomain>)."""

from __future__ import annotations

from lab import fast_revert

NIC = """<interface type='network'>
  <mac address='52:54:00:91:00:0{n}'/>
  <source network='dlbench-test{n}' portid='{port}' bridge='dlbench-t{n}'/>
  <target dev='vnet{vnet}'/>
  <model type='{model}'/>{link}
  <alias name='ua-test{n}'/>
  <address type='pci' domain='0x0000' bus='0x0{bus}' slot='0x00' function='0x0'/>
</interface>"""


def _nic(n: int, model: str = "virtio", bus: int | None = None, link: str = "",
         vnet: int = 249, port: str = "8a2c") -> str:
    return NIC.format(n=n, model=model, bus=bus if bus is not None else n + 4,
                      link=f"\n  <link state='{link}'/>" if link else "", vnet=vnet, port=port)


def _domain(*nics: str, tag: str = "domain", extra: str = "") -> str:
    return (f"<{tag} type='qemu'><name>dlbench-b1</name><devices>"
            "<disk type='file' device='disk'><source file='/pool/b1.qcow2'/>"
            "<target dev='vda' bus='virtio'/></disk>"
            "<controller type='pci' index='0' model='pcie-root'/>"
            f"{''.join(nics)}{extra}</devices></{tag}>")


def _snapshot(*nics: str) -> str:
    return ("<domainsnapshot><name>clean</name><state>running</state>"
            f"{_domain(*nics)}{_domain(*nics, tag='inactiveDomain')}</domainsnapshot>")


def test_the_same_devices_with_new_runtime_names_allow_an_in_place_load() -> None:
    """A restarted QEMU has new tap names and port ids: they do not count."""
    live = _domain(_nic(0, vnet=250, port="aaaa"), _nic(1, "vmxnet3", vnet=251))
    assert fast_revert.same_devices(live, _snapshot(_nic(0), _nic(1, "vmxnet3")))


def test_a_missing_moved_or_changed_nic_needs_libvirts_revert() -> None:
    snap = _snapshot(_nic(0), _nic(1, "vmxnet3"))
    assert not fast_revert.same_devices(_domain(_nic(0)), snap)  # unplugged, not back
    assert not fast_revert.same_devices(_domain(_nic(0), _nic(1, "vmxnet3", bus=9)), snap)
    assert not fast_revert.same_devices(_domain(_nic(0), _nic(1, "e1000e")), snap)


def test_a_link_left_down_needs_libvirts_revert() -> None:
    """loadvm keeps a link set down (it is not guest state); a new QEMU starts it up."""
    snap = _snapshot(_nic(0), _nic(1))
    assert not fast_revert.same_devices(_domain(_nic(0), _nic(1, link="down")), snap)
    assert fast_revert.same_devices(_domain(_nic(0), _nic(1, link="up")), snap)


def test_an_added_controller_or_disk_needs_libvirts_revert() -> None:
    snap = _snapshot(_nic(0))
    assert not fast_revert.same_devices(
        _domain(_nic(0), extra="<controller type='pci' index='9' model='pcie-root-port'/>"),
        snap)
    assert not fast_revert.same_devices(
        _domain(_nic(0), extra="<disk type='file' device='cdrom'><target dev='sda'/></disk>"),
        snap)


def test_a_snapshot_without_its_domain_never_allows_an_in_place_load() -> None:
    assert not fast_revert.same_devices(_domain(_nic(0)), "<domainsnapshot/>")
