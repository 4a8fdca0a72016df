"""`lab up`'s side of the template (lab.template): decide whether this host's missing VMs
are made from it, and get it (pool, cache, or booted now) with the lab's domain XML.

Any failure says so in one progress line and returns None: the VMs then boot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import agent, domxml, identity, naming
from lab import template as templates
from lab.config import LabConfig
from lab.errors import LabError
from lab.guests import windows_identity
from lab.guests.base import BootChoices, GuestKind
from lab.hypervisor import Hypervisor
from lab.paths import StatePaths
from lab.plan import LabPlan
from lab.progress import Progress

#: How long one readiness ping of a kind without a ready line may take.
PING_S = 3.0


@dataclass(frozen=True)
class TemplateSite:
    """Where and how the template is built: what provisioning knows about this host."""

    config: LabConfig
    plan: LabPlan  #: this host's part of the lab
    kind: GuestKind
    golden_digest: str
    golden: str  #: the golden image's pool path
    golden_size: int
    kernel: str | None
    initrd: str | None  #: the image's shared initramfs (no host key)
    domain_type: str
    owner: domxml.Ownership  #: stamped on the template's build domain
    #: why a boot can no longer succeed (dom, console log, offset), or None
    fatal: Callable[[Any, str, int], str | None]
    host: str  #: "local" or the [[hosts]] name (its template is cached apart)
    #: where QEMU logs consoles on that host, when not in this machine's state dir
    console_dir: str | None = None


def prepare(hv: Hypervisor, site: TemplateSite, progress: Progress) -> templates.Template | None:
    """The template for ``site``'s missing VMs, or None (they boot; said why)."""
    if not site.plan.vms or not site.config.vms.template:
        return None
    choices = site.kind.template_boot_choices(site.plan.vms[0])
    if choices is None:
        progress(f"template: {site.kind.name} VMs are not made from a template yet; they boot")
        return None
    if all(hv.domain(vm.domain) is not None for vm in site.plan.vms):
        return None
    try:
        return _get(hv, site, choices, progress)
    except LabError as exc:
        progress(f"template: {exc}; every VM boots instead")
        return None


def _get(hv: Hypervisor, site: TemplateSite, choices: BootChoices,
         progress: Progress) -> templates.Template:
    pool = hv.pool(naming.pool_name(site.plan.lab))
    assert pool is not None  # the image's volumes were uploaded into it
    spec = templates.template_vm(site.plan.vms[0], site.plan.lab)
    local_log = str(StatePaths(site.config.state_dir).console_log(templates.NAME))
    # on another host QEMU logs there; readiness is then its agent alone (see _ready)
    log = f"{site.console_dir}/{spec.domain}.console.log" if site.console_dir else local_log

    media = (f"{hv.pool_target(pool)}/{windows_identity.volume_name(templates.NAME)}"
             if site.kind.identity_media else None)

    def xml(disk: str, owner: domxml.Ownership) -> str:
        boot = domxml.BootSpec(disk_path=disk, console_log=log, kernel=site.kernel,
                               initrd=site.initrd, cmdline=choices.cmdline, choices=choices,
                               identity_media=media, nics_at_boot=False)
        return domxml.domain_xml(spec, boot, owner, site.domain_type)

    def define(disk: str) -> Any:
        if media is not None:
            _upload_template_media(hv, pool, site.config.state_dir)
        return hv.define_domain(xml(disk, site.owner))

    inputs = templates.TemplateInputs(
        kind=site.kind.name, golden_digest=site.golden_digest,
        domain_xml=xml("", domxml.Ownership(site.plan.lab, "-")),
        qemu_version=hv.hypervisor_version(),
        libvirt_version=".".join(map(str, hv.lib_version())))
    stale = hv.domain(spec.domain)
    if stale is not None:  # a build that `lab up` did not finish
        hv.remove_domain(stale)
    start = Path(local_log).stat().st_size if Path(local_log).exists() else 0
    Path(local_log).parent.mkdir(parents=True, exist_ok=True)
    marker_log = None if site.console_dir else local_log
    hooks = templates.BuildHooks(
        define=define,
        fatal=lambda dom: site.fatal(dom, local_log, start),
        ready=lambda dom: _ready(hv, site.kind, dom, marker_log, start),
        snapshot_xml=domxml.snapshot_xml(templates.SNAPSHOT, site.owner),
        backing_xml=lambda name: domxml.volume_xml(name, site.golden_size, "qcow2",
                                                   backing=site.golden))
    return templates.ensure(hv, pool, templates.template_key(inputs), site.config.state_dir,
                            site.config.vms.boot_timeout_s, hooks, progress, site.host)


def _upload_template_media(hv: Hypervisor, pool: Any, state_dir: Path) -> None:
    """The template's identity media (its VMs' domains have one: the devices must match);
    the key on it is the template's own, which no VM keeps (each gets its own disc)."""
    made = windows_identity.build_identity_media(state_dir, templates.NAME)
    name = windows_identity.volume_name(templates.NAME)
    try:
        old = hv.volume(pool, name)
        if old is not None:
            hv.delete_volume(old)
        hv.upload(pool, name, made.path, "raw", domxml.volume_xml,
                  identity.done_marker(name, made.sha256))
    finally:
        made.path.unlink(missing_ok=True)


def _ready(hv: Hypervisor, kind: GuestKind, dom: Any, log: str | None, start: int) -> bool:
    """The kind's ready line on the console since ``start`` (if it has one and the log
    ``log`` is on this machine), then its agent answering: the micro guest's init starts
    the agent (and the watchdog petter) only after the boot script that prints the line,
    and a template saved before they run would start them again in every VM made from
    it. (So on another host, whose console log is there, the agent alone says ready.)"""
    if kind.ready_marker is not None and log is not None:
        try:
            with open(log, "rb") as fh:
                fh.seek(start)
                if kind.ready_marker.encode() not in fh.read():
                    return False
        except OSError:
            return False
    return agent.ping(hv, dom, PING_S)
