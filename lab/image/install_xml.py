"""Domain XML of the Windows install VM (pure: typed spec in, libvirt XML out).

The install VM exists only while `lab image windows` runs (a transient domain):
q35 + OVMF with Secure Boot off, the Windows ISO, the config media and the
optional virtio-win ISO as SATA CD-ROMs (Windows Setup has AHCI in-box, no
virtio-scsi), the target qcow2, the serial port logged to a file (COM1 is the
provisioning script's progress channel) and no network interface at all.
tests/unit/golden/install-*.xml hold the expected output.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from lab.domxml import HYPERV_FEATURES, Ownership, metadata

#: Memory and vCPUs for Setup (Microsoft's minimum for Server 2016+ and Windows 11 is
#: 2 GB / 2 cores at 1 GHz; 4 GiB keeps Setup's image expansion out of the page file).
SETUP_MEMORY_MIB = 4096
SETUP_VCPUS = 2


@dataclass(frozen=True)
class InstallSpec:
    """Everything the install VM's XML depends on (paths on the hypervisor host)."""

    name: str
    owner: Ownership
    domain_type: str  # "kvm" or "qemu" (TCG)
    installer_iso: str  # the Windows ISO (or the stand-in installer in tests)
    config_iso: str
    virtio_win_iso: str | None
    disk: str  # the target qcow2
    disk_bus: str  # "sata" | "virtio"
    console_log: str
    loader: str  # OVMF code, Secure Boot off
    nvram_template: str
    nvram: str  # this VM's own copy of the variable store
    tpm: bool = False  # an emulated TPM 2.0 (swtpm) for Windows 11 without the bypass
    memory_mib: int = SETUP_MEMORY_MIB
    vcpus: int = SETUP_VCPUS


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def install_domain_xml(spec: InstallSpec) -> str:
    """The transient install domain; it boots the installer CD first, then the disk."""
    if spec.disk_bus not in ("sata", "virtio"):
        raise ValueError(f"disk bus {spec.disk_bus!r} is neither sata nor virtio")
    root = ET.Element("domain", type=spec.domain_type)
    _sub(root, "name", spec.name)
    metadata(root, spec.owner)
    _sub(root, "memory", str(spec.memory_mib), unit="MiB")
    _sub(root, "vcpu", str(spec.vcpus))
    os_el = _sub(root, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine="q35")
    _sub(os_el, "loader", spec.loader, readonly="yes", secure="no", type="pflash")
    _sub(os_el, "nvram", spec.nvram, template=spec.nvram_template)
    features = _sub(root, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if spec.domain_type == "kvm":
        # Windows 11 24H2 needs SSE4.2/POPCNT, which QEMU's default qemu64 model lacks.
        _sub(root, "cpu", mode="host-passthrough")
    clock = _sub(root, "clock", offset="utc")  # as the lab boots the image later
    if spec.domain_type == "kvm":
        hyperv = _sub(features, "hyperv")
        for name in HYPERV_FEATURES:
            extra = {"retries": "8191"} if name == "spinlocks" else {}
            _sub(hyperv, name, state="on", **extra)
        _sub(clock, "timer", name="hypervclock", present="yes")
    _sub(root, "on_poweroff", "destroy")
    _sub(root, "on_reboot", "restart")  # Setup reboots several times
    _sub(root, "on_crash", "destroy")
    _devices(root, spec)
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def _cdrom(dev: ET.Element, path: str, target: str, boot: str | None) -> None:
    disk = _sub(dev, "disk", type="file", device="cdrom")
    _sub(disk, "driver", name="qemu", type="raw")
    _sub(disk, "source", file=path)
    _sub(disk, "target", dev=target, bus="sata")
    _sub(disk, "readonly")
    if boot is not None:
        _sub(disk, "boot", order=boot)


def _devices(root: ET.Element, spec: InstallSpec) -> None:
    dev = _sub(root, "devices")
    disk = _sub(dev, "disk", type="file", device="disk")
    _sub(disk, "driver", name="qemu", type="qcow2", cache="unsafe", discard="unmap")
    _sub(disk, "source", file=spec.disk)
    if spec.disk_bus == "sata":
        _sub(disk, "target", dev="sda", bus="sata")
        cd_targets = ["sdb", "sdc", "sdd"]
    else:
        _sub(disk, "target", dev="vda", bus="virtio")
        cd_targets = ["sda", "sdb", "sdc"]
    _sub(disk, "boot", order="2")
    _cdrom(dev, spec.installer_iso, cd_targets[0], boot="1")
    _cdrom(dev, spec.config_iso, cd_targets[1], boot=None)
    if spec.virtio_win_iso is not None:
        _cdrom(dev, spec.virtio_win_iso, cd_targets[2], boot=None)
    _sub(dev, "controller", type="usb", model="none")
    serial = _sub(dev, "serial", type="pty")
    _sub(serial, "log", file=spec.console_log, append="off")
    _sub(serial, "target", port="0")
    console = _sub(dev, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    # A screen for whoever wants to watch Setup (virt-viewer), local to the host only.
    _sub(dev, "graphics", type="vnc", autoport="yes", listen="127.0.0.1")
    video = _sub(dev, "video")
    _sub(video, "model", type="vga")
    if spec.tpm:
        tpm = _sub(dev, "tpm", model="tpm-crb")
        _sub(tpm, "backend", type="emulator", version="2.0")
    panic = _sub(dev, "panic", model="isa")
    _sub(panic, "address", type="isa", iobase="0x505")
    _sub(dev, "memballoon", model="none")
