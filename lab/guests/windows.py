"""The Windows guest kind: the user's golden image, OVMF + Hyper-V enlightenments, OpenSSH.

What runs where:

* on any host (proved by unit tests): the image checks, the boot choices, every
  command string (the Windows command contract) and every parser, the crash
  dump decoder, the deployment's verdict logic against a typed double;
* only with a real Windows guest on a KVM host: that the commands do what
  Microsoft documents, the timings, the dump contents.

The guest must have been built as the image recipe says (windows-notes B1):
OpenSSH with PowerShell as DefaultShell, testsigning on, the lab CA in Root and
TrustedPublisher, CrashControl set, e1000e driver in-box, AutoReboot on.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from lab.config import LabConfig
from lab.drivers import REPO_ROOT, DriverManifest, load_manifests
from lab.errors import CommandTimeout, ConfigError, DriverHang, LabFailure
from lab.guests import windows_restore
from lab.guests.base import (
    AdapterInfo,
    AgentCall,
    BootChoices,
    ContractItem,
    GoldenImage,
    GuestHandle,
    GuestKind,
    RestoredIdentity,
    Shell,
)
from lab.guests.windows_contract import windows_contract
from lab.guests.windows_deploy import WindowsDeployment, deployment_for
from lab.guests.windows_evidence import collect_crash, collect_hang
from lab.guests.windows_image import check_image, golden_image
from lab.guests.windows_manifest import windows_spec
from lab.guests.windows_text import (
    format_events,
    native,
    parse_adapters,
    pnp_present,
    ps_quote,
    verified_drivers,
)
from lab.journal import Vocabulary
from lab.naming import ECHO_PORT
from lab.plan import VmSpec
from lab.progress import Progress

#: The lab test CA every driver is signed under (built by `make drivers-windows`).
LAB_CA = REPO_ROOT / "var" / "drivers" / "windows" / "pki" / "lab-test-ca.cer"
#: One quick guest command (liveness, adapters, event log).
QUICK_S = 30.0
#: A Windows reboot, from Restart-Computer (or a bug check's dump write) to SSH again.
REBOOT_DEADLINE_S = 900.0
#: Restart-Computer returns once the shutdown is initiated.
RESTART_RETURN_S = 60.0
#: How long after the reboot event 1001 may take to appear (WER writes it after logon).
BUGCHECK_EVENT_DEADLINE_S = 180.0

ADAPTERS_CMD = ("Get-NetAdapter | Select-Object Name,ifIndex,MacAddress,Status,"
                "InterfaceDescription,PnPDeviceID | ConvertTo-Json -Compress")
ADDRESSES_CMD = ("Get-NetIPAddress -AddressFamily IPv4 | Select-Object InterfaceIndex,"
                 "IPAddress,PrefixLength | ConvertTo-Json -Compress")
EVENTS_CMD = ("Get-WinEvent -LogName System -MaxEvents 200 | Select-Object TimeCreated,Id,"
              "ProviderName,LevelDisplayName,Message | ConvertTo-Json -Compress")
#: The last boot time identifies a boot (compared as text, never parsed).
BOOT_ID_CMD = ("Get-CimInstance -ClassName Win32_OperatingSystem | Select-Object LastBootUpTime"
               " | ConvertTo-Json -Compress")


class ImageContractBroken(LabFailure):
    """The running image lacks something the lab needs (testsigning, CA, dumps, verifier)."""


def ca_thumbprint(path: Path = LAB_CA) -> str:
    """SHA-1 of the CA certificate's DER, upper-case hex (PowerShell's Thumbprint)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LabFailure(f"the lab CA {path} is missing: {exc}",
                         hint="run `make drivers-windows`") from None
    cert = (x509.load_pem_x509_certificate(raw) if raw.lstrip().startswith(b"-----")
            else x509.load_der_x509_certificate(raw))
    return hashlib.sha1(cert.public_bytes(Encoding.DER), usedforsecurity=False).hexdigest(
    ).upper()


class Windows(GuestKind):
    """Windows guests from the user's golden qcow2 (see README "Windows guests")."""

    name = "windows"
    login_user = "Administrator"  #: the class default; an instance uses [image] windows_user
    shell = "powershell"
    #: OVMF's boot manager (edk2 MdeModulePkg/Universal/BdsDxe/BdsEntry.c) prints these on
    #: the serial console when no boot option loads; "Shell> " is the UEFI shell it falls
    #: back to. Windows itself prints nothing on the serial port unless EMS is enabled.
    boot_failure_markers = ("BdsDxe: failed to load Boot",
                            "BdsDxe: No bootable option or device was found", "Shell> ")
    #: Bug checks are not on the serial console (no EMS): the lab sees them as pvpanic /
    #: libvirt crash events and as event 1001 after the reboot.
    panic_markers = ()
    management_nic = "e1000e"
    #: internal snapshots (the clean state every test reverts to) of a VM with pflash
    #: UEFI firmware: libvirt refuses to create them before 10.9 and to revert them
    #: before 10.10 (libvirt NEWS 10.9.0/10.10.0; virt-manager issue #851)
    min_libvirt = (10, 10)
    #: each VM's own SSH host key comes on its identity media (lab.guests.windows_identity)
    identity_media = True

    def __init__(self, config: LabConfig) -> None:
        super().__init__(config)
        self.login_user = config.image.windows_user

    def check(self) -> None:
        check_image(self.config)
        ca_thumbprint()
        self._verifier_targets()

    def prepare_image(self, progress: Progress) -> GoldenImage:
        return golden_image(self.config, progress)

    def boot_choices(self, vm: VmSpec) -> BootChoices:
        del vm
        image = self.config.image
        base = self.config.base_dir
        # No i6300esb (domxml WATCHDOG_ACTION): Windows has no inbox driver for it, so
        # nothing would arm it, and one more PCI device can renumber the slots of the
        # image's NICs (new adapter instances lose their settings). A Windows hang becomes
        # a dump through `virsh inject-nmi` + NMICrashDump=1 (collect_hang; the image
        # contract checks the value), which no watchdog would add to.
        return BootChoices(firmware="efi", cpu="max",
                           loader=str(base / Path(image.windows_ovmf_code).expanduser()),
                           nvram_template=str(base / Path(image.windows_ovmf_vars).expanduser()),
                           hyperv=True, disk_bus=image.windows_disk_bus, watchdog=False,
                           tb_cache_mib=None, free_page_reporting=False, vm_genid=True,
                           fewer_cpu_queries=False)

    def template_boot_choices(self, vm: VmSpec) -> BootChoices | None:
        """The template boots as every VM does (its computer name stays: see
        lab.guests.windows_restore)."""
        return self.boot_choices(vm)

    def take_identity(self, restored: RestoredIdentity, agent: AgentCall) -> None:
        windows_restore.take_identity(restored, agent)

    def handle(self, shell: Shell) -> WindowsGuest:
        return WindowsGuest(shell)

    def contract(self, handle: GuestHandle) -> list[ContractItem]:
        """The image contract (lab.guests.windows_contract), the same one provision enforces."""
        return windows_contract(handle.shell, ca_thumbprint(), echo_port())

    def provision(self, handle: GuestHandle, say: Callable[[str], None]) -> None:
        if not isinstance(handle, WindowsGuest):
            raise LabFailure(f"{handle.name}: not a Windows guest handle")
        items = check_contract(handle, ca_thumbprint())
        say(f"image contract ok ({len(items)} items: testsigning, lab CA, SSH shell, crash "
            "dumps, pvpanic, echo port, Defender, Windows Update)")
        targets = self._verifier_targets()
        if targets:
            apply_verifier(handle, targets, say)

    def _verifier_targets(self) -> tuple[str, ...]:
        """The .sys names for Driver Verifier (ndis.sys too when a protocol is listed)."""
        names = self.config.image.windows_verifier
        if not names:
            return ()
        manifests = load_manifests()
        targets: list[str] = []
        for name in names:
            if name not in manifests:
                raise ConfigError(str(self.config.path), "image.windows_verifier",
                                  f"{name!r} is not a driver", f"use one of: "
                                  f"{', '.join(manifests)}")
            spec = windows_spec(manifests[name])
            targets.append(spec.sys_file.name.lower())
            if spec.is_protocol and "ndis.sys" not in targets:
                targets.append("ndis.sys")
        return tuple(targets)


def echo_port() -> int:
    """The TCP port wskecho serves, which the image's firewall must open."""
    return ECHO_PORT


def check_contract(guest: GuestHandle, thumbprint: str,
                   port: int | None = None) -> list[ContractItem]:
    """The whole image contract; ImageContractBroken names every broken item and its fix."""
    items = windows_contract(guest.shell, thumbprint, echo_port() if port is None else port)
    broken = [item for item in items if not item.ok]
    if broken:
        raise ImageContractBroken(
            f"{guest.name}: image contract broken: "
            + "; ".join(f"{item.name} ({item.detail})" for item in broken),
            hint=" | ".join(item.fix for item in broken)
            + " -- `lab image check` prints the whole table")
    return items


def apply_verifier(guest: WindowsGuest, targets: tuple[str, ...],
                   say: Callable[[str], None]) -> None:
    """verifier /standard /driver ..., reboot, then /querysettings must list them."""
    drivers = " ".join(targets)
    guest.shell.run(native(f"verifier.exe /standard /driver {drivers}"), timeout=QUICK_S,
                    check=False)  # non-zero means "reboot required", which comes next
    say(f"Driver Verifier set for {drivers}; rebooting")
    guest.reboot()
    listed = verified_drivers(guest.shell.run("verifier.exe /querysettings",
                                              timeout=QUICK_S, check=False).stdout)
    missing = set(targets) - listed
    if missing:
        raise ImageContractBroken(f"{guest.name}: Driver Verifier does not list "
                                  f"{', '.join(sorted(missing))} after the reboot")
    say(f"Driver Verifier active for {drivers}")


class WindowsGuest(GuestHandle):
    """One Windows guest over OpenSSH (PowerShell)."""

    #: Windows writes its own dump (CrashControl) and reboots: no host memory dump.
    host_dump_on_crash = False
    #: qemu-ga's guest-suspend-ram calls SetSuspendState (sleep, not hibernate) once
    #: `powercfg /a` lists Standby (S3); an SSH session cannot outlive its own sleep
    sleeps_through_agent = True

    def __init__(self, shell: Shell) -> None:
        super().__init__(shell)
        self._device_ids: dict[str, str] = {}

    def adapters(self) -> tuple[AdapterInfo, ...]:
        found = parse_adapters(self.shell.run(ADAPTERS_CMD, timeout=QUICK_S).stdout,
                               self.shell.run(ADDRESSES_CMD, timeout=QUICK_S).stdout)
        for info in found:
            if info.device_id:
                self._device_ids[info.mac] = info.device_id
        return found

    def lists_mac(self, mac: str) -> bool:
        """Listed by Get-NetAdapter, or its PnP device (seen before) still Present."""
        if super().lists_mac(mac):
            return True
        device = self._device_ids.get(mac.lower())
        if device is None:
            return False
        out = self.shell.run(f"Get-PnpDevice -InstanceId {ps_quote(device)} "
                             "-ErrorAction SilentlyContinue | Select-Object InstanceId,Present,"
                             "Status | ConvertTo-Json -Compress", timeout=QUICK_S, check=False)
        return pnp_present(out.stdout) is True

    def alive(self) -> bool:
        try:
            res = self.shell.run("Write-Output lab-alive", timeout=15, check=False)
        except LabFailure:
            self.shell.close()
            return False
        return res.ok and "lab-alive" in res.stdout

    def kernel_log(self) -> str:
        return format_events(self.shell.run(EVENTS_CMD, timeout=QUICK_S, check=False).stdout)

    def deployment(self, manifest: DriverManifest,
                   vocabulary: Vocabulary) -> WindowsDeployment:
        mac = self.management_mac
        return deployment_for(self.shell, windows_spec(manifest), vocabulary,
                              None if mac is None else lambda: self.adapter(mac))

    def reset_adapter(self, adapter: AdapterInfo, deadline: float) -> None:
        """``Restart-NetAdapter``: the device is disabled and enabled again (a PnP
        stop and start, so the protocol sees the query-remove, unbinds and binds)."""
        command = f"Restart-NetAdapter -Name {ps_quote(adapter.name)}"
        try:
            res = self.shell.run(command, timeout=deadline, check=False)
        except CommandTimeout as exc:
            raise DriverHang(f"driver hung: Restart-NetAdapter of {adapter.name} "
                             f"({adapter.mac}) did not return within {deadline:.0f}s") from exc
        if not res.ok:  # the error record's first line says why
            why = (res.stderr.strip() or res.stdout.strip() or "no output").splitlines()[0]
            raise LabFailure(f"{self.name}: Restart-NetAdapter {adapter.name} failed "
                             f"({res.exit_code}): {why[:300]}")

    def disable_adapter(self, adapter: AdapterInfo, deadline: float) -> None:
        """``Disable-NetAdapter -Confirm:$false`` (it asks for confirmation otherwise): a
        PnP stop of the device; the cmdlet returns once every protocol unbound."""
        self._adapter_cmdlet(f"Disable-NetAdapter -Name {ps_quote(adapter.name)} "
                             "-Confirm:$false", "Disable-NetAdapter", adapter, deadline)

    def enable_adapter(self, adapter: AdapterInfo, deadline: float) -> None:
        """``Enable-NetAdapter``: the device starts again and the protocols bind (the
        adapter keeps its name and ifIndex on Windows)."""
        self._adapter_cmdlet(f"Enable-NetAdapter -Name {ps_quote(adapter.name)}",
                             "Enable-NetAdapter", adapter, deadline)

    def _adapter_cmdlet(self, command: str, cmdlet: str, adapter: AdapterInfo,
                        deadline: float) -> None:
        try:
            res = self.shell.run(command, timeout=deadline, check=False)
        except CommandTimeout as exc:
            raise DriverHang(f"driver hung: {cmdlet} of {adapter.name} ({adapter.mac}) did "
                             f"not return within {deadline:.0f}s") from exc
        if not res.ok:  # the error record's first line says why
            why = (res.stderr.strip() or res.stdout.strip() or "no output").splitlines()[0]
            raise LabFailure(f"{self.name}: {cmdlet} {adapter.name} failed "
                             f"({res.exit_code}): {why[:300]}")

    def boot_id(self) -> str | None:
        """The guest's last boot time (None while it does not answer)."""
        try:
            res = self.shell.run(BOOT_ID_CMD, timeout=15, check=False)
        except LabFailure:
            self.shell.close()
            return None
        return (res.stdout.strip() or None) if res.ok else None

    def wait_back(self, deadline: float = REBOOT_DEADLINE_S, after: str | None = None) -> str:
        """Wait until the guest answers with a boot other than ``after``; its boot id."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            current = self.boot_id()
            if current is not None and current != after:
                return current
            time.sleep(max(0.0, min(5.0, end - time.monotonic())))
        raise LabFailure(f"{self.name}: did not come back over SSH within {deadline:.0f}s",
                         hint="look at the VM's console log and screen (virt-viewer)")

    def reboot(self, deadline: float = REBOOT_DEADLINE_S) -> None:
        before = self.boot_id()
        if before is None:
            raise LabFailure(f"{self.name}: not answering, cannot reboot it")
        self.start_reboot()
        self.wait_back(deadline, after=before)

    def start_reboot(self) -> None:
        """``Restart-Computer -Force``: returns once the shutdown is initiated."""
        running = self.shell.start("Restart-Computer -Force")
        try:
            running.wait(RESTART_RETURN_S)  # returns once the shutdown is initiated
        except LabFailure:
            pass  # the session may die with the shutdown; wait_back decides
        finally:
            running.close()
            self.shell.close()

    def crash_evidence(self, folder: Path) -> list[str]:
        return collect_crash(self, folder)

    def hang_evidence(self, folder: Path, nmi: Callable[[], None]) -> list[str]:
        return collect_hang(self, folder, nmi)


__all__ = ["LAB_CA", "ImageContractBroken", "Windows", "WindowsGuest", "ca_thumbprint",
           "check_contract"]
