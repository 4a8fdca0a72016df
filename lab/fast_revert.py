"""Revert a running VM to its clean snapshot in place (QEMU's loadvm), when that is safe.

libvirt 9 reverts a running domain to a running internal snapshot by stopping its
QEMU and starting a new one with ``-loadvm``: about 2 s per test here under TCG (a
new process, its devices, its memory). QEMU loads the same snapshot into the running
process in about 0.1 s (``loadvm``, QEMU's HMP). The lab does that only when nothing
libvirt tracks differs from the snapshot (:func:`same_devices`): the domain runs, its
live devices are the snapshot's (every NIC by alias, MAC, model and PCI address, every
disk and controller) and no NIC link is set down. Otherwise, and whenever the monitor
command says anything but success, libvirt's own revert runs.

The command goes through libvirt's ``qemu-monitor-command`` (libvirt-qemu), which
notes "tainted: custom-monitor" in the domain's log once: the lab's VMs are test VMs.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import libvirt
import libvirt_qemu

from lab.hypervisor import Hypervisor, classified

#: Snapshot names the monitor command may carry (the lab's own: "clean").
_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def _address(el: ET.Element) -> tuple[str, ...]:
    addr = el.find("address")
    if addr is None:
        return ()
    return tuple(f"{k}={addr.get(k)}" for k in sorted(addr.attrib))


def device_signature(domain_xml: str) -> tuple[tuple[str, ...], ...] | None:
    """What must match for an in-place load: NICs, disks and controllers with their
    addresses; None when a NIC's link is set down (a restart resets it, loadvm not)."""
    dom = ET.fromstring(domain_xml)
    devices = dom.find("devices")
    if devices is None:
        return ()
    out: list[tuple[str, ...]] = []
    for nic in devices.iterfind("interface"):
        link = nic.find("link")
        if link is not None and link.get("state") == "down":
            return None
        mac, model, alias = nic.find("mac"), nic.find("model"), nic.find("alias")
        out.append(("nic", alias.get("name", "") if alias is not None else "",
                    mac.get("address", "") if mac is not None else "",
                    model.get("type", "") if model is not None else "", *_address(nic)))
    for disk in devices.iterfind("disk"):
        target, source = disk.find("target"), disk.find("source")
        out.append(("disk", target.get("dev", "") if target is not None else "",
                    source.get("file", "") if source is not None else "", *_address(disk)))
    for ctl in devices.iterfind("controller"):
        out.append(("controller", ctl.get("type", ""), ctl.get("model", ""),
                    ctl.get("index", ""), *_address(ctl)))
    return tuple(sorted(out))


def same_devices(live_xml: str, snapshot_xml: str) -> bool:
    """Whether the live domain has exactly the snapshot's devices (and no link down)."""
    snap_dom = ET.fromstring(snapshot_xml).find("domain")
    if snap_dom is None:
        return False
    live = device_signature(live_xml)
    return live is not None and live == device_signature(ET.tostring(snap_dom, "unicode"))


def revert_in_place(hv: Hypervisor, dom: Any, name: str) -> bool:
    """Load snapshot ``name`` into the running QEMU when safe; whether it did (False:
    the caller reverts through libvirt)."""
    if not _NAME.match(name) or hv.state(dom) != libvirt.VIR_DOMAIN_RUNNING:
        return False
    with classified(f"reading snapshot {name} of {dom.name()}"):
        snap_xml = dom.snapshotLookupByName(name, 0).getXMLDesc(0)
        live_xml = dom.XMLDesc(0)
    if not same_devices(live_xml, snap_xml):
        return False
    try:
        reply = libvirt_qemu.qemuMonitorCommand(
            dom, f"loadvm {name}", libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
    except libvirt.libvirtError:
        return False
    return not str(reply).strip() and hv.state(dom) == libvirt.VIR_DOMAIN_RUNNING
