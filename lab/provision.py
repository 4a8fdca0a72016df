"""`lab up`: config -> golden image -> networks (made while the image uploads and VMs
restore from the template) -> VMs in parallel -> inventory.

Idempotent: every step first looks for what it would create (by name and lab
metadata) and only creates what is missing, so a second run on a running lab
changes nothing, and a run after a lost VM recreates just that VM.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from lab import (
    accel,
    clone,
    console_keeper,
    domxml,
    hosts,
    identity,
    inventory,
    naming,
    settle,
    template_up,
    vmkeys,
)
from lab import template as templates
from lab.config import Acceleration, LabConfig
from lab.errors import LabError, LabFailure, NotOurs
from lab.gateway import Gateway
from lab.guest import Guest, GuestAddress, ssh_ready
from lab.guests import guest_kind, windows_identity
from lab.guests.base import GoldenImage, GuestKind
from lab.host import decide, open_host
from lab.hypervisor import LOCAL_URIS, DomainState, Hypervisor
from lab.paths import StatePaths
from lab.plan import LabPlan, VmSpec, make_plan
from lab.progress import Progress, SubjectProgress
from lab.sandbox import RUN_DIR


@dataclass(frozen=True)
class BootFiles:
    """Paths of the image's pieces on the hypervisor host (pool volumes)."""

    golden: str
    golden_size: int
    kernel: str | None = None
    initrd: str | None = None


_T = TypeVar("_T")


def _networks_there() -> None:
    """The networks exist already (VmContext.networks_ready before they are made)."""


class NetworksFailed(LabFailure):
    """A VM worker found that this host's networks could not be made: the VM stops
    (never boots instead) and :func:`alongside_networks` raises the networks' own error."""


@dataclass(frozen=True)
class VmContext:
    """What each VM worker needs (shared, read-only)."""

    config: LabConfig
    plan: LabPlan
    owner_run: str
    me: identity.Identity
    domain_type: str
    boot: BootFiles
    image: GoldenImage
    kind: GuestKind
    #: run the kind's first-boot step (image contract, Driver Verifier) before the snapshot
    first_boot: bool = True
    #: the hypervisor host these VMs run on ("local", else a [[hosts]] name) and, for a
    #: remote one, the gateway to its guests and its directory for QEMU's console logs
    host: str = "local"
    gateway: Gateway | None = None
    console_dir: str | None = None
    #: the lab's template in this host's pool (lab.template): missing VMs are made from
    #: it; None: they boot
    template: templates.Template | None = None
    #: blocks until this host's networks exist: they are made while the image uploads
    #: and VMs restore from the template (a restored VM needs them only for its NICs)
    networks_ready: Callable[[], None] = _networks_there


def console_log_path(config: LabConfig, vm: str) -> str:
    return str(StatePaths(config.state_dir).console_log(vm))


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def up(config: LabConfig, progress: Progress, first_boot: bool = True) -> inventory.Inventory:
    """Bring the lab up; ``first_boot=False`` skips the kind's first-boot step (used by
    `lab image check`, which reports the image contract item by item itself)."""
    kind = guest_kind(config)
    kind.check()  # before anything is created
    config.state_dir.mkdir(parents=True, exist_ok=True)
    me = identity.claim(config.lab.name, config.path, config.state_dir)
    image = kind.prepare_image(progress)
    accel_choice = _acceleration(config, image, progress)
    hv = open_host(config, progress)
    assert hv is not None
    with hv:
        _check_libvirt(hv, kind)
        _check_pool_dir(hv, config)  # before anything is created
        plan = make_plan(config)
        run = _existing_run(hv, me) or new_run_id()
        ctx = VmContext(config=config, plan=plan.on_host("local"), owner_run=run, me=me,
                        domain_type=accel.domain_type(accel_choice),
                        boot=BootFiles("", 0), image=image, kind=kind, first_boot=first_boot)
        targets = hosts.targets(config, progress)
        jobs: dict[str, Callable[[], list[inventory.VmEntry]]] = {
            "local": functools.partial(_up_on_host, hv, ctx, config.pool_path, progress)}
        for target in targets:
            jobs[target.name] = functools.partial(_up_on_remote, target, dataclasses.replace(
                ctx, plan=plan.on_host(target.name), host=target.name,
                gateway=target.gateway, console_dir=target.console_dir),
                progress.on_host(target.name))
        entries = _on_every_host(jobs)
        return _write_inventory(dataclasses.replace(ctx, plan=plan), entries, targets)


def _on_every_host(jobs: dict[str, Callable[[], list[inventory.VmEntry]]]
                   ) -> list[inventory.VmEntry]:
    """Each host's bring-up at the same time (a lab of N hosts takes about as long as its
    slowest, not their sum); every host finishes its work before a failure is raised:
    one host's own error as it is, several as one LabFailure naming each host."""
    if len(jobs) == 1:
        return next(iter(jobs.values()))()
    entries: list[inventory.VmEntry] = []
    failures: dict[str, LabError] = {}
    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="host") as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        for name, fut in futures.items():
            try:
                entries += fut.result()
            except LabError as exc:
                failures[name] = exc
    if len(failures) == 1:
        raise next(iter(failures.values()))
    if failures:
        raise LabFailure(f"{len(failures)} of {len(jobs)} hosts did not come up:\n  "
                         + "\n  ".join(f"{name}: {exc}" for name, exc in failures.items()),
                         hint="`lab down` removes everything, `lab up` retries only what "
                              "is missing")
    return entries


def _up_on_host(hv: Hypervisor, ctx: VmContext, pool_path: str,
                progress: Progress) -> list[inventory.VmEntry]:
    """Networks, the image's volumes and the VMs of one host (nothing when it runs none)."""
    if not ctx.plan.vms:
        return []

    def image_and_vms(networks_ready: Callable[[], None]) -> list[inventory.VmEntry]:
        boot = _upload_image(hv, ctx.config, ctx.image, ctx.me, pool_path, progress)
        console_keeper.confirm(ctx.config.state_dir)  # before a VM whose console it keeps
        made = dataclasses.replace(ctx, boot=boot, networks_ready=networks_ready)
        made = dataclasses.replace(made, template=_template(hv, made, progress))
        return _bring_up_all(hv, made, progress)

    return alongside_networks(
        lambda: _ensure_networks(hv, ctx.plan, ctx.owner_run, ctx.me, progress), image_and_vms)


def alongside_networks(make: Callable[[], None],
                       work: Callable[[Callable[[], None]], _T]) -> _T:
    """``work`` (image upload, template, VMs) runs while ``make`` makes the networks in a
    thread of its own; ``work`` gets a wait for them that raises :class:`NetworksFailed`
    when making them failed. The networks' own error is the one raised then, whatever
    ``work`` raised meanwhile; otherwise ``work``'s result or error."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="networks") as side:
        networks = side.submit(make)
        try:
            result = work(functools.partial(_wait_networks, networks))
        except LabError:
            networks.result()
            raise
        networks.result()
        return result


def _wait_networks(networks: Future[None]) -> None:
    try:
        networks.result()
    except LabError as exc:
        raise NetworksFailed(f"the lab's networks were not made: {exc.summary}") from exc


def _up_on_remote(target: hosts.HostTarget, ctx: VmContext,
                  progress: Progress) -> list[inventory.VmEntry]:
    progress(f"{target.kind} host: {len(ctx.plan.vms)} VMs, "
             f"pool {target.pool_path}")
    with Hypervisor(target.uri, str(ctx.config.path)) as hv:
        hv.check()
        _check_libvirt(hv, ctx.kind)
        if target.kind != "namespace" and ctx.config.lab.acceleration is Acceleration.AUTO:
            ctx = dataclasses.replace(ctx, domain_type="kvm" if hv.domain_capable("kvm")
                                      else "qemu")
        console_keeper.start(ctx.config.state_dir, target.uri, {
            vm.domain: Path(console_log_path(ctx.config, vm.name)) for vm in ctx.plan.vms})
        return _up_on_host(hv, ctx, target.pool_path, progress)


def _template(hv: Hypervisor, ctx: VmContext, progress: Progress) -> templates.Template | None:
    return template_up.prepare(hv, template_up.TemplateSite(
        config=ctx.config, plan=ctx.plan, kind=ctx.kind, golden_digest=ctx.image.digest,
        golden=ctx.boot.golden, golden_size=ctx.boot.golden_size, kernel=ctx.boot.kernel,
        initrd=ctx.boot.initrd, domain_type=ctx.domain_type,
        owner=ownership(ctx.me, ctx.owner_run, templates.NAME),
        fatal=lambda dom, log, start: _boot_fatal(hv, dom, ctx.kind, log, start),
        host=ctx.host, console_dir=ctx.console_dir), progress)


def _acceleration(config: LabConfig, image: GoldenImage, progress: Progress) -> Acceleration:
    if config.lab.uri in LOCAL_URIS and image.kernel and image.initrd:
        return accel.resolve(config.lab.acceleration, StatePaths(config.state_dir).accel_cache,
                             image.kernel, image.initrd, progress,
                             host_cache=RUN_DIR / "accel.json")
    if config.lab.acceleration is Acceleration.AUTO:
        progress("acceleration: no probe kernel or a remote host, trusting libvirt's "
                 "capabilities (kvm if offered)")
        with Hypervisor(config.lab.uri, str(config.path)) as hv:
            return Acceleration.KVM if hv.domain_capable("kvm") else Acceleration.TCG
    return config.lab.acceleration


def _check_libvirt(hv: Hypervisor, kind: GuestKind) -> None:
    """Refuse, before anything is created, a libvirt that cannot snapshot this kind's VMs."""
    have = hv.lib_version()
    if have < kind.min_libvirt:
        need = ".".join(map(str, kind.min_libvirt))
        raise LabFailure(f"{kind.name} guests need libvirt >= {need} for their clean snapshot "
                         f"(this host has {have[0]}.{have[1]})",
                         hint=f"run {kind.name} labs on a host with libvirt {need} or newer")


def ownership(me: identity.Identity, run: str, vm: str | None = None) -> domxml.Ownership:
    """The metadata stamped on the lab's objects: lab name, run, install id, state dir."""
    return domxml.Ownership(me.lab, run, vm, install=me.install, state_dir=me.state_dir)


def foreign_owner(what: str, owner_state: str | None) -> NotOurs:
    where = f" (state dir {owner_state})" if owner_state else ""
    return NotOurs(f"{what} belongs to another config with this lab name{where}",
                   hint="give this lab its own [lab] name, or bring that lab down with "
                        "its own config")


def _existing_run(hv: Hypervisor, me: identity.Identity) -> str | None:
    for _obj, owner in hv.owned_networks(me.lab) + hv.owned_domains(me.lab):
        if identity.owns(me, me.lab, owner.lab, owner.install):
            return owner.run
    return None


def _ensure_networks(hv: Hypervisor, plan: LabPlan, run: str, me: identity.Identity,
                     progress: Progress) -> None:
    owners = {net.name(): owner for net, owner in hv.owned_networks(plan.lab)}
    for spec in plan.networks:
        existing = hv.network(spec.name)
        owner = owners.get(spec.name)
        if existing is not None and owner is None:
            raise NotOurs(f"network {spec.name} exists but is not this lab's",
                          hint="rename the lab ([lab] name) or remove that network")
        if owner is not None and not identity.owns(me, plan.lab, owner.lab, owner.install):
            raise foreign_owner(f"network {spec.name}", owner.state_dir)
        created = hv.ensure_network(spec.name, domxml.network_xml(spec, ownership(me, run)))
        progress(f"network {spec.name} ({spec.role}, bridge {spec.bridge}, "
                 f"{spec.host_ip}/{spec.prefix}) {'created' if created else 'already there'}")


def _check_pool_dir(hv: Hypervisor, config: LabConfig) -> None:
    """Never adopt a directory the lab did not create: a new pool's directory must not
    exist yet, unless it carries the lab's owner marker (a pool definition lost)."""
    if hv.pool(naming.pool_name(config.lab.name)) is not None or config.lab.uri not in LOCAL_URIS:
        return
    path = Path(config.pool_path)
    marker = f"{config.lab.name}{naming.POOL_OWNER_SUFFIX}"
    if path.exists() and not (path / marker).exists():
        raise NotOurs(f"{config.path}: [lab] pool_path: {path} already exists and the lab "
                      "did not create it (no owner marker); the lab never adopts a directory",
                      hint="point pool_path at a directory that does not exist yet")


def _made_before_marks(hv: Hypervisor, pool: object, config: LabConfig) -> bool:
    """A pool from before upload-complete marks whose VM disks exist (they are made only
    after the image uploaded): its volumes are complete and in use."""
    vols = hv.pool_volumes(pool) or []
    return not any(identity.DONE_INFIX in v for v in vols) and any(
        naming.overlay_volume(vm) in vols for vm in config.vms.names)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _upload_image(hv: Hypervisor, config: LabConfig, image: GoldenImage,
                  me: identity.Identity, pool_path: str, progress: Progress) -> BootFiles:
    name = config.lab.name
    pool = hv.ensure_pool(naming.pool_name(name),
                          domxml.pool_xml(naming.pool_name(name), pool_path),
                          [f"{name}{naming.POOL_OWNER_SUFFIX}",
                           identity.install_marker(name, me.install)])

    pieces = [(label, local, fmt) for label, local, fmt in (
        ("kernel", image.kernel, "raw"), ("initrd", image.initrd, "raw"),
        ("golden", image.disk, "qcow2")) if local is not None]
    # all at once: to another host they share the connection's bandwidth instead of
    # each waiting for the one before (and its hashing) to end
    with ThreadPoolExecutor(max_workers=len(pieces), thread_name_prefix="upload") as ex:
        done = {label: ex.submit(_upload_piece, hv, pool, config, image.digest, label,
                                 local, fmt, progress) for label, local, fmt in pieces}
    paths = {label: fut.result() for label, fut in done.items()}
    return BootFiles(golden=paths["golden"], golden_size=image.disk_size,
                     kernel=paths.get("kernel"), initrd=paths.get("initrd"))


def _upload_piece(hv: Hypervisor, pool: Any, config: LabConfig, digest: str, label: str,
                  local: Path, fmt: str, progress: Progress) -> str:
    """One piece of the image as a pool volume (reused when its upload-complete mark
    is there); its path on the host."""
    vol_name = f"{label}-{digest}" + (".qcow2" if fmt == "qcow2" else "")
    done = identity.done_marker(vol_name, _sha256(local))
    fresh = hv.volume(pool, done) is None
    if fresh and hv.volume(pool, vol_name) is not None:
        if _made_before_marks(hv, pool, config):
            hv.mark(pool, done)
            fresh = False
        else:
            progress(f"volume {vol_name} is a partial upload (no {done}): uploading it again")
    path = hv.upload(pool, vol_name, local, fmt, domxml.volume_xml, done)
    if fresh:
        progress(f"uploaded {label} to volume {vol_name}")
    return path


def _bring_up_all(hv: Hypervisor, ctx: VmContext,
                  progress: Progress) -> list[inventory.VmEntry]:
    vms = ctx.plan.vms
    progress(f"bringing up {len(vms)} VMs in parallel ({ctx.domain_type})")
    failures: list[str] = []
    entries: list[inventory.VmEntry] = []
    with ThreadPoolExecutor(max_workers=len(vms), thread_name_prefix="vm") as pool:
        futures = {vm.name: pool.submit(_bring_up_vm, hv, ctx, vm,
                                        progress.for_subject(vm.name)) for vm in vms}
        for name, fut in futures.items():
            try:
                entries.append(fut.result())
            except LabError as exc:
                failures.append(f"{name}: {exc}")
    if failures:
        raise LabFailure(f"{len(failures)} of {len(vms)} VMs did not come up:\n  "
                         + "\n  ".join(failures),
                         hint="see the console logs under "
                              f"{ctx.config.state_dir / 'consoles'}; `lab down` removes "
                              "everything, `lab up` retries only what is missing")
    return entries


def _guest_address(ctx: VmContext, vm: VmSpec) -> GuestAddress:
    return GuestAddress(name=vm.name, host=vm.mgmt.address,
                        subnet=ctx.config.network.management, bridge=vm.mgmt.bridge,
                        key_file=ctx.image.key_file, host_key=_pinned_host_key(ctx, vm.name),
                        user=ctx.kind.login_user, shared_host_key=ctx.image.host_key_line,
                        gateway=ctx.gateway)


def _bring_up_vm(hv: Hypervisor, ctx: VmContext, vm: VmSpec,
                 say: SubjectProgress) -> inventory.VmEntry:
    log = console_log_path(ctx.config, vm.name)
    entry = dataclasses.replace(inventory.vm_entry(vm, log), host=ctx.host,
                                gateway=ctx.gateway)
    found = hv.domain_with_owner(vm.domain)
    dom = found[0] if found is not None else None
    if found is not None:
        owner = found[1]
        if owner is None or owner.lab != ctx.plan.lab:
            raise NotOurs(f"domain {vm.domain} exists but is not this lab's",
                          hint="rename the lab ([lab] name) or remove that domain")
        if not identity.owns(ctx.me, ctx.plan.lab, owner.lab, owner.install):
            raise foreign_owner(f"domain {vm.domain}", owner.state_dir)
        ctx.networks_ready()  # its NICs are on them
        _heal(hv, dom, say)
        if inventory.SNAPSHOT_NAME in hv.snapshot_names(dom) \
                and hv.state(dom) == DomainState.RUNNING:
            say.step("ssh")
            _check_alive(ctx, vm)
            say.step("up")
            say("already up (running, clean snapshot present): unchanged")
            return entry
    qemu_log = f"{ctx.console_dir}/{vm.domain}.console.log" if ctx.console_dir else log
    if dom is None and ctx.template is not None:
        dom = _from_template(hv, ctx, ctx.template, vm, qemu_log, say)
    if dom is None:
        ctx.networks_ready()
        say.step("define")
        dom, _key = _define_vm(hv, ctx, vm, qemu_log, say)
    log_start = Path(log).stat().st_size if Path(log).exists() else 0
    say.step("boot")
    if hv.state(dom) != DomainState.RUNNING:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        hv.start(dom)
        say("started; waiting for SSH on the management NIC "
            f"{vm.mgmt.address} (deadline {ctx.config.vms.boot_timeout_s}s)")
    guest, took = ssh_ready(_guest_address(ctx, vm), ctx.config.vms.boot_timeout_s,
                            alive=lambda guest: ctx.kind.handle(guest).alive(),
                            last_seen=lambda: _last_console_line(log),
                            fatal=lambda: _boot_fatal(hv, dom, ctx.kind, log, log_start),
                            progress=say)
    say(f"SSH answers after {took:.1f}s")
    with guest:  # closed before the snapshot: no session of the lab's in it
        if inventory.SNAPSHOT_NAME in hv.snapshot_names(dom):
            say.step("up")
            return entry
        handle = ctx.kind.handle(guest)
        if ctx.first_boot:
            say.step("provision")
            ctx.kind.provision(handle, say)
        say.step("settle")
        waited = settle.wait_settled(handle, vm.nics)
        if waited >= 0.5:
            say(f"NICs settled (configured, carrier) after {waited:.1f}s more")
    say.step("snapshot")
    t0 = time.monotonic()
    hv.create_snapshot(dom, domxml.snapshot_xml(inventory.SNAPSHOT_NAME, ownership(
        ctx.me, ctx.owner_run, vm.name)))
    say(f"clean snapshot taken ({time.monotonic() - t0:.1f}s)")
    say.step("up")
    return entry


def _from_template(hv: Hypervisor, ctx: VmContext, template: templates.Template, vm: VmSpec,
                   log: str, say: SubjectProgress) -> Any | None:
    """The VM made from the template (lab.clone), running; None when that failed (said
    why, the half-made VM removed): it boots instead."""
    say.step("restore")
    try:
        dom, key = _define_vm(hv, ctx, vm, log, say, template)
        clone.restore(hv, dom, vm, ctx.kind, key, say, ctx.networks_ready)
        return dom
    except NetworksFailed:
        _remove_domain(hv, vm)  # restored without NICs: no VM to keep
        raise
    except LabError as exc:
        say(f"restore from the template failed: {exc}; booting instead")
        _remove_domain(hv, vm)
        return None


def _remove_domain(hv: Hypervisor, vm: VmSpec) -> None:
    made = hv.domain(vm.domain)
    if made is not None:
        hv.remove_domain(made)


def _define_vm(hv: Hypervisor, ctx: VmContext, vm: VmSpec, log: str, say: SubjectProgress,
               template: templates.Template | None = None) -> tuple[Any, Path | None]:
    """Define the VM (its overlay: a linked clone of the golden image, or a copy of the
    template's); the domain and the VM's own private host key (None: its kind gets it
    from its identity media)."""
    pool = hv.pool(naming.pool_name(ctx.plan.lab))
    assert pool is not None
    stale = hv.volume(pool, naming.overlay_volume(vm.name))
    if stale is not None:  # its domain is gone (or was never defined: killed `lab up`)
        hv.delete_volume(stale)
        say(f"disk {naming.overlay_volume(vm.name)} had no domain (an interrupted `lab up`): "
            "made again")
    disk = hv.create_volume(pool, naming.overlay_volume(vm.name), domxml.volume_xml(
        naming.overlay_volume(vm.name), ctx.boot.golden_size, "qcow2",
        backing=ctx.boot.golden))
    made = ""
    if template is not None:
        made = clone.fill_overlay(hv, pool, naming.overlay_volume(vm.name), template,
                                  ctx.gateway)
    choices = ctx.kind.boot_choices(vm)
    initrd, key = _vm_initrd(hv, pool, ctx, vm, say)
    boot = domxml.BootSpec(disk_path=disk, console_log=log, kernel=ctx.boot.kernel,
                           initrd=initrd, cmdline=choices.cmdline, choices=choices,
                           identity_media=_identity_media(hv, pool, ctx, vm, say),
                           nics_at_boot=template is None)
    xml = domxml.domain_xml(vm, boot, ownership(ctx.me, ctx.owner_run, vm.name),
                            ctx.domain_type)
    dom = hv.define_domain(xml)
    what = f"the template's, {made}:" if template else "linked clone"
    say(f"defined {vm.domain} ({what} {naming.overlay_volume(vm.name)}, "
        f"{len(vm.test_nics)} test NICs, {vm.machine.value})")
    return dom, key


def _vm_initrd(hv: Hypervisor, pool: Any, ctx: VmContext, vm: VmSpec,
               say: SubjectProgress) -> tuple[str | None, Path | None]:
    """The VM's own initramfs carrying its own fresh SSH host key (:mod:`lab.vmkeys`),
    uploaded to the pool, and that key's private file; kinds that do not boot the lab's
    initramfs keep the image's (and no key)."""
    if ctx.boot.initrd is None or ctx.image.initrd is None:
        return ctx.boot.initrd, None
    key = vmkeys.new_host_key(ctx.config.state_dir, vm.name)
    local = vmkeys.vm_initrd_path(ctx.config.state_dir, vm.name)
    sha = vmkeys.write_vm_initrd(ctx.image.initrd, key, local)
    name = f"initrd-{vm.name}-hostkey"
    old = hv.volume(pool, name)
    if old is not None:
        hv.delete_volume(old)
    path = hv.upload(pool, name, local, "raw", domxml.volume_xml, identity.done_marker(name, sha))
    say(f"own SSH host key {key.public.split()[1][-12:]} (pinned; in its initramfs)")
    return path, key.private


def _identity_media(hv: Hypervisor, pool: Any, ctx: VmContext, vm: VmSpec,
                    say: SubjectProgress) -> str | None:
    """The VM's identity media carrying its own fresh SSH host key pair
    (:mod:`lab.guests.windows_identity`), uploaded to the pool (a 0600 volume); the local
    copy is deleted once uploaded. None for kinds that get their key another way."""
    if not ctx.kind.identity_media:
        return None
    media = windows_identity.build_identity_media(ctx.config.state_dir, vm.name)
    name = windows_identity.volume_name(vm.name)
    try:
        for stale in [name] + [v for v in hv.pool_volumes(pool) or []
                               if v.startswith(name + identity.DONE_INFIX)]:
            old = hv.volume(pool, stale)  # a former VM of this name: its media and marks
            if old is not None:
                hv.delete_volume(old)
        path = hv.upload(pool, name, media.path, "raw", domxml.volume_xml,
                         identity.done_marker(name, media.sha256))
    finally:
        media.path.unlink(missing_ok=True)
    say(f"own SSH host key {media.public.split()[1][-12:]} (pinned; on its identity media)")
    return path


def _pinned_host_key(ctx: VmContext, vm: str) -> str:
    """The host key the lab accepts from ``vm``: its own, else the image's (see vmkeys)."""
    return vmkeys.pinned_key(ctx.config.state_dir, vm) or ctx.image.host_key_line


def _heal(hv: Hypervisor, dom: Any, say: SubjectProgress) -> None:
    """Bring back a domain that crashed, was paused (an I/O error on a full pool) or is
    otherwise stuck, instead of failing with "domain is already running": destroy it and
    revert to its clean snapshot, or boot it again when it has none yet."""
    state = hv.state(dom)
    if state in _ALIVE:
        return
    name = hv.describe_state(dom)
    clean = inventory.SNAPSHOT_NAME in hv.snapshot_names(dom)
    if state != DomainState.SHUTOFF:
        hv.destroy(dom)
    if clean:
        hv.revert_snapshot(dom, inventory.SNAPSHOT_NAME)
        say(f"was {name}: reverted to its clean snapshot")
    elif state != DomainState.SHUTOFF:
        say(f"was {name}: powered off; booting it again")


#: Domain states in which a guest may still answer (blocked: waiting on a host resource).
_ALIVE = (DomainState.RUNNING, DomainState.BLOCKED)


def _boot_fatal(hv: Hypervisor, dom: Any, kind: GuestKind, log: str, start: int) -> str | None:
    """Why the boot can no longer succeed: the domain stopped running (crashed, paused,
    shut off: named with the console's last line) or the console printed a fatal line."""
    state = hv.state(dom)
    if state not in _ALIVE:
        size = Path(log).stat().st_size if Path(log).exists() else 0
        seen = _last_console_line(log) if size > start else "console: nothing printed yet"
        return f"the domain is {DomainState.NAMES.get(state, str(state))} ({seen})"
    return _fatal_console_line(kind, log, start)


def _check_alive(ctx: VmContext, vm: VmSpec) -> None:
    with Guest(_guest_address(ctx, vm), connect_timeout=10) as guest:
        if not ctx.kind.handle(guest).alive():
            raise LabFailure(f"{vm.name} is running but does not answer SSH",
                             hint="`lab down` then `lab up` recreates it")


def _last_console_line(log: str) -> str | None:
    try:
        with open(log, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(fh.tell() - 400, 0))
            lines = [ln for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return f"console: {lines[-1].strip()}" if lines else "console: (empty)"


def _fatal_console_line(kind: GuestKind, log: str, start: int) -> str | None:
    """A fatal line printed since offset ``start`` (the log is appended across boots)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(start)
            text = fh.read(1 << 20).decode(errors="replace")
    except OSError:
        return None
    return kind.fatal_console_line(text)


def _write_inventory(ctx: VmContext, entries: list[inventory.VmEntry],
                     targets: list[hosts.HostTarget]) -> inventory.Inventory:
    config, plan, image = ctx.config, ctx.plan, ctx.image
    paths = StatePaths(config.state_dir)
    order = {vm.name: i for i, vm in enumerate(plan.vms)}
    entries.sort(key=lambda e: order[e.name])
    entries = [dataclasses.replace(e, host_key=_pinned_host_key(ctx, e.name)) for e in entries]
    inventory.write_text_atomic(paths.known_hosts,
                                inventory.known_hosts_text(tuple(entries), image.host_key_line))
    inv = inventory.Inventory(
        hosts=tuple(inventory.HostEntry(t.name, t.uri, t.kind) for t in targets),
        lab=plan.lab, run=ctx.owner_run, uri=config.lab.uri, netns=decide(config).netns,
        acceleration="kvm" if ctx.domain_type == "kvm" else "tcg",
        key_file=str(image.key_file),
        host_key=image.host_key_line, known_hosts=str(paths.known_hosts),
        management_subnet=config.network.management, vms=tuple(entries),
        guest_kind=ctx.kind.name, login_user=ctx.kind.login_user)
    inventory.write(paths.inventory, inv)
    return inv
