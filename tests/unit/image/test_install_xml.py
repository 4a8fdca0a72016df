"""The install VM's domain XML: golden files, libvirt's RNG schema, and what it must hold.

Regenerate the golden files after an intended change with
`UPDATE_GOLDEN=1 pytest tests/unit/image/test_install_xml.py` and review the diff.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from golden_files import check_golden, check_schema

from lab.domxml import Ownership
from lab.image.install_xml import InstallSpec, install_domain_xml

SPEC = InstallSpec(
    name="dlab-winbuild",
    owner=Ownership(lab="dlab", run="20260101-000000-abcd", vm="winbuild"),
    domain_type="kvm",
    installer_iso="/isos/Win2022.iso",
    config_iso="/var/images/windows/0123.partial/config.iso",
    virtio_win_iso="/isos/virtio-win.iso",
    disk="/var/images/windows/0123.partial/install.qcow2",
    disk_bus="virtio",
    console_log="/var/images/windows/0123.partial/console.log",
    loader="/usr/share/OVMF/OVMF_CODE_4M.fd",
    nvram_template="/usr/share/OVMF/OVMF_VARS_4M.fd",
    nvram="/var/images/windows/0123.partial/OVMF_VARS.fd",
)


def _documents() -> dict[str, str]:
    sata_tcg = replace(SPEC, domain_type="qemu", virtio_win_iso=None, disk_bus="sata")
    return {
        "install-kvm-virtio.xml": install_domain_xml(SPEC),
        "install-tcg-sata.xml": install_domain_xml(sata_tcg),
        "install-tpm.xml": install_domain_xml(replace(SPEC, tpm=True)),
    }


@pytest.mark.parametrize("name", sorted(_documents()))
def test_matches_golden_file(name: str) -> None:
    check_golden(name, _documents()[name])


@pytest.mark.parametrize("name", sorted(_documents()))
def test_valid_against_libvirt_schema(name: str, tmp_path: Path) -> None:
    check_schema(_documents()[name], "domain", tmp_path, name)


def test_no_network_interface_and_lab_metadata() -> None:
    root = ET.fromstring(install_domain_xml(SPEC))
    assert root.findall("devices/interface") == []
    ns = {"d": "urn:x-driver-lab:metadata:1"}
    assert root.findtext("metadata/d:lab/d:name", namespaces=ns) == "dlab"
    assert root.findtext("metadata/d:lab/d:vm", namespaces=ns) == "winbuild"


def test_secure_boot_off_and_own_nvram() -> None:
    root = ET.fromstring(install_domain_xml(SPEC))
    loader = root.find("os/loader")
    assert loader is not None and loader.get("secure") == "no"
    nvram = root.find("os/nvram")
    assert nvram is not None and nvram.text == SPEC.nvram
    assert nvram.get("template") == SPEC.nvram_template


def test_installer_cd_boots_first_then_disk() -> None:
    root = ET.fromstring(install_domain_xml(SPEC))
    order = {}
    for disk in root.findall("devices/disk"):
        boot = disk.find("boot")
        source = disk.find("source")
        assert source is not None
        if boot is not None:
            order[int(boot.get("order", "0"))] = source.get("file")
    assert order == {1: SPEC.installer_iso, 2: SPEC.disk}


@pytest.mark.parametrize("virtio_win", [None, "/isos/virtio-win.iso"])
def test_every_iso_is_a_sata_cdrom(virtio_win: str | None) -> None:
    spec = replace(SPEC, virtio_win_iso=virtio_win, disk_bus="sata")
    root = ET.fromstring(install_domain_xml(spec))
    cds = [d for d in root.findall("devices/disk") if d.get("device") == "cdrom"]
    files = [d.find("source").get("file") for d in cds]  # type: ignore[union-attr]
    expected = [spec.installer_iso, spec.config_iso] + ([virtio_win] if virtio_win else [])
    assert files == expected
    buses = {d.find("target").get("bus") for d in cds}  # type: ignore[union-attr]
    assert buses == {"sata"}
    targets = [d.find("target").get("dev") for d in root.findall("devices/disk")]  # type: ignore[union-attr]
    assert len(set(targets)) == len(targets)


def test_serial_console_is_logged_to_the_file() -> None:
    root = ET.fromstring(install_domain_xml(SPEC))
    log = root.find("devices/serial/log")
    assert log is not None and log.get("file") == SPEC.console_log
    assert root.find("devices/panic") is not None


def test_unknown_disk_bus_is_refused() -> None:
    with pytest.raises(ValueError, match="ide"):
        install_domain_xml(replace(SPEC, disk_bus="ide"))
