"""The micro Linux guest kind: Debian kernel + busybox + dropbear, Linux twins of the drivers.

Everything Linux-specific the lab does inside a guest lives here: how adapters
are found (``/sys/class/net``, ``ip -o -4 addr``), the kernel log (``dmesg``),
and the twins' deployment (``insmod``/``rmmod``, the control file). The image
builder is :mod:`lab.guests.micro_image`.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from lab.config import NIC_MODELS
from lab.domxml import AGENT_CHANNEL
from lab.drivers import DriverManifest, LinuxTwin
from lab.errors import CommandTimeout, ConfigError, DriverFailure, DriverHang, LabFailure
from lab.guests.base import (
    AdapterInfo,
    AgentCall,
    BootChoices,
    CommandResult,
    ContractItem,
    Deployment,
    GoldenImage,
    GuestHandle,
    GuestKind,
    PendingUnload,
    RestoredIdentity,
    RunningCommand,
    Shell,
    wait_or_hang,
)
from lab.guests.micro_image import build_image, missing_modules
from lab.guests.twins_build import ensure_built
from lab.journal import Journal, Vocabulary, parse_journal
from lab.paths import StatePaths
from lab.plan import VmSpec, make_plan
from lab.progress import Progress

#: The twins' module names (what `make drivers-linux` builds per kernel release);
#: labtdiobs is labtdi's observer client (drivers/labtdiobs/driver.toml).
TWIN_MODULES = ("kecho", "labtdi", "labtdiobs")

#: Where the twins are copied inside the guest.
GUEST_DIR = PurePosixPath("/tmp/lab-drivers")
#: Twins installed to persist across a reboot, on the guest's disk, and the boot list
#: the image's /etc/init.d/lab-drivers loads them from at boot, in its order.
PERSIST_DIR = PurePosixPath("/lib/lab-drivers")
BOOT_LIST = PurePosixPath("/etc/lab-drivers.conf")
#: Identifies one boot of the guest's kernel (random per boot).
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
#: Reboot a second after the SSH command returned (busybox init runs its shutdown
#: actions, syncing the disk, then restarts the machine; QEMU keeps the domain running).
REBOOT_COMMAND = "(sleep 1; reboot) </dev/null >/dev/null 2>&1 &"

#: One line per interface ("<name> <mac> <ifindex> <carrier>"; carrier 1, 0, or - when
#: unreadable: the adapter is down), then the IPv4 addresses.
_ADAPTERS_CMD = ("for d in /sys/class/net/*; do echo \"if $(basename $d) $(cat $d/address) "
                 "$(cat $d/ifindex) $(cat $d/carrier 2>/dev/null || echo -)\"; done; "
                 "ip -o -4 addr")

#: Per interface its packet counters (sysfs), then labtdi's per-binding L2 echo counters
#: (/proc/labtdi/adapters/<ifindex>: requests seen, replies sent) when it is loaded.
_COUNTERS_CMD = ("for d in /sys/class/net/*; do s=$d/statistics; echo \"$(basename $d) "
                 "rx_packets $(cat $s/rx_packets) rx_dropped $(cat $s/rx_dropped) "
                 "tx_packets $(cat $s/tx_packets) tx_dropped $(cat $s/tx_dropped)\"; done; "
                 "for f in /proc/labtdi/adapters/*; do [ -f \"$f\" ] && echo \"labtdi "
                 "binding $(basename $f):\" $(cat \"$f\"); done; true")

#: Interface names written to a twin's control file (never need quoting).
_IFNAME = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")


def insmod_argv(twin: LinuxTwin, guest_file: PurePosixPath,
                knobs: Sequence[str] = (), skip_macs: Sequence[str] = ()) -> list[str]:
    """``insmod`` argv loading the twin with the given fault knobs on, never binding
    the adapters with ``skip_macs`` (when the twin takes them)."""
    return ["insmod", str(guest_file),
            *(f"{k}={v}" for k, v in twin.load_params(knobs, skip_macs))]


def rmmod_argv(twin: LinuxTwin) -> list[str]:
    return ["rmmod", twin.module]


def control_line(verb: str, ifname: str) -> str:
    """The line a twin's control file takes ("unbind eth1")."""
    if verb not in ("bind", "unbind") or not _IFNAME.match(ifname):
        raise ValueError(f"bad control request {verb!r} {ifname!r}")
    return f"{verb} {ifname}"


#: The MTU a NIC reset switches to before it restores the adapter's own (any value
#: every NIC model accepts; an MTU change makes vmxnet3 and e1000e re-create their rings).
RESET_MTU = 1400


def reset_command(ifname: str, mtu: int) -> str:
    """A NIC reset: MTU to :data:`RESET_MTU` and back to ``mtu``, then admin down and up
    (every driver's stop and open); stops at the first step that fails."""
    if not _IFNAME.match(ifname) or mtu <= 0:
        raise ValueError(f"bad NIC reset request {ifname!r} mtu {mtu}")
    other = RESET_MTU if mtu != RESET_MTU else RESET_MTU - 100
    steps = (("mtu", str(other)), ("mtu", str(mtu)), ("down",), ("up",))
    return " && ".join(shlex.join(["ip", "link", "set", "dev", ifname, *step])
                       for step in steps)


#: A PCI function address ("0000:02:00.0"), the name of its /sys/bus/pci/devices entry.
_PCI_ADDRESS = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


def pci_function(device_path: str) -> str:
    """The PCI function a network interface sits on, from ``readlink -f
    /sys/class/net/<if>/device`` (a virtio NIC's device is the virtio device below its
    PCI function): the path's last component that is a PCI address."""
    found = [part for part in device_path.strip().split("/") if _PCI_ADDRESS.match(part)]
    if not found:
        raise LabFailure(f"no PCI function in the adapter's device path {device_path!r}")
    return found[-1]


def pci_remove_command(function: str) -> str:
    """Remove one PCI function: its driver's remove runs (the netdev is unregistered,
    every protocol must let go) before the write returns (sysfs-bus-pci)."""
    if not _PCI_ADDRESS.match(function):
        raise ValueError(f"bad PCI function {function!r}")
    return f"echo 1 > {shlex.quote(f'/sys/bus/pci/devices/{function}/remove')}"


#: Rescan every PCI bus: removed functions are found and probed again (sysfs-bus-pci).
PCI_RESCAN_COMMAND = "echo 1 > /sys/bus/pci/rescan"


#: Suspend to RAM a second after the SSH command returned (Documentation/admin-guide/
#: pm/sleep-states.rst: "mem" is the deep state, S3, when /sys/power/mem_sleep says so).
SLEEP_COMMAND = "(sleep 1; echo mem > /sys/power/state) </dev/null >/dev/null 2>&1 &"


def net_argument(vm: VmSpec) -> str:
    """Each NIC's MAC -> address, as /sbin/lab-netup reads them (<mac>=<ip/len>,...)."""
    return ",".join(f"{nic.mac}={nic.ip}" for nic in vm.nics)


def micro_cmdline(vm: VmSpec) -> str:
    """Kernel command line of a micro guest: hostname and each NIC's MAC -> address."""
    return _cmdline(vm.name, net_argument(vm))


#: The template's hostname (lab.template); each VM restored from it takes its own.
TEMPLATE_HOSTNAME = "template"


def template_cmdline(vm: VmSpec | None = None) -> str:
    """The template's kernel command line: no hostname or address of any VM; the drivers
    of ``vm``'s NIC models loaded at boot (``lab.preload=``, rcS), as a VM booted with
    those NICs has them, so a VM made from it does not load them while it comes up."""
    line = _cmdline(TEMPLATE_HOSTNAME, "")
    if vm is None:
        return line
    modules = sorted({NIC_MODELS[nic.model] for nic in vm.nics if nic.model in NIC_MODELS})
    return f"{line} lab.preload={','.join(modules)}" if modules else line


def _cmdline(hostname: str, nets: str) -> str:
    return (f"console=ttyS0,115200 root=/dev/vda rw lab.hostname={hostname} lab.net={nets} "
            f"{' '.join(PANIC_PARAMS + HANG_PARAMS)} log_buf_len=4M")


def identity_arguments(restored: RestoredIdentity) -> dict[str, object]:
    """The arguments of lab-agent's lab-identity command (images/linux-micro/lab-agent.c)."""
    if restored.host_key is None:
        raise LabFailure(f"{restored.vm.name}: no SSH host key of its own to take")
    return {"hostname": restored.vm.name, "net": net_argument(restored.vm),
            "hostkey": restored.host_key.read_bytes().hex(), "seed": restored.seed.hex(),
            "epoch": restored.epoch}


def parse_adapters(text: str) -> tuple[AdapterInfo, ...]:
    """Adapters from the output of :data:`_ADAPTERS_CMD`."""
    found: dict[str, tuple[str, int, bool | None]] = {}
    addrs: dict[str, list[str]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) in (4, 5) and parts[0] == "if" and parts[3].isdigit():
            carrier = {"1": True, "0": False}.get(parts[4]) if len(parts) == 5 else None
            found[parts[1]] = (parts[2].lower(), int(parts[3]), carrier)
        elif len(parts) >= 4 and parts[2] == "inet":
            addrs.setdefault(parts[1], []).append(parts[3])
    return tuple(AdapterInfo(mac=mac, name=name, index=index,
                             addresses=tuple(addrs.get(name, ())), carrier=carrier)
                 for name, (mac, index, carrier) in found.items())


#: LAB_MEMORY_SAVING=off: micro VMs defined without the TB cache cap and the free page
#: reporting balloon (BootChoices), to measure what they save.
MEMORY_SAVING_ENV = "LAB_MEMORY_SAVING"


def micro_choices(cmdline: str) -> BootChoices:
    """The micro guest's domain choices (the template's as its VMs': same hardware)."""
    if os.environ.get(MEMORY_SAVING_ENV) == "off":
        # QEMU's 1 GiB translation cache and no balloon (bench/lab/rss.py's baseline)
        return BootChoices(cmdline=cmdline, tb_cache_mib=None, free_page_reporting=False)
    return BootChoices(cmdline=cmdline)


class LinuxMicro(GuestKind):
    """Micro Linux guests, built here from Debian packages (the embedded default)."""

    name = "linux-micro"
    login_user = "root"
    shell = "sh"
    boot_failure_markers = ("lab-initramfs: cannot", "lab-initramfs: no /dev/vda")
    panic_markers = ("Kernel panic",)
    management_nic = "virtio"
    deploys_mutants = True
    observer_driver = "labtdiobs"
    ready_marker = "lab-guest: ready"
    #: lab-identity first (no NIC yet: quick); each hot-plugged NIC then gets its
    #: address once, from lab-netup (run by lab-uevent) reading /run/lab/net
    identity_before_nics = True

    def check(self) -> None:
        """Nothing to check up front: the image is built here from Debian packages."""

    def prepare_image(self, progress: Progress) -> GoldenImage:
        paths = StatePaths(self.config.state_dir)
        image = build_image(self.config.image.kernel_package, self.config.state_dir,
                            self.config.image.disk_size_mib, progress,
                            check_tree=self.check_kernel_tree)
        return GoldenImage(disk=image.disk, digest=image.digest,
                           disk_size=self.config.image.disk_size_mib << 20,
                           key_file=paths.client_key, host_key_line=image.host_key_line,
                           kernel=image.kernel, initrd=image.initrd)

    def check_kernel_tree(self, tree: Path) -> None:
        """Every test NIC model's Linux driver is in the kernel: a NIC without one is
        never listed by the guest, which would only show as a timeout much later."""
        needed = {NIC_MODELS[m]: m for m in self.config.vms.test_nics}
        missing = missing_modules(tree, tuple(needed))
        if missing:
            models = ", ".join(f"{needed[d]} (driver {d})" for d in missing)
            raise ConfigError(str(self.config.path), "image.kernel_package",
                              f"{self.config.image.kernel_package} ({tree.name}) has no "
                              f"driver for the test NIC model {models} in vms.test_nics",
                              'use kernel_package = "linux-image-amd64" (it has e1000e), '
                              "or NIC models this kernel drives")

    def boot_choices(self, vm: VmSpec) -> BootChoices:
        return micro_choices(micro_cmdline(vm))

    def template_boot_choices(self, vm: VmSpec) -> BootChoices | None:
        return micro_choices(template_cmdline(vm))

    def take_identity(self, restored: RestoredIdentity, agent: AgentCall) -> None:
        """Hostname, NIC addresses, clock, random seed and SSH host key in one lab-agent
        command; the agent restarts dropbear with the key itself (no shell)."""
        reply = agent("lab-identity", identity_arguments(restored))
        if reply != {"identity": restored.vm.name}:
            raise LabFailure(f"{restored.vm.name}: lab-identity answered {reply!r}, "
                             f"not {{'identity': {restored.vm.name!r}}}",
                             hint="rebuild the image (`lab images`): its lab-agent may be "
                                  "older than the lab")

    def handle(self, shell: Shell) -> LinuxMicroHandle:
        return LinuxMicroHandle(shell)

    def contract(self, handle: GuestHandle) -> list[ContractItem]:
        """The micro image's contract (:data:`MICRO_CHECKS`), in a VM of this lab."""
        try:
            vm: VmSpec | None = make_plan(self.config).vm(handle.name)
        except KeyError:
            vm = None
        return micro_contract(handle, vm)


class LinuxMicroHandle(GuestHandle):
    """One micro guest over SSH (busybox sh as root)."""

    resets_closed_ports = True

    def adapters(self) -> tuple[AdapterInfo, ...]:
        return parse_adapters(self.shell.run(_ADAPTERS_CMD, timeout=30).stdout)

    def alive(self) -> bool:
        try:
            return self.shell.run("true", timeout=10, check=False).ok
        except LabFailure:
            self.shell.close()
            return False

    def kernel_log(self) -> str:
        return self.shell.run("dmesg", timeout=20, check=False).stdout

    def deployment(self, manifest: DriverManifest, vocabulary: Vocabulary) -> LinuxTwinDeployment:
        skip = (self.management_mac,) if self.management_mac else ()
        return LinuxTwinDeployment(self.shell, manifest, vocabulary, skip_macs=skip)

    def network_state(self) -> str:
        """The adapters, then each interface's packet counters and the transport twin's
        per-binding echo counters (did the probes arrive, were replies sent)."""
        counters = self.shell.run(_COUNTERS_CMD, timeout=30, check=False).stdout
        return f"{super().network_state()}\n{counters}"

    def media_connected(self, adapter: AdapterInfo) -> bool | None:
        """``/sys/class/net/<name>/carrier`` (1 or 0; unreadable on a down adapter)."""
        res = self.shell.run(shlex.join(["cat", f"/sys/class/net/{adapter.name}/carrier"]),
                             timeout=30, check=False)
        value = res.stdout.strip()
        return None if value not in ("0", "1") else value == "1"

    def reset_adapter(self, adapter: AdapterInfo, deadline: float) -> None:
        """MTU change and admin down/up of the adapter (:func:`reset_command`)."""
        mtu_file = f"/sys/class/net/{adapter.name}/mtu"
        mtu = self.shell.run(shlex.join(["cat", mtu_file]), timeout=30).stdout.strip()
        if not mtu.isdigit():
            raise LabFailure(f"{self.name}: cannot read the MTU of {adapter.name}: {mtu!r}")
        command = reset_command(adapter.name, int(mtu))
        try:
            res = self.shell.run(command, timeout=deadline, check=False)
        except CommandTimeout as exc:
            raise DriverHang(f"driver hung: the reset of {adapter.name} ({adapter.mac}) did "
                             f"not return within {deadline:.0f}s") from exc
        if not res.ok:
            raise LabFailure(f"{self.name}: NIC reset of {adapter.name} failed "
                             f"({res.exit_code}): {res.stderr.strip()[-300:]}")

    def disable_adapter(self, adapter: AdapterInfo, deadline: float) -> None:
        """Remove the adapter's PCI function (:func:`pci_remove_command`)."""
        path = self.shell.run(shlex.join(["readlink", "-f",
                                          f"/sys/class/net/{adapter.name}/device"]),
                              timeout=30, check=False).stdout
        command = pci_remove_command(pci_function(path))
        res = wait_or_hang(self.shell.start(command), deadline,
                           f"the removal of {adapter.name}'s PCI function ({adapter.mac})")
        if not res.ok:
            raise LabFailure(f"{self.name}: {command} failed ({res.exit_code}): "
                             f"{res.stderr.strip()[-300:]}")

    def enable_adapter(self, adapter: AdapterInfo, deadline: float) -> None:
        """A PCI bus rescan: the removed function is probed again (a new ifindex)."""
        del adapter
        try:
            res = self.shell.run(PCI_RESCAN_COMMAND, timeout=deadline, check=False)
        except CommandTimeout as exc:
            raise LabFailure(f"{self.name}: the PCI rescan did not return within "
                             f"{deadline:.0f}s") from exc
        if not res.ok:
            raise LabFailure(f"{self.name}: PCI rescan failed ({res.exit_code}): "
                             f"{res.stderr.strip()[-300:]}")

    def boot_id(self) -> str | None:
        try:
            res = self.shell.run(f"cat {BOOT_ID_FILE}", timeout=15, check=False)
        except LabFailure:
            self.shell.close()
            return None
        return (res.stdout.strip() or None) if res.ok else None

    def start_reboot(self) -> None:
        self.shell.run(REBOOT_COMMAND, timeout=30)
        self.shell.close()

    def start_sleep(self) -> None:
        """``echo mem > /sys/power/state`` in the background (the SSH command returns
        first; the kernel's suspend entry freezes the SSH server with everything else)."""
        states = self.shell.run("cat /sys/power/state", timeout=30, check=False).stdout.split()
        if "mem" not in states:
            raise LabFailure(f"{self.name}: the kernel offers no suspend to RAM "
                             f"(/sys/power/state: {' '.join(states) or 'empty'})",
                             hint="the domain needs <pm><suspend-to-mem enabled='yes'/> "
                                  "(lab.domxml) and the kernel CONFIG_SUSPEND")
        self.shell.run(SLEEP_COMMAND, timeout=30)

    def hang_evidence(self, folder: Path, nmi: Callable[[], None]) -> list[str]:
        """Blocked-task stacks (sysrq w) into ``hang-stacks.txt``; no NMI needed."""
        del nmi
        try:
            self.shell.run("echo w > /proc/sysrq-trigger", timeout=15, check=False)
            text = self.shell.run("dmesg | tail -n 400", timeout=20, check=False).stdout
        except LabFailure as exc:
            return [f"blocked-task stacks unavailable over SSH: {exc.summary}",
                    self._oob_stacks()]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "hang-stacks.txt").write_text(text)
        return ["blocked-task stacks (sysrq w) in hang-stacks.txt"]

    def crash_evidence(self, folder: Path) -> list[str]:
        """The panic's lines from the host's memory dump (``memory.elf``) into
        ``panic-from-dump.txt``: a panic in NMI context (the watchdog's) never reaches
        the console, as printk defers it there and pvpanic stops the guest first."""
        dump = folder / "memory.elf"
        if not dump.exists():
            return []
        lines = dump_panic_lines(dump)
        if not lines:
            return ["no panic line found in memory.elf"]
        (folder / "panic-from-dump.txt").write_text("".join(f"{line}\n" for line in lines))
        return [f"from the memory dump: {line}" for line in lines]

    def _oob_stacks(self) -> str:
        """SysRq w through the guest agent: the stacks reach the serial console."""
        if self.oob_sysrq is None:
            return "no guest agent to ask for the stacks"
        try:
            done = self.oob_sysrq("w")
        except LabFailure as exc:
            return f"guest agent silent too: {exc.summary}"
        return ("blocked-task stacks (sysrq w via the guest agent) in console.log"
                if done else "the guest agent could not trigger sysrq w")


#: Kernel log text that names a panic and where the CPU was, as it sits in the printk
#: ring of a memory dump (records are plain text; a record may end in stale bytes).
_DUMP_PANIC = re.compile(rb"(?:Kernel panic - not syncing: |NMI received for unknown reason "
                         rb"|RIP: 0010:)[\x20-\x7e]{1,160}")
_DUMP_CHUNK = 64 << 20


def dump_panic_lines(dump: Path, limit: int = 8) -> list[str]:
    """The first ``limit`` distinct panic/RIP lines in ``dump`` (format strings skipped)."""
    found: list[str] = []
    tail = b""
    with dump.open("rb") as fh:
        while len(found) < limit and (chunk := fh.read(_DUMP_CHUNK)):
            data = tail + chunk
            for m in _DUMP_PANIC.finditer(data):
                line = m.group().decode("ascii")
                if "%" not in line and line not in found and m.end() < len(data):
                    found.append(line)
            tail = data[-256:]
    return found[:limit]


def module_release(ko: Path) -> str | None:
    """The kernel release a module was built for (first word of its vermagic)."""
    try:
        out = subprocess.run(["modinfo", "-F", "vermagic", str(ko)], capture_output=True,
                             text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.split()[0] if out.split() else None


class LinuxPendingUnload(PendingUnload):
    """An rmmod running on its own SSH channel."""

    def __init__(self, module: str, running: RunningCommand) -> None:
        self.module = module
        self.running = running
        self.t0 = time.monotonic()

    def finished(self) -> bool:
        return self.running.finished()

    def wait(self, deadline: float) -> float:
        t0 = time.monotonic()
        res = wait_or_hang(self.running, deadline, f"rmmod {self.module}")
        _check_rmmod(self.module, res)
        return time.monotonic() - t0


def _check_rmmod(module: str, res: CommandResult) -> None:
    if not res.ok:
        raise DriverFailure(f"{module}: rmmod failed ({res.exit_code}): "
                            f"{res.stderr.strip()[-300:]}")


class LinuxTwinDeployment(Deployment):
    """The Linux twin (kernel module) of one driver, in a micro guest."""

    def __init__(self, shell: Shell, manifest: DriverManifest, vocabulary: Vocabulary,
                 skip_macs: Sequence[str] = ()) -> None:
        if manifest.linux is None:
            raise LabFailure(f"{manifest.path}: driver {manifest.name} has no [linux] table",
                             hint="add the Linux twin's [linux] table to the manifest")
        self.name = manifest.name
        self.manifest = manifest
        self.twin: LinuxTwin = manifest.linux
        self.module = self.twin.module
        self.shell = shell
        self.vocabulary = vocabulary
        self.unload_deadline_s = self.twin.unload_deadline_s
        self.serves_echo = manifest.name == "wskecho"
        self.guest_file = GUEST_DIR / self.twin.file.name
        #: adapters the twin must never bind (the management NIC)
        self.skip_macs = tuple(skip_macs)

    def install(self) -> None:
        """Copy the twin built for the guest's kernel (built now if missing or stale)."""
        guest_release = self.shell.run("uname -r", timeout=30).stdout.strip()
        local = self._built(guest_release) / self.twin.file.name
        built_for = module_release(local)
        if built_for is not None and built_for != guest_release:
            raise LabFailure(f"{local} was built for kernel {built_for}, "
                             f"the guest runs {guest_release}",
                             hint="rebuild the twins for the guest's kernel: "
                                  f"`make drivers-linux LINUX_TWINS_ABI={guest_release}`")
        self.shell.run(shlex.join(["mkdir", "-p", str(GUEST_DIR)]))
        self.shell.put(local, str(self.guest_file))

    def _built(self, release: str) -> Path:
        """The folder with the twin (or the mutant the self-test asked for) for ``release``."""
        if self.twin.variant is None:
            return ensure_built(release, TWIN_MODULES)
        from lab.selftest.build import ensure_variant_built  # only the self-test needs it
        from lab.selftest.mutants import find_mutant

        mutant = find_mutant(self.twin.variant)
        if mutant.driver != self.name:
            return ensure_built(release, TWIN_MODULES)
        folder = ensure_variant_built(release, mutant)
        if not (folder / self.twin.file.name).exists():  # a module the mutant's dir lacks
            return ensure_built(release, TWIN_MODULES)
        return folder

    def install_persistent(self, knobs: Sequence[str] = ()) -> None:
        """Copy the twin to the guest's disk and append its insmod line to the boot list
        (loaded at every boot by the image's /etc/init.d/lab-drivers), then sync."""
        self.install()
        persisted = PERSIST_DIR / self.twin.file.name
        line = shlex.join(insmod_argv(self.twin, persisted, knobs, self.skip_macs)[1:])
        self.shell.run(" && ".join((
            shlex.join(["mkdir", "-p", str(PERSIST_DIR)]),
            shlex.join(["cp", str(self.guest_file), str(persisted)]),
            f"echo {shlex.quote(line)} >> {shlex.quote(str(BOOT_LIST))}", "sync")),
            timeout=60)

    def load(self, knobs: Sequence[str] = ()) -> None:
        argv = insmod_argv(self.twin, self.guest_file, knobs, self.skip_macs)
        res = self.shell.run(shlex.join(argv), timeout=60, check=False)
        if not res.ok:
            raise DriverFailure(f"{self.module}: insmod failed ({res.exit_code}): "
                                f"{res.stderr.strip()[-300:]}")
        if not self.loaded():
            raise DriverFailure(f"{self.module}: insmod returned but the module is not loaded")

    def loaded(self) -> bool:
        res = self.shell.run(shlex.join(["test", "-d", f"/sys/module/{self.module}"]),
                             timeout=30, check=False)
        return res.ok

    def start_unload(self) -> LinuxPendingUnload:
        return LinuxPendingUnload(self.module,
                                  self.shell.start(shlex.join(rmmod_argv(self.twin))))

    def unload(self, deadline: float | None = None) -> float:
        """rmmod; a module that does not unload in time is a hung driver."""
        took = self.start_unload().wait(deadline if deadline is not None
                                        else self.unload_deadline_s)
        if self.loaded():
            raise DriverFailure(f"{self.module}: rmmod returned but the module is still loaded")
        return took

    def journal(self) -> Journal:
        """The whole journal since boot, from the kernel log (survives the unload)."""
        out = self.shell.run("dmesg | grep 'labjournal: ' || true", timeout=30).stdout
        return parse_journal(out.splitlines(), self.vocabulary).of_driver(self.module)

    def _control(self, verb: str, adapter: AdapterInfo) -> None:
        if self.twin.control is None:
            raise LabFailure(f"{self.manifest.path}: {self.name} has no control file to {verb}")
        line = control_line(verb, adapter.name)
        self.shell.run(f"echo {shlex.quote(line)} > {shlex.quote(str(self.twin.control))}",
                       timeout=15)

    def unbind(self, adapter: AdapterInfo) -> None:
        self._control("unbind", adapter)

    def bind(self, adapter: AdapterInfo) -> None:
        self._control("bind", adapter)


# ---- the micro image's contract (`lab image check`) ---------------------------------

#: Rebuilding the image is the fix for anything baked into it.
_REBUILD = "rebuild the micro image (`lab images --force`), then `lab down` and `lab up`"


def _sh(handle: GuestHandle, command: str) -> CommandResult:
    return handle.shell.run(command, timeout=30, check=False)


def check_root_login(handle: GuestHandle, vm: VmSpec | None) -> ContractItem:
    """The lab logs in as root with its pinned key (this very session proves the key)."""
    del vm
    uid = _sh(handle, "id -u").stdout.strip()
    return ContractItem("root login with the lab key", uid == "0",
                        f"SSH session with the lab key runs as uid {uid or '?'}",
                        "root's ~/.ssh/authorized_keys must hold the lab key; " + _REBUILD)


def check_module_tree(handle: GuestHandle, vm: VmSpec | None) -> ContractItem:
    """modprobe (hotplug, coldplug) reads /lib/modules/$(uname -r)/modules.dep (depmod(8))."""
    del vm
    res = _sh(handle, 'r=$(uname -r); echo "$r"; test -s "/lib/modules/$r/modules.dep"')
    release = res.stdout.strip() or "?"
    return ContractItem("module tree of the running kernel", res.ok,
                        f"/lib/modules/{release}/modules.dep "
                        + ("present" if res.ok else "missing"),
                        "the root disk must carry the booted kernel's modules with depmod "
                        "output; " + _REBUILD)


#: Kernel parameters the lab's crash detection needs: a panic must stop the guest so
#: pvpanic reports it (panic=0: no reboot) and an oops must panic (oops=panic)
#: (Documentation/admin-guide/kernel-parameters.txt).
PANIC_PARAMS = ("panic=0", "oops=panic")

#: Hang detection: a soft lockup (a CPU stuck in the kernel) panics, so it becomes a
#: crash; a task blocked in D state for 10 s (a stuck rmmod) only prints its stack on
#: the console (no hung_task_panic), so the lab still reports "driver hung"
#: (Documentation/admin-guide/kernel-parameters.txt, sysctl/kernel.rst). The timeout
#: has no boot parameter of its own: ``sysctl.<key>=`` sets it (Linux >= 5.8).
#: A hard lockup (a CPU spinning with interrupts off; TCG has no perf NMI watchdog)
#: starves /sbin/lab-watchdog, the i6300esb runs out and injects an NMI, which
#: unknown_nmi_panic turns into a panic (arch/x86/kernel/nmi.c, sysctl/kernel.rst).
#: Each pairs with the /proc/sys value the contract check reads back.
HANG_SETTINGS = (("softlockup_panic=1", "kernel/softlockup_panic", "1"),
                 ("sysctl.kernel.hung_task_timeout_secs=10",
                  "kernel/hung_task_timeout_secs", "10"),
                 ("unknown_nmi_panic", "kernel/unknown_nmi_panic", "1"))
HANG_PARAMS = tuple(param for param, _, _ in HANG_SETTINGS)
_SYSCTLS_CMD = " ".join(f"echo {key} $(cat /proc/sys/{key});" for _, key, _ in HANG_SETTINGS)


def check_panic_params(handle: GuestHandle, vm: VmSpec | None) -> ContractItem:
    del vm
    words = _sh(handle, "cat /proc/cmdline").stdout.split()
    wanted = PANIC_PARAMS + HANG_PARAMS
    missing = [p for p in wanted if p not in words]
    values = dict(line.split(" ", 1) for line in _sh(handle, _SYSCTLS_CMD).stdout.splitlines()
                  if " " in line)
    missing += [f"{key}={values.get(key, '?')}(want {want})"
                for _, key, want in HANG_SETTINGS if values.get(key, "").strip() != want]
    return ContractItem("kernel command line panics on oops, detects hangs", not missing,
                        f"/proc/cmdline lacks {' '.join(missing)}" if missing
                        else f"/proc/cmdline has {' '.join(wanted)}",
                        f"boot with {' '.join(wanted)} "
                        "(lab.guests.linux_micro.micro_cmdline); "
                        "recreate the VM (`lab down`, `lab up`)")


def check_sysrq(handle: GuestHandle, vm: VmSpec | None) -> ContractItem:
    """kernel.sysrq 0 disables every SysRq function from the keyboard/serial console
    (Documentation/admin-guide/sysrq.rst); the lab's hang evidence uses SysRq w."""
    del vm
    value = _sh(handle, "cat /proc/sys/kernel/sysrq").stdout.strip()
    ok = value.isdigit() and int(value) != 0
    return ContractItem("magic SysRq enabled", ok, f"kernel.sysrq = {value or '?'}",
                        "enable it at boot (`echo 1 > /proc/sys/kernel/sysrq` in "
                        "images/linux-micro/rootfs/etc/init.d/rcS, or sysrq_always_enabled "
                        "on the kernel command line)")


#: The ISA pvpanic device is the ACPI device QEMU0001 (QEMU docs/specs/pvpanic.rst);
#: Linux binds pvpanic-mmio to it (its module alias is acpi*:QEMU0001:*).
_PVPANIC_CMD = ("for d in /sys/bus/acpi/devices/QEMU0001:*; do [ -e \"$d\" ] || continue; "
                "echo \"device ${d##*/}\"; drv=$(readlink \"$d/physical_node/driver\"); "
                "echo \"driver ${drv##*/}\"; done")


def check_pvpanic(handle: GuestHandle, vm: VmSpec | None) -> ContractItem:
    del vm
    lines = dict(line.split(" ", 1) for line in _sh(handle, _PVPANIC_CMD).stdout.splitlines()
                 if " " in line)
    device, driver = lines.get("device", ""), lines.get("driver", "").strip()
    ok = bool(device) and bool(driver)
    detail = ("no ACPI QEMU0001 device" if not device
              else f"{device} bound to {driver}" if driver else f"{device} has no driver")
    return ContractItem("pvpanic device with its driver", ok, detail,
                        "the domain needs <panic model='isa'/> (lab.domxml) and the guest the "
                        "pvpanic-mmio module, loaded at boot by the coldplug in rcS")


#: rcS runs the lab's uevent listener (images/linux-micro/lab-uevent.c): it loads NIC
#: drivers and configures hot-plugged (replugged) test NICs.
HOTPLUG_ARGV = ("/sbin/lab-uevent",)
_PROCS_CMD = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\"; echo; done 2>/dev/null"


def check_hotplug_helper(handle: GuestHandle, vm: VmSpec | None) -> ContractItem:
    del vm
    running = any(tuple(line.split()[:1]) == HOTPLUG_ARGV
                  for line in _sh(handle, _PROCS_CMD).stdout.splitlines())
    return ContractItem("hotplug uevent helper running", running,
                        f"{' '.join(HOTPLUG_ARGV)} " + ("running" if running else "not running"),
                        "rcS must start `/sbin/lab-uevent &` before the NICs come up; "
                        + _REBUILD)


#: The out-of-band agent (lab.agent): init respawns it; it serves this virtio-serial port.
AGENT_ARGV = ("/sbin/lab-agent",)
_AGENT_PORT_CMD = "cat /sys/class/virtio-ports/*/name 2>/dev/null"


def check_guest_agent(handle: GuestHandle, vm: VmSpec | None) -> ContractItem:
    del vm
    running = any(tuple(line.split()[:1]) == AGENT_ARGV
                  for line in _sh(handle, _PROCS_CMD).stdout.splitlines())
    port = AGENT_CHANNEL in _sh(handle, _AGENT_PORT_CMD).stdout.split()
    detail = (f"lab-agent {'running' if running else 'not running'}, port {AGENT_CHANNEL} "
              + ("present" if port else "missing"))
    return ContractItem("guest agent on its virtio-serial port", running and port, detail,
                        "the domain needs the virtio-serial channel (lab.domxml, `lab down` + "
                        "`lab up`), the image /sbin/lab-agent respawned by /etc/inittab and "
                        "the virtio_console module (coldplug); " + _REBUILD)


def check_sftp(handle: GuestHandle, vm: VmSpec | None) -> ContractItem:
    """Drivers are copied in over SFTP (dropbear runs sftp-server): copy a token and read it."""
    del vm
    token = secrets.token_hex(8)
    remote = f"/tmp/lab-contract-{token}"
    with tempfile.TemporaryDirectory(prefix="lab-contract-") as tmp:
        local = Path(tmp) / "token"
        local.write_text(token)
        try:
            handle.shell.put(local, remote)
        except LabFailure as exc:
            return ContractItem("SFTP file copy", False, f"copy failed: {exc.summary}",
                                "the image needs sftp-server at /usr/lib/sftp-server; "
                                + _REBUILD)
    back = _sh(handle, f"cat {shlex.quote(remote)}; rm -f {shlex.quote(remote)}").stdout
    ok = back.strip() == token
    return ContractItem("SFTP file copy", ok, "a file copied in reads back" if ok
                        else "the copied file did not read back", "the image needs "
                        "sftp-server at /usr/lib/sftp-server; " + _REBUILD)


def check_test_nics(handle: GuestHandle, vm: VmSpec | None) -> ContractItem:
    """Every test NIC of the VM is listed by MAC with its lab address (lab-netup)."""
    fix = ("lab-netup configures NICs from lab.net= on the kernel command line; the NIC "
           "model's driver must be in the image (" + _REBUILD + ")")
    if vm is None:
        return ContractItem("test NICs present", False,
                            f"{handle.name} is not a VM of this lab's config", fix)
    missing = [f"{nic.alias} {nic.mac}" for nic in vm.test_nics if not handle.configured(nic)]
    detail = (f"not up with their address: {', '.join(missing)}" if missing
              else f"{len(vm.test_nics)} test NICs up with their addresses")
    return ContractItem("test NICs present", not missing, detail, fix)


#: The petter of the domain's i6300esb (lab.domxml): init respawns it.
WATCHDOG_ARGV = ("/sbin/lab-watchdog",)
#: PCI ID of the i6300esb; its config byte 0x68 (104) has bit 1 set while it counts.
_WATCHDOG_CMD = ("for d in /sys/bus/pci/devices/*; do "
                 "[ \"$(cat \"$d/vendor\"):$(cat \"$d/device\")\" = 0x8086:0x25ab ] || continue; "
                 "echo \"device ${d##*/}\"; echo \"lock $(od -An -tu1 -j104 -N1 \"$d/config\")\"; "
                 "done")


def parse_watchdog(text: str) -> tuple[str, int | None]:
    """(PCI address, lock register) from :data:`_WATCHDOG_CMD`'s output ("", None: none)."""
    lines = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
    lock = lines.get("lock", "").strip()
    return lines.get("device", "").strip(), int(lock) if lock.isdigit() else None


def check_watchdog(handle: GuestHandle, vm: VmSpec | None) -> ContractItem:
    """The i6300esb counts down (enable bit) and its petter runs, so a hard lockup
    becomes an NMI panic instead of a silent hang."""
    del vm
    device, lock = parse_watchdog(_sh(handle, _WATCHDOG_CMD).stdout)
    running = any(tuple(line.split()[:1]) == WATCHDOG_ARGV
                  for line in _sh(handle, _PROCS_CMD).stdout.splitlines())
    armed = lock is not None and bool(lock & 0x02)
    detail = ("no i6300esb PCI device" if not device
              else f"i6300esb {device} {'armed' if armed else 'not armed'}, "
                   f"lab-watchdog {'running' if running else 'not running'}")
    return ContractItem("watchdog armed and petted", bool(device) and armed and running,
                        detail, "the domain needs <watchdog model='i6300esb'/> (lab.domxml, "
                        "`lab down` + `lab up`), the image /sbin/lab-watchdog respawned by "
                        "/etc/inittab; " + _REBUILD)


#: The micro image's contract, in the order `lab image check` prints it.
MICRO_CHECKS: tuple[Callable[[GuestHandle, VmSpec | None], ContractItem], ...] = (
    check_root_login, check_module_tree, check_panic_params, check_sysrq, check_pvpanic,
    check_watchdog, check_hotplug_helper, check_guest_agent, check_sftp, check_test_nics,
)


def micro_contract(handle: GuestHandle, vm: VmSpec | None) -> list[ContractItem]:
    return [check(handle, vm) for check in MICRO_CHECKS]
