"""libvirt XML for every object the lab creates, built by pure functions.

No I/O and no libvirt import here: each function maps typed specs to a string,
and tests/unit/golden/ holds the expected output for the default lab.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from lab import naming
from lab.config import Machine
from lab.guests.base import BootChoices
from lab.plan import NetworkSpec, Nic, VmSpec


@dataclass(frozen=True)
class Ownership:
    """The lab metadata stamped on every domain and network."""

    lab: str
    run: str
    vm: str | None = None
    #: the install id of the lab's state dir (lab.identity) and that state dir
    install: str | None = None
    state_dir: str | None = None


@dataclass(frozen=True)
class BootSpec:
    """How a VM boots: direct kernel boot (micro guest) or from its disk (Windows)."""

    disk_path: str
    console_log: str
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    #: the guest kind's firmware / enlightenment / disk-bus choices (default: the micro guest's)
    choices: BootChoices = field(default_factory=BootChoices)
    #: the VM's identity media (its own SSH host key pair, lab.guests.windows_identity):
    #: attached as a read-only SATA CD-ROM
    identity_media: str | None = None
    #: False for a VM restored from the lab's template (lab.template) and for the template
    #: itself: no NIC in the XML, one more spare hot-plug port per NIC instead; the NICs
    #: are hot-plugged after the restore, so the restored devices match the template's
    nics_at_boot: bool = True


#: Name of the guest agent's virtio-serial port (libvirt's qemuAgentCommand uses it).
AGENT_CHANNEL = "org.qemu.guest_agent.0"


def _tostring(root: ET.Element) -> str:
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def metadata(parent: ET.Element, owner: Ownership) -> None:
    """<metadata><dlab:lab>name/run/vm</dlab:lab></metadata>."""
    md = _sub(parent, "metadata")
    lab = ET.SubElement(md, f"{naming.METADATA_PREFIX}:lab",
                        {f"xmlns:{naming.METADATA_PREFIX}": naming.METADATA_NS})
    _sub(lab, f"{naming.METADATA_PREFIX}:name", owner.lab)
    _sub(lab, f"{naming.METADATA_PREFIX}:run", owner.run)
    if owner.vm is not None:
        _sub(lab, f"{naming.METADATA_PREFIX}:vm", owner.vm)
    if owner.install is not None:
        _sub(lab, f"{naming.METADATA_PREFIX}:install", owner.install)
    if owner.state_dir is not None:
        _sub(lab, f"{naming.METADATA_PREFIX}:state", owner.state_dir)


def network_xml(spec: NetworkSpec, owner: Ownership) -> str:
    """An isolated network: no <forward>, so guests reach only the host bridge."""
    root = ET.Element("network")
    _sub(root, "name", spec.name)
    metadata(root, owner)
    _sub(root, "bridge", name=spec.bridge, stp="off", delay="0")
    dns = _sub(root, "dns", enable="no")
    del dns  # no DNS server: nothing in the lab resolves names
    ip = _sub(root, "ip", address=spec.host_ip, prefix=str(spec.prefix))
    if spec.hosts:
        dhcp = _sub(ip, "dhcp")
        for host in spec.hosts:
            _sub(dhcp, "host", mac=host.mac, name=host.name, ip=host.ip)
    return _tostring(root)


def interface_xml(nic: Nic, link: str | None = None) -> str:
    """One NIC, as used in the domain XML and for live attach/detach/update.

    ``link`` ("up" or "down") sets the link state, as `virsh domif-setlink` does.
    """
    el = _interface(nic)
    if link is not None:
        _sub(el, "link", state=link)
    return _tostring(el)


def _interface(nic: Nic) -> ET.Element:
    el = ET.Element("interface", type="network")
    _sub(el, "source", network=nic.network)
    _sub(el, "mac", address=nic.mac)
    _sub(el, "model", type=nic.model)
    _sub(el, "alias", name=nic.alias)
    return el


def domain_xml(vm: VmSpec, boot: BootSpec, owner: Ownership, domain_type: str) -> str:
    """The domain of one lab VM (domain_type: 'qemu' for TCG, 'kvm')."""
    root = ET.Element("domain", type=domain_type)
    _sub(root, "name", vm.domain)
    if boot.choices.vm_genid:
        _sub(root, "genid")  # libvirt makes one per domain (formatdomain "General metadata")
    metadata(root, owner)
    _sub(root, "memory", str(vm.memory_mib), unit="MiB")
    _sub(root, "vcpu", str(vm.vcpus))
    _os(root, vm.machine, boot)
    if boot.choices.cpu == "max":
        # libvirt formatdomain "CPU model and topology": host-passthrough needs KVM;
        # mode="maximum" (libvirt >= 7.1) is QEMU's "max" model under TCG.
        _sub(root, "cpu", mode="host-passthrough" if domain_type == "kvm" else "maximum",
             check="none")
    features = _sub(root, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if domain_type == "qemu" and boot.choices.tb_cache_mib is not None:
        # libvirt >= 8.0 formatdomain "TCG features": QEMU's -accel tcg,tb-size
        tcg = _sub(features, "tcg")
        _sub(tcg, "tb-cache", str(boot.choices.tb_cache_mib), unit="MiB")
    clock = _sub(root, "clock", offset="utc")
    if boot.choices.hyperv:
        _hyperv(features, clock)
    _sub(root, "on_poweroff", "destroy")
    _sub(root, "on_reboot", "restart")
    _sub(root, "on_crash", "preserve")  # keep a crashed guest for the memory dump
    # Suspend to RAM (S3) for the sleep/resume scenario, never to disk: libvirt
    # formatdomain "Power Management" (QEMU: ICH9-LPC / PIIX4_PM disable_s3=0, disable_s4=1).
    pm = _sub(root, "pm")
    _sub(pm, "suspend-to-mem", enabled="yes")
    _sub(pm, "suspend-to-disk", enabled="no")
    _devices(root, vm, boot)
    if boot.choices.fewer_cpu_queries:
        fewer_cpu_queries(root)
    return _tostring(root)


#: libvirt's XML namespace for QEMU-specific settings (docs: drvqemu "Overriding QEMU
#: capabilities", libvirt >= 7.1).
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"


def fewer_cpu_queries(root: ET.Element) -> None:
    """libvirt 9 reads a new QEMU's CPU through one ``qom-get`` per CPU feature when QEMU
    reports unavailable features (capability ``cpu-unavailable-features``): about 400
    monitor round trips, 0.4-0.5 s of every VM start (boot, restore from the template,
    a revert that starts a new QEMU) under TCG. Without that capability it reads the
    x86 feature words, two round trips. The domain's log notes "tainted:
    custom-hypervisor-feature" (the lab's VMs are test VMs). A libvirt that no longer
    uses the capability ignores its removal."""
    caps = ET.SubElement(root, "qemu:capabilities", {"xmlns:qemu": QEMU_NS})
    _sub(caps, "qemu:del", capability="cpu-unavailable-features")


def _os(root: ET.Element, machine: Machine, boot: BootSpec) -> None:
    os_el = _sub(root, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine=machine.value)
    if boot.kernel:
        _sub(os_el, "kernel", boot.kernel)
        if boot.initrd:
            _sub(os_el, "initrd", boot.initrd)
        if boot.cmdline:
            _sub(os_el, "cmdline", boot.cmdline)
    else:
        if boot.choices.firmware == "efi":
            _efi(os_el, boot.choices)
        _sub(os_el, "boot", dev="hd")


#: Hyper-V enlightenments Windows guests use under KVM (libvirt formatdomain "Hypervisor
#: features"; the set virt-install picks for Windows). 8191 spinlock retries is the
#: value Microsoft's hypervisor TLFS recommends and libvirt's docs show.
HYPERV_FEATURES: tuple[str, ...] = ("relaxed", "vapic", "spinlocks", "vpindex", "synic",
                                    "stimer", "reset", "frequencies")


def _efi(os_el: ET.Element, choices: BootChoices) -> None:
    """OVMF from pflash, Secure Boot off (testsigning is refused with it on)."""
    if not choices.loader or not choices.nvram_template:
        raise ValueError("efi boot needs both the OVMF code (loader) and the vars template")
    _sub(os_el, "loader", choices.loader, readonly="yes", secure="no", type="pflash")
    _sub(os_el, "nvram", template=choices.nvram_template)


def _hyperv(features: ET.Element, clock: ET.Element) -> None:
    hyperv = _sub(features, "hyperv")
    for name in HYPERV_FEATURES:
        if name == "spinlocks":
            _sub(hyperv, name, state="on", retries="8191")
        else:
            _sub(hyperv, name, state="on")
    _sub(clock, "timer", name="hypervclock", present="yes")


def _devices(root: ET.Element, vm: VmSpec, boot: BootSpec) -> None:
    dev = _sub(root, "devices")
    disk = _sub(dev, "disk", type="file", device="disk")
    # A full pool (ENOSPC) or a failing read pauses the VM with an I/O error reason
    # (libvirt's paused/ioerror state) instead of handing the error to the guest.
    _sub(disk, "driver", name="qemu", type="qcow2", cache="unsafe", error_policy="stop",
         rerror_policy="stop")
    _sub(disk, "source", file=boot.disk_path)
    if boot.choices.disk_bus == "sata":
        _sub(disk, "target", dev="sda", bus="sata")
    else:
        _sub(disk, "target", dev="vda", bus="virtio")
    if boot.identity_media is not None:
        _identity_media(dev, boot)
    _sub(dev, "controller", type="usb", model="none")
    if vm.machine is Machine.Q35:
        _sub(dev, "controller", type="pci", index="0", model="pcie-root")
        # Spare PCIe root ports: a NIC can only be hot-plugged into an empty port.
        for _ in range(vm.hotplug_slots + (0 if boot.nics_at_boot else len(vm.nics))):
            _sub(dev, "controller", type="pci", model="pcie-root-port")
        if not boot.nics_at_boot and any(n.model in CONVENTIONAL_PCI_NICS for n in vm.nics):
            # at define time libvirt adds this bridge for such NICs itself; a hot-plug
            # cannot add a controller, so the NIC-less domain has it from the start
            _sub(dev, "controller", type="pci", model="pcie-to-pci-bridge")
    for nic in vm.nics if boot.nics_at_boot else ():
        dev.append(_interface(nic))
    serial = _sub(dev, "serial", type="pty")
    _sub(serial, "log", file=boot.console_log, append="on")
    _sub(serial, "target", port="0")
    console = _sub(dev, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    # The out-of-band channel (lab.agent): a virtio-serial port named as QEMU's guest
    # agent's, so libvirt's agent client talks to it (Windows can run the stock qemu-ga).
    channel = _sub(dev, "channel", type="unix")
    _sub(channel, "target", type="virtio", name=AGENT_CHANNEL)
    panic = _sub(dev, "panic", model="isa")
    _sub(panic, "address", type="isa", iobase="0x505")
    if boot.choices.watchdog:
        _watchdog(dev)
    if boot.choices.free_page_reporting:
        _balloon(dev)
    else:
        _sub(dev, "memballoon", model="none")


#: NIC models QEMU makes conventional PCI devices (not PCIe): on q35 libvirt places them
#: behind a pcie-to-pci-bridge (formatdomain "Controllers": pcie-to-pci-bridge).
CONVENTIONAL_PCI_NICS = frozenset({"vmxnet3", "e1000", "rtl8139"})


def _identity_media(dev: ET.Element, boot: BootSpec) -> None:
    """The identity media as a SATA CD-ROM: read-only by nature (QEMU refuses a read-only
    SATA/IDE hard disk) and read by Windows with no driver. It holds no boot record, and
    libvirt gives <boot dev="hd"/> to the system disk only."""
    assert boot.identity_media is not None
    dev.append(_cdrom(boot.identity_media, boot.choices.disk_bus))


def _cdrom(media: str | None, disk_bus: str) -> ET.Element:
    cdrom = ET.Element("disk", type="file", device="cdrom")
    _sub(cdrom, "driver", name="qemu", type="raw")
    if media is not None:
        _sub(cdrom, "source", file=media)
    _sub(cdrom, "target", dev="sdb" if disk_bus == "sata" else "sda", bus="sata")
    _sub(cdrom, "readonly")
    return cdrom


def identity_media_xml(media: str | None, disk_bus: str) -> str:
    """The identity media's CD-ROM for a live media change: None ejects the disc (a VM
    restored from the template gets its own disc by an eject and an insert, lab.clone)."""
    return _tostring(_cdrom(media, disk_bus))


#: What QEMU does when the guest stops petting the watchdog: an NMI, which a guest
#: booted with unknown_nmi_panic turns into a panic, so pvpanic reports "crashed" and
#: the lab dumps the guest's memory (formatdomain "Watchdog devices"). "dump" would
#: only write a core and resume the livelocked guest; "reset" would lose it.
WATCHDOG_ACTION = "inject-nmi"
#: The watchdog's fixed PCI slot on bus 0 (pcie-root / pci-root): auto-placed, libvirt
#: would hang this conventional PCI device behind a pcie-to-pci-bridge on q35, which
#: can take a root port kept free for NIC hot-plug. libvirt's own placements start at
#: the low slots and 0x1f is the ICH9 LPC/SATA/SMBus.
WATCHDOG_SLOT = "0x1b"


def _watchdog(dev: ET.Element) -> None:
    wdt = _sub(dev, "watchdog", model="i6300esb", action=WATCHDOG_ACTION)
    _sub(wdt, "address", type="pci", domain="0x0000", bus="0x00", slot=WATCHDOG_SLOT,
         function="0x0")


#: The balloon's fixed PCI slot on bus 0, as the watchdog's: auto-placed on q35 it would
#: take (or make) a pcie-root-port.
BALLOON_SLOT = "0x1c"


def _balloon(dev: ET.Element) -> None:
    """A virtio balloon that only reports free pages (libvirt >= 6.9, QEMU >= 5.1): QEMU
    drops the guest's free 2 MiB blocks from its resident memory. No stats polling."""
    balloon = _sub(dev, "memballoon", model="virtio", freePageReporting="on")
    _sub(balloon, "address", type="pci", domain="0x0000", bus="0x00", slot=BALLOON_SLOT,
         function="0x0")


def pool_xml(name: str, path: str) -> str:
    root = ET.Element("pool", type="dir")
    _sub(root, "name", name)
    target = _sub(root, "target")
    _sub(target, "path", path)
    return _tostring(root)


def volume_xml(name: str, capacity_bytes: int, fmt: str = "qcow2",
               backing: str | None = None, backing_format: str = "qcow2") -> str:
    """A volume; with ``backing`` it is a linked clone (qcow2 overlay) of that file."""
    root = ET.Element("volume")
    _sub(root, "name", name)
    _sub(root, "capacity", str(capacity_bytes), unit="bytes")
    target = _sub(root, "target")
    _sub(target, "format", type=fmt)
    if backing is not None:
        store = _sub(root, "backingStore")
        _sub(store, "path", backing)
        _sub(store, "format", type=backing_format)
    return _tostring(root)


def snapshot_xml(name: str, owner: Ownership) -> str:
    """An internal system checkpoint (disk + memory) the lab reverts to."""
    root = ET.Element("domainsnapshot")
    _sub(root, "name", name)
    _sub(root, "description", f"driver-lab lab={owner.lab} run={owner.run} vm={owner.vm}")
    return _tostring(root)


def restore_snapshot_xml(name: str, domain: str, created: int) -> str:
    """The metadata of snapshot ``name`` (a running system checkpoint: memory and disks
    internal), redefined on the domain whose inactive XML is ``domain``: reverting to it
    starts that domain from the memory state saved in its disk under that name (QEMU's
    loadvm). The lab's template restore (lab.template) uses it: the saved state is the
    template's, the domain is the VM's own (libvirt formatsnapshot, REDEFINE; a
    redefinition needs ``created``, seconds since 1970)."""
    dom = ET.fromstring(domain)
    root = ET.Element("domainsnapshot")
    _sub(root, "name", name)
    _sub(root, "state", "running")
    _sub(root, "creationTime", str(created))
    _sub(root, "memory", snapshot="internal")
    disks = _sub(root, "disks")
    for target in dom.iterfind("./devices/disk[@device='disk']/target"):
        _sub(disks, "disk", name=target.get("dev", ""), snapshot="internal")
    for target in dom.iterfind("./devices/disk[@device='cdrom']/target"):
        _sub(disks, "disk", name=target.get("dev", ""), snapshot="no")
    root.append(dom)
    return _tostring(root)
