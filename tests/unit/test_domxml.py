"""Domain/network/volume XML: golden files, and libvirt's own RNG schemas.

Regenerate the golden files after an intended change with
`UPDATE_GOLDEN=1 pytest tests/unit/test_domxml.py` and review the diff.
"""

from __future__ import annotations

import dataclasses
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from golden_files import check_golden

from lab import domxml
from lab.config import parse_config
from lab.guests.base import BootChoices
from lab.guests.linux_micro import micro_cmdline
from lab.plan import LabPlan, make_plan

OWNER = domxml.Ownership(lab="dlab", run="20260101-000000-abcd", vm="vm1")


def _plan(**vms: object) -> LabPlan:
    raw: dict[str, object] = {"vms": vms} if vms else {}
    return make_plan(parse_config(raw, Path("/nonexistent/lab.toml")))


def _boot(plan: LabPlan) -> domxml.BootSpec:
    vm = plan.vms[0]
    return domxml.BootSpec(disk_path="/pool/vm1.qcow2", console_log="/var/consoles/vm1.log",
                           kernel="/pool/kernel-x", initrd="/pool/initrd-x",
                           cmdline=micro_cmdline(vm))


def _documents() -> dict[str, str]:
    plan = _plan()
    pc_plan = _plan(machine="pc", test_nics=["e1000e"])
    return {
        "network-mgmt.xml": domxml.network_xml(plan.networks[0], domxml.Ownership("dlab", "r")),
        "network-test0.xml": domxml.network_xml(plan.networks[1], domxml.Ownership("dlab", "r")),
        "domain-q35.xml": domxml.domain_xml(plan.vms[0], _boot(plan), OWNER, "qemu"),
        "domain-pc-kvm.xml": domxml.domain_xml(pc_plan.vms[0], _boot(pc_plan), OWNER, "kvm"),
        "interface-test0.xml": domxml.interface_xml(plan.vms[0].test_nics[0]),
        "pool.xml": domxml.pool_xml("dlab-pool", "/var/lib/libvirt/images/dlab"),
        "volume-overlay.xml": domxml.volume_xml("vm1.qcow2", 512 << 20, "qcow2",
                                                backing="/pool/golden-x.qcow2"),
        "snapshot.xml": domxml.snapshot_xml("clean", OWNER),
        # the lab's template and the VMs restored from it (lab.template, lab.clone)
        "domain-q35-nicless.xml": domxml.domain_xml(plan.vms[0], _nicless(plan), OWNER, "qemu"),
        "snapshot-restore.xml": domxml.restore_snapshot_xml(
            "lab-template", domxml.domain_xml(plan.vms[0], _nicless(plan), OWNER, "qemu"),
            1796200000),
    }


def _nicless(plan: LabPlan) -> domxml.BootSpec:
    return dataclasses.replace(_boot(plan), nics_at_boot=False)


@pytest.mark.parametrize("name", sorted(_documents()))
def test_matches_golden_file(name: str) -> None:
    check_golden(name, _documents()[name])


SCHEMAS = {"network-": "network", "domain-": "domain", "pool": "storagepool",
           "volume-": "storagevol", "snapshot": "domainsnapshot"}


@pytest.mark.parametrize("name", sorted(n for n in _documents() if not n.startswith("interface")))
def test_valid_against_libvirt_schema(name: str, tmp_path: Path) -> None:
    schema = next(s for prefix, s in SCHEMAS.items() if name.startswith(prefix))
    doc = tmp_path / name
    doc.write_text(_documents()[name])
    res = subprocess.run(["virt-xml-validate", str(doc), schema], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr + res.stdout


def test_q35_has_spare_root_ports_and_lab_metadata() -> None:
    plan = _plan(hotplug_slots=3)
    xml = domxml.domain_xml(plan.vms[0], _boot(plan), OWNER, "qemu")
    assert xml.count('model="pcie-root-port"') == 3
    assert 'xmlns:dlab="urn:x-driver-lab:metadata:1"' in xml
    assert "<dlab:run>20260101-000000-abcd</dlab:run>" in xml


def test_network_is_isolated() -> None:
    xml = domxml.network_xml(_plan().networks[0], domxml.Ownership("dlab", "r"))
    assert "<forward" not in xml
    assert xml.count("<host ") == 4


def test_cmdline_maps_every_mac_to_its_address() -> None:
    vm = _plan().vms[1]
    line = micro_cmdline(vm)
    for nic in vm.nics:
        assert f"{nic.mac}={nic.ip}" in line


def test_micro_domain_has_the_nmi_watchdog_on_bus_0() -> None:
    """The i6300esb injects an NMI on expiry and sits on bus 0, so no root port is taken."""
    plan = _plan()
    dev = ET.fromstring(domxml.domain_xml(plan.vms[0], _boot(plan), OWNER, "qemu")).find(
        "devices")
    assert dev is not None
    wdt = dev.find("watchdog")
    assert wdt is not None and wdt.attrib == {"model": "i6300esb", "action": "inject-nmi"}
    addr = wdt.find("address")
    assert addr is not None and addr.get("bus") == "0x00"
    assert "unknown_nmi_panic" in micro_cmdline(plan.vms[0]).split()


def test_a_nicless_domain_keeps_a_port_per_nic_and_a_bridge_for_pci_nics() -> None:
    """A VM restored from the template gets its NICs by hot-plug: one more empty root
    port per NIC, and the pcie-to-pci-bridge a conventional PCI NIC (vmxnet3) needs,
    which a hot-plug cannot add."""
    plan = _plan(hotplug_slots=2, test_nics=["virtio", "vmxnet3"])
    booted = domxml.domain_xml(plan.vms[0], _boot(plan), OWNER, "qemu")
    nicless = domxml.domain_xml(plan.vms[0], _nicless(plan), OWNER, "qemu")
    assert booted.count("<interface ") == 3 and "<interface " not in nicless
    assert booted.count('model="pcie-root-port"') == 2
    assert nicless.count('model="pcie-root-port"') == 2 + 3
    assert 'model="pcie-to-pci-bridge"' in nicless and "pcie-to-pci-bridge" not in booted
    virtio_only = _plan(test_nics=["virtio", "e1000e"])
    assert "pcie-to-pci-bridge" not in domxml.domain_xml(
        virtio_only.vms[0], _nicless(virtio_only), OWNER, "qemu")


def test_the_restore_snapshot_names_the_vms_own_domain_and_every_disk() -> None:
    plan = _plan()
    dom = domxml.domain_xml(plan.vms[1], _nicless(plan), OWNER, "qemu")
    snap = ET.fromstring(domxml.restore_snapshot_xml("lab-template", dom, 1796200000))
    assert snap.findtext("name") == "lab-template" and snap.findtext("state") == "running"
    assert snap.findtext("creationTime") == "1796200000"
    memory = snap.find("memory")
    assert memory is not None and memory.get("snapshot") == "internal"
    assert [(d.get("name"), d.get("snapshot")) for d in snap.iterfind("disks/disk")] == [
        ("vda", "internal")]
    assert snap.findtext("domain/name") == plan.vms[1].domain


def test_micro_domain_caps_the_tcg_cache_and_reports_free_pages() -> None:
    """TCG only: QEMU's translation cache capped (its 1 GiB default is mostly resident);
    a virtio balloon with free page reporting on bus 0; a kind that opts out keeps none."""
    plan = _plan()
    boot = _boot(plan)
    tcg = ET.fromstring(domxml.domain_xml(plan.vms[0], boot, OWNER, "qemu"))
    cache = tcg.find("features/tcg/tb-cache")
    assert cache is not None and cache.attrib == {"unit": "MiB"}
    assert cache.text == str(boot.choices.tb_cache_mib) and boot.choices.tb_cache_mib
    balloon = tcg.find("devices/memballoon")
    assert balloon is not None
    assert balloon.attrib == {"model": "virtio", "freePageReporting": "on"}
    addr = balloon.find("address")
    assert addr is not None and addr.get("bus") == "0x00"
    kvm = ET.fromstring(domxml.domain_xml(plan.vms[0], boot, OWNER, "kvm"))
    assert kvm.find("features/tcg") is None
    assert kvm.find("devices/memballoon[@freePageReporting='on']") is not None
    off = domxml.BootSpec(disk_path=boot.disk_path, console_log=boot.console_log,
                          choices=BootChoices(tb_cache_mib=None, free_page_reporting=False))
    plain = ET.fromstring(domxml.domain_xml(plan.vms[0], off, OWNER, "qemu"))
    assert plain.find("features/tcg") is None
    memballoon = plain.find("devices/memballoon")
    assert memballoon is not None and memballoon.attrib == {"model": "none"}
