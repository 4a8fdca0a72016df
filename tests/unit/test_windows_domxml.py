"""Windows domain XML: OVMF (Secure Boot off), Hyper-V enlightenments, SATA disk, e1000e NICs.

Golden files are regenerated with `UPDATE_GOLDEN=1 pytest tests/unit/test_windows_domxml.py`
(review the diff); every document is also validated against libvirt's RNG schema.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from golden_files import check_golden, check_schema

from lab import domxml
from lab.config import parse_config
from lab.guests.base import BootChoices
from lab.guests.windows import Windows
from lab.plan import VmSpec, make_plan

OWNER = domxml.Ownership(lab="dlab", run="20260101-000000-abcd", vm="vm1")
CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
IDENT = "/pool/ident-vm1.iso"


def _vm(**vms: object) -> VmSpec:
    plan = make_plan(parse_config({"vms": {"test_nics": ["e1000e"], "memory_mib": 4096, **vms}},
                                  Path("/nonexistent/lab.toml")))
    vm = plan.vms[0]
    return replace(vm, mgmt=replace(vm.mgmt, model="e1000e"))


def _boot(disk_bus: str) -> domxml.BootSpec:
    choices = BootChoices(firmware="efi", loader=CODE, nvram_template=VARS, hyperv=True,
                          disk_bus=disk_bus, cpu="max", watchdog=False, tb_cache_mib=None,
                          free_page_reporting=False, fewer_cpu_queries=False)
    return domxml.BootSpec(disk_path="/pool/vm1.qcow2", console_log="/var/consoles/vm1.log",
                           choices=choices)


def _documents() -> dict[str, str]:
    return {
        "domain-windows-q35-kvm.xml": domxml.domain_xml(_vm(), _boot("sata"), OWNER, "kvm"),
        "domain-windows-q35-tcg.xml": domxml.domain_xml(_vm(), _boot("sata"), OWNER, "qemu"),
        "domain-windows-virtio-disk.xml": domxml.domain_xml(_vm(hotplug_slots=2),
                                                            _boot("virtio"), OWNER, "kvm"),
        "domain-windows-identity.xml": domxml.domain_xml(
            _vm(), replace(_boot("sata"), identity_media=IDENT), OWNER, "kvm"),
    }


@pytest.mark.parametrize("name", sorted(_documents()))
def test_matches_golden_file(name: str) -> None:
    check_golden(name, _documents()[name])


@pytest.mark.parametrize("name", sorted(_documents()))
def test_valid_against_libvirt_schema(name: str, tmp_path: Path) -> None:
    check_schema(_documents()[name], "domain", tmp_path, name)


def test_efi_without_secure_boot_and_enlightenments() -> None:
    root = ET.fromstring(_documents()["domain-windows-q35-kvm.xml"])
    loader = root.find("os/loader")
    assert loader is not None and loader.text == CODE
    assert loader.attrib == {"readonly": "yes", "secure": "no", "type": "pflash"}
    nvram = root.find("os/nvram")
    assert nvram is not None and nvram.get("template") == VARS
    hv = root.find("features/hyperv")
    assert hv is not None
    assert [c.tag for c in hv] == list(domxml.HYPERV_FEATURES)
    spin = hv.find("spinlocks")
    assert spin is not None and spin.get("retries") == "8191"
    timer = root.find("clock/timer")
    assert timer is not None and timer.attrib == {"name": "hypervclock", "present": "yes"}
    target = root.find("devices/disk/target")
    assert target is not None and target.attrib == {"dev": "sda", "bus": "sata"}
    models = [m.get("type") for m in root.iterfind("devices/interface/model")]
    assert models == ["e1000e", "e1000e"]
    assert root.find("os/kernel") is None
    assert root.find("devices/watchdog") is None  # no Windows driver (lab.guests.windows)


@pytest.mark.parametrize(("bus", "dev"), [("sata", "sdb"), ("virtio", "sda")])
def test_identity_media_is_a_read_only_sata_cdrom(bus: str, dev: str) -> None:
    xml = domxml.domain_xml(_vm(), replace(_boot(bus), identity_media=IDENT), OWNER, "kvm")
    disks = ET.fromstring(xml).findall("devices/disk")
    assert [d.get("device") for d in disks] == ["disk", "cdrom"]
    cdrom = disks[1]
    source, target, driver = cdrom.find("source"), cdrom.find("target"), cdrom.find("driver")
    assert source is not None and source.get("file") == IDENT
    assert target is not None and target.attrib == {"dev": dev, "bus": "sata"}
    assert driver is not None and driver.get("type") == "raw"
    assert cdrom.find("readonly") is not None and cdrom.find("boot") is None
    # without identity media nothing changes (the other goldens)
    assert len(ET.fromstring(domxml.domain_xml(_vm(), _boot(bus), OWNER, "kvm"))
               .findall("devices/disk")) == 1


def test_efi_needs_both_firmware_files() -> None:
    boot = replace(_boot("sata"), choices=BootChoices(firmware="efi", loader=CODE))
    with pytest.raises(ValueError, match="vars template"):
        domxml.domain_xml(_vm(), boot, OWNER, "kvm")


def test_windows_kind_boot_choices_and_management_nic(tmp_path: Path) -> None:
    (tmp_path / "win.qcow2").write_bytes(b"QFI\xfb")  # qcow2 magic: checked at load
    raw = {"image": {"kind": "windows", "windows_disk": "win.qcow2",
                     "windows_ssh_key": "id", "windows_host_key": "host.pub"},
           "vms": {"memory_mib": 4096, "test_nics": ["e1000e", "e1000e"]}}
    config = parse_config(raw, tmp_path / "lab.toml")
    kind = Windows(config)
    vm = make_plan(config).vms[0]
    choices = kind.boot_choices(vm)
    assert choices == BootChoices(firmware="efi", loader=CODE, nvram_template=VARS,
                                  hyperv=True, disk_bus="sata", cpu="max", watchdog=False,
                                  tb_cache_mib=None, free_page_reporting=False, vm_genid=True,
                                  fewer_cpu_queries=False)
    assert kind.template_boot_choices(vm) == choices  # the template boots as its VMs do
    assert kind.management_nic == "e1000e" and kind.login_user == "Administrator"
    assert all(nic.model == "e1000e" for nic in vm.nics)
