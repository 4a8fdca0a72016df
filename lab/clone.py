"""One VM made from the lab's template (lab.template) instead of booting.

Provisioning has already defined the VM's own domain -- its name, its overlay (a
copy of the template's, :func:`fill_overlay`), its kernel, initramfs and command line,
no NIC but one spare hot-plug port per NIC, exactly the template's devices -- and
:func:`restore` then:

1. gives the domain the metadata of the template's saved state (the internal
   snapshot :data:`lab.template.SNAPSHOT` its disk copy holds) and reverts to it:
   QEMU starts the VM's own domain from the template's memory (loadvm);
2. forgets that metadata (the VM's clean snapshot, taken later, is its only one);
3. hot-plugs its management and test NICs with their own MACs, persistently;
4. lets the guest kind give the VM its identity through its guest agent
   (GuestKind.take_identity: hostname, addresses, clock, random seed, host key); the
   guest brings up every NIC it has with its address, and later ones as they come.

Steps 3 and 4 run in the order the kind asks (GuestKind.identity_before_nics): the
micro guest takes its identity first, so its hotplug handling configures each NIC once;
Windows configures its NICs in its identity step, so they are plugged first.

Provisioning then waits for SSH and takes the clean snapshot as for a booted VM.
A failure raises LabError; provisioning removes the half-made VM and boots it instead.
"""

from __future__ import annotations

import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab import agent, domxml, template
from lab.errors import LabFailure
from lab.gateway import Gateway, run_on_host
from lab.guests.base import GuestKind, RestoredIdentity
from lab.hypervisor import Hypervisor
from lab.plan import VmSpec
from lab.progress import SubjectProgress
from lab.wait import wait_for

#: Deadline for the guest agent's identity command (the guest was just restored).
IDENTITY_DEADLINE_S = 30.0
#: One ping of the restored guest's agent (it answers at once once libvirt sees it).
AGENT_PING_S = 3.0


#: How long a host may take to copy the template into one VM's overlay.
HOST_COPY_DEADLINE_S = 120.0


def fill_overlay(hv: Hypervisor, pool: Any, name: str, made: template.Template,
                 gateway: Gateway | None = None) -> str:
    """The VM's overlay volume ``name`` becomes a byte copy of the template's file: the
    same backing file (the golden image, as the template's host names it) and the saved
    state. A copy on this machine; on another host, a copy the host makes of the
    template in its pool (over ``gateway``), else a stream through libvirtd. Returns
    how it was made, for the progress line."""
    vol = hv.volume(pool, name)
    if vol is None:
        raise LabFailure(f"the overlay volume {name} is not in the pool to copy the "
                         "template into")
    refused = ""
    if made.host_path is not None and gateway is not None:
        argv = ["cp", "--reflink=auto", "--", made.host_path, str(vol.path())]
        status, err = run_on_host(gateway, argv, HOST_COPY_DEADLINE_S)
        if status == 0:
            return "copied on its host"
        refused = f" (the host's copy failed, exit {status}: {err or 'no message'})"
    try:
        hv.upload_into(vol, Path(made.path))
    except LabFailure as exc:  # e.g. ENOSPC where the pool is
        raise LabFailure(f"copying the template into {name} failed: {exc.summary}",
                         hint="free space where the lab's pool_path is, or set "
                              "[vms] template = false") from exc
    return ("streamed to its host" if not hv.is_local else "copied") + refused


def restore(hv: Hypervisor, dom: Any, vm: VmSpec, kind: GuestKind, host_key: Path | None,
            say: SubjectProgress, networks_ready: Callable[[], None]) -> None:
    """Steps 1-4 of the module docstring on the defined, shut-off domain ``dom``;
    ``networks_ready`` blocks until the lab's networks exist (they are made meanwhile)
    and is called just before the NICs are plugged."""
    t0 = time.monotonic()
    xml = hv.inactive_xml(dom)
    hv.redefine_snapshot(dom, domxml.restore_snapshot_xml(template.SNAPSHOT, xml,
                                                         int(time.time())))
    hv.revert_snapshot(dom, template.SNAPSHOT)
    hv.forget_snapshot(dom, template.SNAPSHOT)
    marks = [("restore", time.monotonic())]
    if kind.identity_before_nics:
        _identity(hv, dom, vm, kind, host_key, xml, marks)
        networks_ready()
        _plug_nics(hv, dom, vm, marks)
    else:
        # NICs first: the guest's hotplug handling overlaps the agent wait; the kind's
        # identity step then configures the NICs it finds
        networks_ready()
        _plug_nics(hv, dom, vm, marks)
        _identity(hv, dom, vm, kind, host_key, xml, marks)
    steps, last = [], t0
    for what, when in marks:
        steps.append(f"{what} {when - last:.1f}s")
        last = when
    say(f"restored from the template: {', '.join(steps)}")


def _plug_nics(hv: Hypervisor, dom: Any, vm: VmSpec, marks: list[tuple[str, float]]) -> None:
    """Step 3: hot-plug every NIC of ``vm`` with its own MAC, persistently."""
    for nic in vm.nics:
        hv.attach(dom, domxml.interface_xml(nic), persistent=True)
    marks.append((f"{len(vm.nics)} NICs hot-plugged", time.monotonic()))


def _identity(hv: Hypervisor, dom: Any, vm: VmSpec, kind: GuestKind, host_key: Path | None,
              xml: str, marks: list[tuple[str, float]]) -> None:
    """Step 4: the guest agent answers, then the kind gives the VM its identity
    (``xml``: the VM's domain XML, for its identity media)."""
    if kind.identity_media:
        _reinsert_identity_media(hv, dom, xml)
    # libvirt learns that the guest's agent port is open from an event QEMU sends once
    # the restored VM runs (virtio-serial's post-load), so it may refuse at first
    wait_for(f"the guest agent of {vm.name} after the restore",
             lambda: True if agent.ping(hv, dom, AGENT_PING_S) else None,
             IDENTITY_DEADLINE_S, interval=0.05, max_interval=0.25)
    marks.append(("agent", time.monotonic()))
    kind.take_identity(
        RestoredIdentity(vm=vm, host_key=host_key, epoch=int(time.time()),
                         seed=secrets.token_bytes(32)),
        lambda execute, arguments: agent.command(hv, dom, execute, arguments,
                                                 deadline_s=IDENTITY_DEADLINE_S))
    marks.append(("identity", time.monotonic()))


def _reinsert_identity_media(hv: Hypervisor, dom: Any, xml: str) -> None:
    """Eject the VM's identity media and insert it again: the guest was restored with the
    template's disc in its caches, and only a media change makes it read the VM's own."""
    found = ET.fromstring(xml).find("./devices/disk[@device='cdrom']")
    source = found.find("source") if found is not None else None
    target = found.find("target") if found is not None else None
    if source is None or target is None:
        return
    bus = "sata" if target.get("dev") == "sdb" else "virtio"
    hv.update_device(dom, domxml.identity_media_xml(None, bus))
    hv.update_device(dom, domxml.identity_media_xml(source.get("file"), bus))
