"""The guest interface: everything the lab needs from a guest operating system.

Two nouns, in the spirit of syzkaller's ``vm/vmimpl`` contract:

* a :class:`GuestKind` (one per guest OS, resolved from ``[image] kind`` by the
  registry in :mod:`lab.guests`): how its golden image is prepared and checked,
  how a VM boots from it (the domain XML choices), its image contract (the
  :class:`ContractItem` list `lab image check` prints), the console markers of a
  failed boot and of a panic, the login user and shell;
* a :class:`GuestHandle` (one per running VM): adapters by MAC, the kernel or
  event log, liveness, crash and hang evidence, and the driver
  :class:`Deployment` (install, load, unload -- also with live clients --,
  journal, fault knobs, unbind/rebind one adapter).

Handles talk to their guest through a :class:`Shell` (``lab.guest.Guest`` over
SSH, or a documented test double). Scenarios, the pytest plugin and provisioning
speak only this interface; nothing outside ``lab/guests/`` runs a guest command.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from lab.errors import CommandTimeout, DriverHang
from lab.journal import Adapter, Journal, Vocabulary
from lab.wait import CRASH_POLL, crash_error, crash_event

if TYPE_CHECKING:
    from lab.config import LabConfig
    from lab.drivers import DriverManifest
    from lab.plan import Nic, VmSpec
    from lab.progress import Progress


@dataclass(frozen=True)
class CommandResult:
    """What one guest command returned."""

    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class RunningCommand(Protocol):
    """A guest command started without waiting (e.g. an unload that may block)."""

    def finished(self) -> bool: ...

    def wait(self, timeout: float) -> CommandResult:
        """The result; raises :class:`~lab.errors.CommandTimeout` past ``timeout``."""
        ...

    def close(self) -> None: ...


class Shell(Protocol):
    """A command channel into one guest (SSH in the lab; a typed double in tests).

    ``run`` raises :class:`~lab.errors.CommandTimeout` when the command outlives
    ``timeout`` and :class:`~lab.errors.GuestUnreachable` when the channel is
    lost; with ``check`` a non-zero exit raises :class:`~lab.errors.CommandFailed`.
    """

    @property
    def name(self) -> str: ...

    def run(self, command: str, timeout: float = 60.0, check: bool = True) -> CommandResult: ...

    def start(self, command: str) -> RunningCommand:
        """Start ``command`` on its own channel and return at once."""
        ...

    def put(self, local: Path, remote: str) -> None: ...

    def get(self, remote: str, local: Path) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class AdapterInfo:
    """One network adapter as the guest sees it, found by MAC."""

    mac: str  #: lower case, colon separated (52:54:00:ab:01:02)
    name: str  #: interface name ("eth1", "Ethernet 2")
    index: int  #: interface index (Linux ifindex, Windows ifIndex)
    addresses: tuple[str, ...] = ()  #: IPv4 addresses with prefix ("192.168.214.11/24")
    device_id: str | None = None  #: PnP instance ID (Windows) or PCI address (Linux)
    #: the link as the listing saw it (Linux carrier), None when the kind's listing
    #: does not tell (then GuestHandle.media_connected asks); not part of its identity
    carrier: bool | None = field(default=None, compare=False)

    def carries(self, address: str) -> bool:
        """Whether one of its IPv4 addresses is ``address`` (without prefix)."""
        return any(a.split("/")[0] == address for a in self.addresses)

    @property
    def journal_adapter(self) -> Adapter:
        """The adapter as driver journals name it (``<mac>@<ifindex>``)."""
        return Adapter(mac=self.mac, ifindex=self.index)


@dataclass(frozen=True)
class GoldenImage:
    """A prepared golden image, as provisioning uploads and boots it."""

    disk: Path  #: the golden qcow2 every VM is a linked clone of
    digest: str  #: content digest (names the uploaded volumes)
    disk_size: int  #: virtual size of the golden disk in bytes
    key_file: Path  #: the lab's private SSH key for the login user
    host_key_line: str  #: the guest's pinned SSH host key ("ssh-ed25519 AAAA...")
    kernel: Path | None = None  #: direct kernel boot (micro guest), else firmware boot
    initrd: Path | None = None


@dataclass(frozen=True)
class ContractItem:
    """One item of a guest kind's image contract, as checked in a running guest."""

    name: str  #: what is checked ("testsigning on", "sysrq enabled")
    ok: bool
    detail: str  #: what the guest showed ("bcdedit: testsigning Yes", "kernel.sysrq = 0")
    fix: str  #: what to change in the image when it is not ok


@dataclass(frozen=True)
class BootChoices:
    """The domain XML choices a guest kind makes for one VM (pure data)."""

    firmware: str = "bios"  #: "bios" or "efi" (OVMF, Secure Boot off)
    loader: str | None = None  #: OVMF code path (efi)
    nvram_template: str | None = None  #: OVMF vars template (efi)
    hyperv: bool = False  #: Hyper-V enlightenments
    disk_bus: str = "virtio"  #: "virtio" or "sata"
    cmdline: str | None = None  #: kernel command line (direct kernel boot)
    tpm: bool = False
    #: the guest CPU model: "default" (QEMU's), or "max": every feature the host offers
    #: (KVM: host-passthrough; TCG: QEMU's "max" model), e.g. for Windows 11 24H2's
    #: x86-64-v2 requirement (POPCNT, SSE4.2)
    cpu: str = "default"
    #: the i6300esb watchdog (lab.domxml.WATCHDOG_ACTION on expiry); the guest must arm
    #: and pet it (the micro guest's /sbin/lab-watchdog). Windows has no driver for it.
    watchdog: bool = True
    #: TCG only: QEMU's translation-block cache in MiB (QEMU's own default is 1 GiB, most
    #: of it resident after a boot); None keeps QEMU's default (bench/lab/rss.py)
    tb_cache_mib: int | None = 32
    #: a virtio balloon with free page reporting: the guest hands its free 2 MiB blocks
    #: back to the host (needs the guest's virtio_balloon driver)
    free_page_reporting: bool = True
    #: a VM generation ID (libvirt <genid/>: one per domain): a guest restored from the
    #: lab's template sees a new one and reseeds its random state (Windows does)
    vm_genid: bool = False
    #: libvirt reads a new QEMU's CPU through the x86 feature words (2 monitor calls)
    #: instead of one qom-get per feature (~400): lab.domxml.fewer_cpu_queries. Off for
    #: Windows: no Windows guest runs here to prove it there, and its boot is minutes.
    fewer_cpu_queries: bool = True


#: A guest agent command: (execute, arguments) -> its "return" value (lab.agent.command).
AgentCall = Callable[[str, dict[str, object]], object]


@dataclass(frozen=True)
class RestoredIdentity:
    """What makes a VM restored from the lab's template its own (GuestKind.take_identity)."""

    vm: VmSpec
    #: its own SSH host key (private; the kind's format, lab.vmkeys); None for kinds that
    #: get theirs from their identity media (GuestKind.identity_media)
    host_key: Path | None
    epoch: int  #: the host's clock (seconds since 1970): the saved state's clock is old
    seed: bytes  #: fresh random bytes for the guest's random pool (clones share its state)


def wait_or_hang(running: RunningCommand, deadline: float, what: str,
                 abort: threading.Event | None = None) -> CommandResult:
    """The result of ``running``; past ``deadline`` (which only the driver controls) a
    DriverHang naming ``what``, and the command's channel is closed. Once the guest
    crashed (``abort``, else the enclosing ``lab.wait.crash_watch``), a DriverCrash
    within ``lab.wait.CRASH_POLL`` seconds instead."""
    crash = crash_event(abort)
    try:
        if crash is None:
            return running.wait(deadline)
        end = time.monotonic() + deadline
        while not running.finished() and time.monotonic() < end:
            if crash.wait(min(CRASH_POLL, max(end - time.monotonic(), 0.0))):
                running.close()
                raise crash_error(what, crash)
        return running.wait(max(end - time.monotonic(), 0.1))
    except CommandTimeout as exc:
        running.close()
        raise DriverHang(f"driver hung: {what} did not return within {deadline:.0f}s") \
            from exc


class PendingUnload(abc.ABC):
    """An unload that was started and may still be blocked (e.g. by live clients)."""

    @abc.abstractmethod
    def finished(self) -> bool:
        """True once the unload returned (whatever its outcome)."""

    @abc.abstractmethod
    def wait(self, deadline: float) -> float:
        """Wait up to ``deadline`` seconds for the unload to finish; returns seconds taken.

        Raises :class:`~lab.errors.DriverHang` past the deadline and
        :class:`~lab.errors.DriverFailure` when the unload failed.
        """


class Deployment(abc.ABC):
    """One driver under test, deployed into one guest."""

    #: the manifest name ("wskecho", "labtdi")
    name: str
    #: the loaded image's name in the guest (Linux module "kecho", Windows service "wskecho")
    module: str
    vocabulary: Vocabulary
    #: how long an unload may take once the lab has closed its clients
    unload_deadline_s: float
    #: does this driver serve the TCP echo (wskecho and its twin)
    serves_echo: bool

    @abc.abstractmethod
    def install(self) -> None: ...

    def install_persistent(self, knobs: Sequence[str] = ()) -> None:
        """Install so that the guest loads the driver at every boot, after the drivers
        installed so before it (Windows: the service's start type; the micro guest: its
        boot list), with the lab's fault ``knobs`` on. Default: not supported."""
        from lab.errors import LabFailure

        del knobs
        raise LabFailure(f"{self.name}: this guest kind cannot install drivers to persist")

    @abc.abstractmethod
    def load(self, knobs: Sequence[str] = ()) -> None:
        """Load with the lab's fault ``knobs`` on; a load the guest refuses is a DriverFailure."""

    @abc.abstractmethod
    def loaded(self) -> bool: ...

    @abc.abstractmethod
    def unload(self, deadline: float | None = None) -> float:
        """Unload and wait; returns seconds. Past ``deadline``: DriverHang."""

    @abc.abstractmethod
    def start_unload(self) -> PendingUnload:
        """Start an unload without waiting (it may block on live clients)."""

    @abc.abstractmethod
    def journal(self) -> Journal:
        """This driver's journal since boot (survives the unload)."""

    @abc.abstractmethod
    def unbind(self, adapter: AdapterInfo) -> None:
        """Unbind the driver from one adapter (admin unbind, not a removal)."""

    @abc.abstractmethod
    def bind(self, adapter: AdapterInfo) -> None: ...


class GuestHandle(abc.ABC):
    """One running VM's guest, through its shell."""

    #: whether a crash should also be dumped from the host (libvirt memory-only dump);
    #: kinds whose guest writes its own dump and reboots say False
    host_dump_on_crash: ClassVar[bool] = True
    #: whether the lab suspends this guest to RAM through its QEMU guest agent (libvirt
    #: dompmsuspend); else the guest suspends itself (:meth:`start_sleep`)
    sleeps_through_agent: ClassVar[bool] = False
    #: whether the guest's own kernel answers a connection to a closed TCP port with a
    #: reset, so the host can tell "passes IP at all" with no driver under test involved
    #: (lab.echo_clients.carries_ip); False where a firewall may drop it silently
    #: (Windows Firewall's default for inbound): then the lab cannot tell
    resets_closed_ports: ClassVar[bool] = False

    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        #: MAC of the VM's management NIC (set by :class:`lab.vm.Vm`): the adapter the
        #: lab reaches the guest through, which a driver under test must never bind
        self.management_mac: str | None = None
        #: SysRq keys through the out-of-band guest agent, not SSH (set by :class:`lab.vm.Vm`;
        #: returns the keys done, raises LabFailure when the agent is silent)
        self.oob_sysrq: Callable[[str], str] | None = None

    @property
    def name(self) -> str:
        return self.shell.name

    @abc.abstractmethod
    def adapters(self) -> tuple[AdapterInfo, ...]:
        """Every network adapter the guest lists now."""

    def adapter(self, mac: str) -> AdapterInfo:
        """The adapter with ``mac`` (LabFailure when the guest has none)."""
        from lab.errors import LabFailure

        for info in self.adapters():
            if info.mac == mac.lower():
                return info
        raise LabFailure(f"{self.name}: no adapter with MAC {mac} in the guest")

    def lists_mac(self, mac: str) -> bool:
        """Whether the guest still lists an adapter with ``mac`` (unplug confirmation)."""
        return any(a.mac == mac.lower() for a in self.adapters())

    def configured(self, nic: Nic) -> bool:
        """Whether the adapter of ``nic`` is up with its lab address (replug done)."""
        return any(a.mac == nic.mac.lower() and a.carries(nic.address)
                   for a in self.adapters())

    @abc.abstractmethod
    def alive(self) -> bool:
        """The guest answers a command (never raises)."""

    @abc.abstractmethod
    def kernel_log(self) -> str:
        """The guest's kernel log (Linux dmesg, Windows System event log excerpt)."""

    @abc.abstractmethod
    def deployment(self, manifest: DriverManifest, vocabulary: Vocabulary) -> Deployment: ...

    def network_state(self) -> str:
        """The guest's own view of its adapters for a failure's evidence (names, MACs,
        carrier, addresses); a kind may add its packet counters."""
        return "".join(f"{a.name} {a.mac} ifindex {a.index} carrier "
                       f"{'-' if a.carrier is None else int(a.carrier)} "
                       f"{' '.join(a.addresses) or '-'}\n" for a in self.adapters())

    def carrier_of(self, adapter: AdapterInfo) -> bool | None:
        """The adapter's link in the guest's own view: what its listing saw, else read
        now (:meth:`media_connected`); None when this kind cannot tell."""
        return adapter.carrier if adapter.carrier is not None else self.media_connected(adapter)

    def media_connected(self, adapter: AdapterInfo) -> bool | None:
        """The guest's own view of the adapter's link (carrier / media state), read from
        the OS, not from the driver under test; None when this kind cannot tell."""
        del adapter
        return None

    @abc.abstractmethod
    def reset_adapter(self, adapter: AdapterInfo, deadline: float) -> None:
        """Reset one NIC: its driver reinitialises the device (Windows Restart-NetAdapter;
        Linux an MTU change and an admin down/up) and the command returns once the
        adapter is back up. Past ``deadline``: DriverHang (the adapter was never let go);
        a command the guest refuses: LabFailure."""

    @abc.abstractmethod
    def disable_adapter(self, adapter: AdapterInfo, deadline: float) -> None:
        """Disable one NIC without removing the hardware (a PnP removal: Windows
        Disable-NetAdapter; Linux: remove the NIC's PCI function); returns once the
        adapter's driver and every protocol let go of it. Past ``deadline``: DriverHang;
        a command the guest refuses: LabFailure."""

    @abc.abstractmethod
    def enable_adapter(self, adapter: AdapterInfo, deadline: float) -> None:
        """Enable a NIC :meth:`disable_adapter` disabled (Windows Enable-NetAdapter; Linux
        a PCI bus rescan); returns once the command did. The adapter may come back with
        a new index. A command the guest refuses: LabFailure."""

    def boot_id(self) -> str | None:
        """An identifier of the guest's current boot (None while it does not answer)."""
        return None

    def start_reboot(self) -> None:
        """Start a clean reboot of the guest and return at once (the lab then waits for
        a new :meth:`boot_id`). Default: not supported."""
        from lab.errors import LabFailure

        raise LabFailure(f"{self.name}: this guest kind cannot reboot itself")

    def start_sleep(self) -> None:
        """Start a suspend to RAM inside the guest and return at once (the lab waits for
        libvirt to report the guest suspended). LabFailure when the guest cannot sleep."""
        from lab.errors import LabFailure

        raise LabFailure(f"{self.name}: this guest kind does not suspend itself",
                         hint="it sleeps through its guest agent (sleeps_through_agent)")

    def crash_evidence(self, folder: Path) -> list[str]:
        """After a crash the lab detected: fetch what the guest wrote (dumps); returns notes."""
        del folder
        return []

    def hang_evidence(self, folder: Path, nmi: Callable[[], None]) -> list[str]:
        """After a driver hang: turn it into evidence (stacks, an NMI dump); returns notes."""
        del folder, nmi
        return []


class GuestKind(abc.ABC):
    """One guest operating system the lab can run."""

    #: the config's ``[image] kind`` value
    name: ClassVar[str]
    #: SSH login user (a kind may take it from the config) and the shell its commands
    #: run in ("sh", "powershell")
    login_user: str
    shell: ClassVar[str]
    #: console lines meaning a boot can no longer reach SSH
    boot_failure_markers: ClassVar[tuple[str, ...]]
    #: console lines meaning the guest kernel panicked / bugchecked
    panic_markers: ClassVar[tuple[str, ...]]
    #: QEMU model of the management NIC (one the guest drives without extra drivers)
    management_nic: ClassVar[str]
    #: oldest libvirt (major, minor) that can snapshot and revert this kind's VMs
    min_libvirt: ClassVar[tuple[int, int]] = (0, 0)
    #: whether this kind deploys mutants of the Linux twins (the self-test, lab/selftest)
    deploys_mutants: ClassVar[bool] = False
    #: manifest name of the independent TDI client that records what the transport's
    #: clients really receive (None: this kind has none yet, checks rest on the journal)
    observer_driver: ClassVar[str | None] = None
    #: whether each VM gets its own SSH host key on an identity media its image's boot
    #: step installs (lab.guests.windows_identity); kinds booting the lab's initramfs get
    #: theirs in it (lab.vmkeys)
    identity_media: ClassVar[bool] = False
    #: the console line a booted guest prints once it is ready: the lab's template
    #: (lab.template) is saved then. None: the guest agent answering is the sign.
    ready_marker: ClassVar[str | None] = None
    #: whether a VM restored from the template takes its identity before its NICs are
    #: hot-plugged (the guest's hotplug handling then gives each NIC its address once);
    #: False: after (the identity step configures NICs that must already be there)
    identity_before_nics: ClassVar[bool] = False

    def __init__(self, config: LabConfig) -> None:
        self.config = config

    @abc.abstractmethod
    def check(self) -> None:
        """Cheap checks before anything is created (LabFailure / ConfigError naming the fix)."""

    @abc.abstractmethod
    def prepare_image(self, progress: Progress) -> GoldenImage:
        """Build (or check and describe) the golden image."""

    @abc.abstractmethod
    def boot_choices(self, vm: VmSpec) -> BootChoices:
        """How this VM boots (firmware, enlightenments, disk bus, kernel command line)."""

    @abc.abstractmethod
    def handle(self, shell: Shell) -> GuestHandle: ...

    @abc.abstractmethod
    def contract(self, handle: GuestHandle) -> list[ContractItem]:
        """Check the image contract in a running guest, one item per thing the lab relies
        on (never raises for a broken item: it comes back with ``ok`` False and its fix)."""

    def provision(self, handle: GuestHandle, say: Callable[[str], None]) -> None:
        """First boot of a VM, before its clean snapshot: check the image contract and
        apply per-VM setup (e.g. Driver Verifier, which needs a reboot). Default: nothing."""
        del handle, say

    def template_boot_choices(self, vm: VmSpec) -> BootChoices | None:
        """How the lab's template boots (lab.template): ``vm``'s choices without anything
        of its own (name, addresses, host key). None: this kind's VMs are not made from a
        template; they boot (the default)."""
        del vm
        return None

    def take_identity(self, restored: RestoredIdentity, agent: AgentCall) -> None:
        """A VM restored from the template takes its own identity, through its guest
        agent, before or after its NICs are hot-plugged (:attr:`identity_before_nics`,
        lab.clone): the kind brings up the NICs it already has with their addresses, and
        later ones as they come. ``agent(execute, arguments)`` returns the command's
        ``return`` value. Raises LabError when it cannot."""
        del restored, agent
        raise NotImplementedError(f"{self.name} VMs are not made from a template")

    def fatal_console_line(self, text: str) -> str | None:
        """The first line of ``text`` that means the boot failed or the guest panicked."""
        for line in text.splitlines():
            if any(m in line for m in (*self.boot_failure_markers, *self.panic_markers)):
                return line.strip()
        return None
