"""`lab up`: config -> golden image -> networks -> VMs in parallel -> inventory.

Idempotent: every step first looks for what it would create (by name and lab
metadata) and only creates what is missing, so a second run on a running lab
changes nothing, and a run after a lost VM recreates just that VM.
"""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lab import accel, domxml, inventory, naming
from lab.config import Acceleration, ImageKind, LabConfig
from lab.errors import LabError, LabFailure
from lab.guest import Guest, GuestAddress, wait_for_ssh
from lab.host import LOCAL_URIS, decide, open_host
from lab.hypervisor import DomainState, Hypervisor
from lab.micro_image import MicroImage, build_image
from lab.plan import LabPlan, VmSpec, make_plan
from lab.progress import Progress, SubjectProgress


@dataclass(frozen=True)
class BootFiles:
    """Paths of the image's pieces on the hypervisor host (pool volumes)."""

    kernel: str
    initrd: str
    golden: str
    golden_size: int


@dataclass(frozen=True)
class VmContext:
    """What each VM worker needs (shared, read-only)."""

    config: LabConfig
    plan: LabPlan
    owner_run: str
    domain_type: str
    boot: BootFiles
    image: MicroImage


def console_log_path(config: LabConfig, vm: str) -> str:
    return str(config.state_dir / "consoles" / f"{vm}.log")


def micro_cmdline(vm: VmSpec) -> str:
    """Kernel command line of a micro guest: hostname and each NIC's MAC -> address."""
    nets = ",".join(f"{nic.mac}={nic.ip}" for nic in vm.nics)
    return (f"console=ttyS0,115200 root=/dev/vda rw lab.hostname={vm.name} lab.net={nets} "
            "panic=0 oops=panic log_buf_len=4M")


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def up(config: LabConfig, progress: Progress) -> inventory.Inventory:
    if config.image.kind is ImageKind.WINDOWS:
        raise LabFailure("Windows guests are not provisioned by `lab up` yet: only the micro "
                         "Linux guest is implemented",
                         hint=f"{config.path}: set [image] kind = \"linux-micro\"")
    config.state_dir.mkdir(parents=True, exist_ok=True)
    image = build_image(config.image.kernel_package, config.state_dir,
                        config.image.disk_size_mib, progress)
    accel_choice = _acceleration(config, image, progress)
    hv = open_host(config, progress)
    assert hv is not None
    with hv:
        plan = make_plan(config)
        run = _existing_run(hv, config.lab.name) or new_run_id()
        _ensure_networks(hv, plan, run, progress)
        boot = _upload_image(hv, config, image, progress)
        ctx = VmContext(config=config, plan=plan, owner_run=run,
                        domain_type=accel.domain_type(accel_choice), boot=boot,
                        image=image)
        entries = _bring_up_all(hv, ctx, progress)
        return _write_inventory(config, plan, run, accel_choice.value, image, entries)


def _acceleration(config: LabConfig, image: MicroImage, progress: Progress) -> Acceleration:
    if config.lab.uri in LOCAL_URIS:
        return accel.resolve(config.lab.acceleration, config.state_dir / "accel.json",
                             image.kernel, image.initrd, progress)
    if config.lab.acceleration is Acceleration.AUTO:
        progress("acceleration: remote host, trusting libvirt's capabilities (kvm if offered)")
        with Hypervisor(config.lab.uri, str(config.path)) as hv:
            return Acceleration.KVM if hv.domain_capable("kvm") else Acceleration.TCG
    return config.lab.acceleration


def _existing_run(hv: Hypervisor, lab: str) -> str | None:
    for _net, owner in hv.owned_networks(lab):
        return owner.run
    for _dom, owner in hv.owned_domains(lab):
        return owner.run
    return None


def _ensure_networks(hv: Hypervisor, plan: LabPlan, run: str, progress: Progress) -> None:
    owned = {net.name() for net, _ in hv.owned_networks(plan.lab)}
    for spec in plan.networks:
        existing = hv.network(spec.name)
        if existing is not None and spec.name not in owned:
            raise LabFailure(f"network {spec.name} exists but is not this lab's",
                             hint="rename the lab ([lab] name) or remove that network")
        created = hv.ensure_network(spec.name, domxml.network_xml(spec, domxml.Ownership(
            plan.lab, run)))
        progress(f"network {spec.name} ({spec.role}, bridge {spec.bridge}, "
                 f"{spec.host_ip}/{spec.prefix}) {'created' if created else 'already there'}")


def _upload_image(hv: Hypervisor, config: LabConfig, image: MicroImage,
                  progress: Progress) -> BootFiles:
    name = config.lab.name
    pool = hv.ensure_pool(naming.pool_name(name),
                          domxml.pool_xml(naming.pool_name(name), config.pool_path), name)

    def xml_for(vol: str, size: int, fmt: str) -> str:
        return domxml.volume_xml(vol, size, fmt)

    paths = {}
    for label, local, fmt in (("kernel", image.kernel, "raw"), ("initrd", image.initrd, "raw"),
                              ("golden", image.disk, "qcow2")):
        vol_name = f"{label}-{image.digest}" + (".qcow2" if fmt == "qcow2" else "")
        fresh = hv.volume(pool, vol_name) is None
        paths[label] = hv.upload(pool, vol_name, local, fmt, xml_for)
        if fresh:
            progress(f"uploaded {label} to volume {vol_name}")
    return BootFiles(kernel=paths["kernel"], initrd=paths["initrd"], golden=paths["golden"],
                     golden_size=config.image.disk_size_mib << 20)


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
    mgmt_net = next(n for n in ctx.plan.networks if n.role == "management")
    return GuestAddress(name=vm.name, host=vm.mgmt.address,
                        subnet=ctx.config.network.management, bridge=mgmt_net.bridge,
                        key_file=ctx.config.state_dir / "keys" / "id_ed25519",
                        host_key=ctx.image.host_key_line)


def _bring_up_vm(hv: Hypervisor, ctx: VmContext, vm: VmSpec,
                 say: SubjectProgress) -> inventory.VmEntry:
    log = console_log_path(ctx.config, vm.name)
    entry = inventory.vm_entry(ctx.plan, vm, log)
    dom = hv.domain(vm.domain)
    if dom is not None:
        owner = hv.owner_from_xml(dom.XMLDesc(0))
        if owner is None or owner.lab != ctx.plan.lab:
            raise LabFailure(f"domain {vm.domain} exists but is not this lab's",
                             hint="rename the lab ([lab] name) or remove that domain")
        if inventory.SNAPSHOT_NAME in hv.snapshot_names(dom) \
                and hv.state(dom) == DomainState.RUNNING:
            _check_alive(ctx, vm)
            say("already up (running, clean snapshot present): unchanged")
            return entry
    if dom is None:
        dom = _define_vm(hv, ctx, vm, log, say)
    log_start = Path(log).stat().st_size if Path(log).exists() else 0
    if hv.state(dom) != DomainState.RUNNING:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        hv.start(dom)
        say("started; waiting for SSH on the management NIC "
            f"{vm.mgmt.address} (deadline {ctx.config.vms.boot_timeout_s}s)")
    took = wait_for_ssh(_guest_address(ctx, vm), ctx.config.vms.boot_timeout_s,
                        last_seen=lambda: _last_console_line(log),
                        fatal=lambda: _fatal_console_line(log, log_start), progress=say)
    say(f"SSH answers after {took:.1f}s")
    if inventory.SNAPSHOT_NAME not in hv.snapshot_names(dom):
        t0 = time.monotonic()
        hv.create_snapshot(dom, domxml.snapshot_xml(inventory.SNAPSHOT_NAME, domxml.Ownership(
            ctx.plan.lab, ctx.owner_run, vm.name)))
        say(f"clean snapshot taken ({time.monotonic() - t0:.1f}s)")
    return entry


def _define_vm(hv: Hypervisor, ctx: VmContext, vm: VmSpec, log: str,
               say: SubjectProgress) -> object:
    pool = hv.pool(naming.pool_name(ctx.plan.lab))
    assert pool is not None
    disk = hv.create_volume(pool, naming.overlay_volume(vm.name), domxml.volume_xml(
        naming.overlay_volume(vm.name), ctx.boot.golden_size, "qcow2",
        backing=ctx.boot.golden))
    boot = domxml.BootSpec(disk_path=disk, console_log=log, kernel=ctx.boot.kernel,
                           initrd=ctx.boot.initrd, cmdline=micro_cmdline(vm))
    xml = domxml.domain_xml(vm, boot, domxml.Ownership(ctx.plan.lab, ctx.owner_run, vm.name),
                            ctx.domain_type)
    dom = hv.define_domain(xml)
    say(f"defined {vm.domain} (linked clone {naming.overlay_volume(vm.name)}, "
        f"{len(vm.test_nics)} test NICs, {vm.machine.value})")
    return dom


def _check_alive(ctx: VmContext, vm: VmSpec) -> None:
    with Guest(_guest_address(ctx, vm), connect_timeout=10) as guest:
        guest.run("true", timeout=20)


def _last_console_line(log: str) -> str | None:
    try:
        with open(log, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(fh.tell() - 400, 0))
            lines = [ln for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return f"console: {lines[-1].strip()}" if lines else "console: (empty)"


#: Console lines that mean a boot cannot reach SSH any more.
FATAL_MARKERS = ("lab-initramfs: cannot", "lab-initramfs: no /dev/vda", "Kernel panic")


def _fatal_console_line(log: str, start: int) -> str | None:
    """A fatal line printed since offset ``start`` (the log is appended across boots)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(start)
            text = fh.read(1 << 20).decode(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if any(marker in line for marker in FATAL_MARKERS):
            return line.strip()
    return None


def _write_inventory(config: LabConfig, plan: LabPlan, run: str, accel_name: str,
                     image: MicroImage, entries: list[inventory.VmEntry]) -> inventory.Inventory:
    order = {vm.name: i for i, vm in enumerate(plan.vms)}
    entries.sort(key=lambda e: order[e.name])
    known_hosts = config.state_dir / "known_hosts"
    known_hosts.write_text(inventory.known_hosts_text(tuple(entries), image.host_key_line))
    inv = inventory.Inventory(
        lab=plan.lab, run=run, uri=config.lab.uri, netns=decide(config).netns,
        acceleration=accel_name, key_file=str(config.state_dir / "keys" / "id_ed25519"),
        host_key=image.host_key_line, known_hosts=str(known_hosts),
        management_subnet=config.network.management, vms=tuple(entries))
    inventory.write(config.state_dir / inventory.INVENTORY_NAME, inv)
    return inv
