"""The Windows golden image's contract, checked item by item in a running guest.

One small check per thing the lab relies on (windows-notes B1): testsigning, the
lab CA in Root and TrustedPublisher, PowerShell as the OpenSSH default shell, the
CrashControl values, the pvpanic device with its driver, the echo port open in the
firewall, Defender real-time protection off, Windows Update disabled. Each check
runs one documented command (cited at the check) through the guest's shell and
returns a :class:`~lab.guests.base.ContractItem` with the fix for a failure.

Every check but the first needs the SSH session to be Windows PowerShell: when the
first check finds the session is cmd.exe, the contract is that one failed item.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from lab.guests.base import CommandResult, ContractItem, Shell
from lab.guests.windows_text import (
    WindowsOutputError,
    cert_stores,
    json_rows,
    native,
    ps_quote,
    testsigning_on,
)

QUICK_S = 30.0

#: OpenSSH for Windows reads the session shell from this value; unset means cmd.exe
#: (learn.microsoft.com windows-server/administration/openssh/openssh-server-configuration,
#: "Configuring the default shell for OpenSSH in Windows").
SHELL_CMD = ("Get-ItemProperty 'HKLM:\\SOFTWARE\\OpenSSH' | Select-Object DefaultShell | "
             "ConvertTo-Json -Compress")
WINDOWS_POWERSHELL = "\\windowspowershell\\v1.0\\powershell.exe"
#: cmd.exe's answer to a command it cannot find (exit code 9009).
_CMD_NOT_FOUND = "is not recognized as an internal or external command"

#: learn.microsoft.com windows-hardware/drivers/install/the-testsigning-boot-configuration-option
#: (bcdedit /enum lists "testsigning Yes" only when it is on).
BCDEDIT_CMD = native("bcdedit.exe /enum '{current}'")

#: HKLM\SYSTEM\CurrentControlSet\Control\CrashControl values (learn.microsoft.com
#: troubleshoot/windows-server/performance/memory-dump-file-options for CrashDumpEnabled,
#: AlwaysKeepMemoryDump and AutoReboot; troubleshoot/windows-client/performance/
#: generate-a-kernel-or-complete-crash-dump for NMICrashDump; windows-notes B1.3).
CRASH_CONTROL_CMD = ("Get-ItemProperty 'HKLM:\\SYSTEM\\CurrentControlSet\\Control\\CrashControl'"
                     " | Select-Object CrashDumpEnabled,NMICrashDump,AutoReboot,"
                     "AlwaysKeepMemoryDump | ConvertTo-Json -Compress")
#: CrashDumpEnabled: 1 complete, 2 kernel, 3 small, 7 automatic (0 = none).
DUMP_TYPES = {1: "complete", 2: "kernel", 3: "small", 7: "automatic"}

#: The ISA pvpanic device has hardware ID ACPI\QEMU0001 (virtio-win pvpanic.inf); Get-PnpDevice
#: returns Win32_PnPEntity objects, whose ConfigManagerErrorCode 0 means "working properly" and
#: Service names the driver's service (learn.microsoft.com windows/win32/cimwin32prov/
#: win32-pnpentity; powershell/module/pnpdevice/get-pnpdevice).
PVPANIC_CMD = ("Get-PnpDevice -InstanceId 'ACPI\\QEMU0001\\*' -ErrorAction SilentlyContinue | "
               "Select-Object InstanceId,Present,Status,ConfigManagerErrorCode,Service | "
               "ConvertTo-Json -Compress")

#: Defender's live state (learn.microsoft.com powershell/module/defender/get-mpcomputerstatus,
#: MSFT_MpComputerStatus.RealTimeProtectionEnabled); the cmdlet is absent without Defender.
DEFENDER_CMD = ("Get-MpComputerStatus | Select-Object RealTimeProtectionEnabled | "
                "ConvertTo-Json -Compress")
_PS_NOT_FOUND = "CommandNotFoundException"

#: Get-Service's StartType is a System.ServiceProcess.ServiceStartMode, which Windows
#: PowerShell 5.1's ConvertTo-Json writes as its number: 2 Automatic, 3 Manual, 4 Disabled
#: (learn.microsoft.com dotnet/api/system.serviceprocess.servicestartmode); Status is a
#: ServiceControllerStatus: 1 Stopped, 4 Running.
WUAUSERV_CMD = ("Get-Service -Name 'wuauserv' | Select-Object Name,Status,StartType | "
                "ConvertTo-Json -Compress")
START_MODES = {0: "Boot", 1: "System", 2: "Automatic", 3: "Manual", 4: "Disabled"}


def echo_rule_cmd(port: int) -> str:
    """Enabled inbound Allow rules for TCP ``port``: the port filters piped to their rules
    (learn.microsoft.com powershell/module/netsecurity/get-netfirewallportfilter and
    get-netfirewallrule, -AssociatedNetFirewallPortFilter from the pipeline)."""
    return (f"Get-NetFirewallPortFilter -Protocol TCP | Where-Object LocalPort -eq "
            f"{ps_quote(str(port))} | Get-NetFirewallRule | Where-Object Enabled -eq 'True' | "
            "Where-Object Direction -eq 'Inbound' | Where-Object Action -eq 'Allow' | "
            "Select-Object Name,DisplayName | ConvertTo-Json -Compress")


@dataclass
class Probe:
    """One contract run in one guest: commands run once each (several items share one)."""

    shell: Shell
    thumbprint: str  #: the lab CA's SHA-1 thumbprint (upper-case hex)
    echo_port: int
    _seen: dict[str, CommandResult] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.shell.name

    def run(self, command: str) -> CommandResult:
        if command not in self._seen:
            self._seen[command] = self.shell.run(command, timeout=QUICK_S, check=False)
        return self._seen[command]

    def row(self, command: str, what: str) -> Mapping[str, object] | None:
        """The first ConvertTo-Json object a command printed (None: nothing or not JSON)."""
        try:
            rows = json_rows(self.run(command).stdout, what)
        except WindowsOutputError:
            return None
        return rows[0] if rows else None


Check = Callable[[Probe], ContractItem]


def session_is_cmd(probe: Probe) -> bool:
    """The SSH session answered the shell probe as cmd.exe does (not a PowerShell)."""
    res = probe.run(SHELL_CMD)
    return _CMD_NOT_FOUND in res.stderr + res.stdout


def check_shell(probe: Probe) -> ContractItem:
    fix = ("New-ItemProperty HKLM:\\SOFTWARE\\OpenSSH -Name DefaultShell -PropertyType String "
           "-Force -Value C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe")
    if session_is_cmd(probe):
        return ContractItem("SSH shell is Windows PowerShell", False,
                            "SSH sessions run cmd.exe (OpenSSH DefaultShell unset); the other "
                            "checks need PowerShell and were not run", fix)
    row = probe.row(SHELL_CMD, "OpenSSH DefaultShell")
    value = row.get("DefaultShell") if row else None
    ok = isinstance(value, str) and value.lower().endswith(WINDOWS_POWERSHELL)
    return ContractItem("SSH shell is Windows PowerShell", ok,
                        f"OpenSSH DefaultShell = {value if value else '(unset: cmd.exe)'}", fix)


def check_testsigning(probe: Probe) -> ContractItem:
    res = probe.run(BCDEDIT_CMD)
    ok = res.ok and testsigning_on(res.stdout)
    detail = (f"bcdedit /enum {{current}} failed ({res.exit_code})" if not res.ok
              else "bcdedit: testsigning Yes" if ok else "bcdedit: testsigning not on")
    return ContractItem("testsigning on", ok, detail,
                        "bcdedit /set testsigning on (Secure Boot off), reboot, and keep that "
                        "image as the golden one")


def _ca_in(store: str) -> Check:
    """The lab CA in LocalMachine\\<store> (about_Certificate_Provider: Cert: drive paths)."""

    def check(probe: Probe) -> ContractItem:
        res = probe.run(f"Get-ChildItem Cert:\\LocalMachine\\{store} | Where-Object Thumbprint "
                        f"-eq {ps_quote(probe.thumbprint)} | Select-Object PSParentPath,"
                        "Thumbprint | ConvertTo-Json -Compress")
        try:
            ok = store in cert_stores(res.stdout)
        except WindowsOutputError:
            ok = False
        return ContractItem(f"lab CA in {store}", ok,
                            f"{probe.thumbprint} {'is' if ok else 'is not'} in "
                            f"Cert:\\LocalMachine\\{store}",
                            f"Import-Certificate -FilePath lab-test-ca.cer -CertStoreLocation "
                            f"Cert:\\LocalMachine\\{store}")

    return check


def _crash_value(value: str, want: Callable[[object], bool], wanted: str,
                 item: str) -> Check:
    def check(probe: Probe) -> ContractItem:
        row = probe.row(CRASH_CONTROL_CMD, "CrashControl")
        got = row.get(value) if row else None
        return ContractItem(item, want(got), f"CrashControl {value} = "
                            f"{'(missing)' if got is None else got}",
                            f"Set-ItemProperty 'HKLM:\\SYSTEM\\CurrentControlSet\\Control\\"
                            f"CrashControl' -Name {value} -Value {wanted} (then reboot)")

    return check


def check_pvpanic(probe: Probe) -> ContractItem:
    row = probe.row(PVPANIC_CMD, "Get-PnpDevice")
    fix = ("add <panic model='isa'/> to the VM (the lab does) and install the driver: "
           "pnputil /add-driver <virtio-win>\\pvpanic\\<os>\\amd64\\pvpanic.inf /install")
    if row is None or row.get("Present") is not True:
        return ContractItem("pvpanic device with its driver", False,
                            "no ACPI\\QEMU0001 device present", fix)
    code, service = row.get("ConfigManagerErrorCode"), row.get("Service")
    ok = code == 0 and isinstance(service, str) and bool(service)
    detail = (f"{row.get('InstanceId')} started, driver service {service}" if ok
              else f"{row.get('InstanceId')}: Status {row.get('Status')}, "
                   f"ConfigManagerErrorCode {code} (28 = no driver installed)")
    return ContractItem("pvpanic device with its driver", ok, detail, fix)


def check_echo_port(probe: Probe) -> ContractItem:
    res = probe.run(echo_rule_cmd(probe.echo_port))
    try:
        rules = json_rows(res.stdout, "Get-NetFirewallRule")
    except WindowsOutputError:
        rules = []
    names = ", ".join(str(r.get("DisplayName")) for r in rules)
    return ContractItem(f"echo port {probe.echo_port} open", bool(rules),
                        f"inbound allow rule: {names}" if rules
                        else f"no enabled inbound allow rule for TCP {probe.echo_port}",
                        f"New-NetFirewallRule -DisplayName 'Driver Lab echo' -Direction Inbound "
                        f"-Protocol TCP -LocalPort {probe.echo_port} -Action Allow")


def check_defender(probe: Probe) -> ContractItem:
    fix = ("Set-MpPreference -DisableRealtimeMonitoring $true (plus the DisableAntiSpyware "
           "policy on client SKUs), or Uninstall-WindowsFeature Windows-Defender on Server")
    res = probe.run(DEFENDER_CMD)
    if _PS_NOT_FOUND in res.stderr:
        return ContractItem("Defender real-time protection off", True,
                            "Defender is not installed", fix)
    row = probe.row(DEFENDER_CMD, "Get-MpComputerStatus")
    on = row.get("RealTimeProtectionEnabled") if row else None
    return ContractItem("Defender real-time protection off", on is False,
                        f"RealTimeProtectionEnabled = {on}", fix)


def check_windows_update(probe: Probe) -> ContractItem:
    row = probe.row(WUAUSERV_CMD, "Get-Service wuauserv")
    start = row.get("StartType") if row else None
    name = START_MODES.get(start, str(start)) if isinstance(start, int) else str(start)
    return ContractItem("Windows Update service disabled", start == 4,
                        f"wuauserv StartType {name}",
                        "Set-Service -Name wuauserv -StartupType Disabled; Stop-Service wuauserv")


def _is_dump_type(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value in DUMP_TYPES


def _is_one(value: object) -> bool:
    return value == 1 and not isinstance(value, bool)


#: The contract, in the order `lab image check` prints it; the shell check comes first.
WINDOWS_CHECKS: tuple[Check, ...] = (
    check_shell,
    check_testsigning,
    _ca_in("Root"),
    _ca_in("TrustedPublisher"),
    _crash_value("CrashDumpEnabled", _is_dump_type, "2", "crash dump type set"),
    _crash_value("AlwaysKeepMemoryDump", _is_one, "1", "memory dump always kept"),
    _crash_value("NMICrashDump", _is_one, "1", "NMI crash dump on"),
    _crash_value("AutoReboot", _is_one, "1", "auto reboot after a bug check"),
    check_pvpanic,
    check_echo_port,
    check_defender,
    check_windows_update,
)


def windows_contract(shell: Shell, thumbprint: str, echo_port: int) -> list[ContractItem]:
    """Every item of the Windows image contract (stops after a cmd.exe shell)."""
    probe = Probe(shell, thumbprint.upper(), echo_port)
    if session_is_cmd(probe):
        return [check_shell(probe)]
    return [check(probe) for check in WINDOWS_CHECKS]

