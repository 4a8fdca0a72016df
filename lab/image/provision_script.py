"""The first-logon provisioning script (PowerShell) that makes a fresh Windows test-ready.

It runs once, from the config media, as the auto-logged-on administrator. Each step is
announced on COM1 (``STEP_PREFIX + "<n>/<total>: <what>"``); the first failure stops it
with ``FAILURE_PREFIX + "<what>: <message>"``; success ends with COMPLETION_MARKER. Either
way the VM then powers off (Stop-Computer -Force), which the install VM's host waits for.

COM1 is written through .NET's ``System.IO.Ports.SerialPort`` (learn.microsoft.com,
"SerialPort Class": constructor (portName, baudRate, parity, dataBits, stopBits), Open,
WriteLine, NewLine), available to Windows PowerShell 5.1 on every supported release.

The commands are the ones windows-notes B1 collected from public peers (rgl/windows-vagrant
provision-openssh.ps1, HCK-CI/AutoHCK client.ps1, microsoft/xdp-for-windows setup.ps1,
avocado-vt answer files). Every interpolated string is a single-quoted literal.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.guests import windows_identity as ident
from lab.guests.windows_text import ps_quote
from lab.image.markers import COMPLETION_MARKER, FAILURE_PREFIX, STEP_PREFIX
from lab.image.settings import WindowsImageSettings

#: Names of the files on the config media's root.
SCRIPT_NAME = "provision.ps1"
CA_NAME = "lab-test-ca.cer"
AUTHORIZED_KEYS_NAME = "administrators_authorized_keys"
HOST_KEY_NAME = "ssh_host_ed25519_key"
OPENSSH_ZIP_NAME = "OpenSSH-Win64.zip"
#: The transcript the script keeps inside the image (for a human debugging a failed build).
TRANSCRIPT = "C:\\Windows\\Temp\\driver-lab-provision.log"
#: The default shell the lab's Windows kind expects (windows-notes B1, OpenSSH).
DEFAULT_SHELL = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
#: Well-known SIDs (locale-proof, unlike "Administrators"): BUILTIN\\Administrators, SYSTEM.
ADMINS_SID = "*S-1-5-32-544"
SYSTEM_SID = "*S-1-5-18"
#: Machine certificate stores (PowerShell Cert: drive).
CERT_STORE = "Cert:\\LocalMachine\\"
#: CrashControl values (windows-notes B1 step 3): kernel dump, keep it, NMI dump, reboot.
CRASH_CONTROL = (("CrashDumpEnabled", 2), ("AlwaysKeepMemoryDump", 1), ("NMICrashDump", 1),
                 ("AutoReboot", 1))
#: pnputil exit codes that mean the package is in the store: 0, 3010 (reboot required),
#: 259 (ERROR_NO_MORE_ITEMS: added, but no present device needed it).
PNPUTIL_OK = (0, 3010, 259)


@dataclass(frozen=True)
class ProvisionStep:
    """One announced step: what COM1 says, and the PowerShell lines doing it."""

    what: str
    body: tuple[str, ...]


def _q(text: str) -> str:
    return ps_quote(text)


def _checked(exe: str, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    """A native command whose exit code must be one of ``ok`` (PowerShell array syntax)."""
    arguments = ", ".join(_q(a) for a in args)
    codes = ", ".join(str(c) for c in ok)
    return f"Invoke-Checked {_q(exe)} @({arguments}) @({codes})"


def _media(name: str) -> str:
    """A path on the config media (the folder the script runs from)."""
    return f"(Join-Path $Media {_q(name)})"


def _openssh(settings: WindowsImageSettings) -> ProvisionStep:
    install: tuple[str, ...]
    if settings.openssh_zip is not None:
        install = (f"Expand-Archive -Path {_media(OPENSSH_ZIP_NAME)} "
                   "-DestinationPath $env:ProgramFiles -Force",
                   "& (Join-Path $env:ProgramFiles 'OpenSSH-Win64\\install-sshd.ps1')")
        what = "install the OpenSSH server (offline OpenSSH-Win64.zip)"
    else:
        install = ("Add-WindowsCapability -Online -Name 'OpenSSH.Server~~~~0.0.1.0' | Out-Null",)
        what = "install the OpenSSH server (Add-WindowsCapability)"
    return ProvisionStep(what, (*install,
                                "if (-not (Get-Service -Name sshd -ErrorAction SilentlyContinue))"
                                " { throw 'no sshd service after the install' }"))


def _sshd_service() -> ProvisionStep:
    return ProvisionStep("start sshd delayed-auto with restart on failure", (
        _checked("sc.exe", "config", "sshd", "start=", "delayed-auto"),
        _checked("sc.exe", "failure", "sshd", "reset=", "0", "actions=",
                 "restart/60000/restart/60000/restart/60000"),
        "Start-Service -Name sshd",
    ))


def _firewall_rule(name: str, protocol: str, extra: str) -> str:
    return (f"New-NetFirewallRule -Name {_q('driver-lab-' + name)} "
            f"-DisplayName {_q('Driver Lab ' + name)} "
            f"-Direction Inbound -Action Allow -Profile Any -Protocol {protocol} {extra}"
            " | Out-Null")


def _copy_locked(source: str, target: str, *grants: str) -> tuple[str, ...]:
    """Copy a file off the media, clear its read-only bit, ACL it to ``grants`` only."""
    acl: list[str] = [target, "/inheritance:r"]
    for sid in grants:
        acl += ["/grant", f"{sid}:F"]
    return (f"Copy-Item -Path {_media(source)} -Destination {_q(target)} -Force",
            f"(Get-Item -LiteralPath {_q(target)}).Attributes = 'Normal'",
            _checked("icacls.exe", *acl))


def _authorized_keys() -> ProvisionStep:
    target = f"C:\\ProgramData\\ssh\\{AUTHORIZED_KEYS_NAME}"
    return ProvisionStep("authorize the lab key for administrators", (
        "New-Item -ItemType Directory -Force -Path 'C:\\ProgramData\\ssh' | Out-Null",
        *_copy_locked(AUTHORIZED_KEYS_NAME, target, ADMINS_SID, SYSTEM_SID),
    ))


def _default_shell() -> ProvisionStep:
    key = "HKLM:\\SOFTWARE\\OpenSSH"
    return ProvisionStep("make PowerShell the SSH default shell", (
        f"if (-not (Test-Path {_q(key)})) {{ New-Item -Path {_q(key)} | Out-Null }}",
        f"New-ItemProperty -Path {_q(key)} -Name DefaultShell -Value {_q(DEFAULT_SHELL)} "
        "-PropertyType String -Force | Out-Null",
    ))


def _host_key() -> ProvisionStep:
    """Win32-OpenSSH wants host private keys owned by and open to SYSTEM/Administrators only
    (PowerShell/Win32-OpenSSH wiki "Security protection of various files")."""
    private = f"C:\\ProgramData\\ssh\\{HOST_KEY_NAME}"
    public = private + ".pub"
    return ProvisionStep("install the pinned SSH host key", (
        *_copy_locked(HOST_KEY_NAME, private, SYSTEM_SID, ADMINS_SID),
        _checked("icacls.exe", private, "/setowner", SYSTEM_SID),
        f"Copy-Item -Path {_media(HOST_KEY_NAME + '.pub')} -Destination {_q(public)} -Force",
        f"(Get-Item -LiteralPath {_q(public)}).Attributes = 'Normal'",
        "Restart-Service -Name sshd",
    ))


def _identity_boot_step() -> ProvisionStep:
    """The boot step that gives each VM its own host key (lab.guests.windows_identity): its
    script, writable by SYSTEM/Administrators only (it runs as SYSTEM), and a scheduled
    task running it at every startup as SYSTEM (ScheduledTasks module: New-ScheduledTask*
    and Register-ScheduledTask; -LogonType ServiceAccount needs no password)."""
    folder, target = ident.BOOT_SCRIPT_DIR, ident.boot_script_path()
    argument = f"-NoProfile -NonInteractive -ExecutionPolicy Bypass -File {target}"
    return ProvisionStep("install the per-VM host key boot step (startup task as SYSTEM)", (
        f"New-Item -ItemType Directory -Force -Path {_q(folder)} | Out-Null",
        _checked("icacls.exe", folder, "/inheritance:r", "/grant", f"{SYSTEM_SID}:(OI)(CI)F",
                 "/grant", f"{ADMINS_SID}:(OI)(CI)F"),
        *_copy_locked(ident.BOOT_SCRIPT_NAME, target, SYSTEM_SID, ADMINS_SID),
        f"$action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument {_q(argument)}",
        "$trigger = New-ScheduledTaskTrigger -AtStartup",
        "$principal = New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount "
        "-RunLevel Highest",
        f"Register-ScheduledTask -TaskName {_q(ident.BOOT_TASK_NAME)} -Action $action "
        "-Trigger $trigger -Principal $principal -Force | Out-Null",
    ))


def _crash_control() -> ProvisionStep:
    key = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\CrashControl"
    return ProvisionStep("set CrashControl (kernel dump, keep it, NMI dump, auto reboot)", tuple(
        f"New-ItemProperty -Path {_q(key)} -Name {name} -Value {value} -PropertyType DWord "
        "-Force | Out-Null" for name, value in CRASH_CONTROL))


def _pvpanic(pvpanic_dir: str | None) -> ProvisionStep:
    what = "install the pvpanic driver (pnputil)"
    if pvpanic_dir is None:
        return ProvisionStep(what, (
            "Write-Host 'no pvpanic driver on the media (no virtio-win given): skipped'",))
    inf = pvpanic_dir.replace("/", "\\") + "\\*.inf"
    return ProvisionStep(what, (
        f"Invoke-Checked 'pnputil.exe' @('/add-driver', {_media(inf)}, '/install') "
        f"@({', '.join(str(c) for c in PNPUTIL_OK)})",))


def _quiet() -> ProvisionStep:
    au = "HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows\\WindowsUpdate\\AU"
    rtp = "HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows Defender\\Real-Time Protection"
    return ProvisionStep("turn off Windows Update, Defender real-time protection, power saving", (
        "Stop-Service -Name wuauserv -Force -ErrorAction SilentlyContinue",
        "Set-Service -Name wuauserv -StartupType Disabled",
        f"if (-not (Test-Path {_q(au)})) {{ New-Item -Path {_q(au)} -Force | Out-Null }}",
        f"New-ItemProperty -Path {_q(au)} -Name NoAutoUpdate -Value 1 -PropertyType DWord "
        "-Force | Out-Null",
        "if (Get-Command Set-MpPreference -ErrorAction SilentlyContinue) "
        "{ Set-MpPreference -DisableRealtimeMonitoring $true }",
        f"if (-not (Test-Path {_q(rtp)})) {{ New-Item -Path {_q(rtp)} -Force | Out-Null }}",
        f"New-ItemProperty -Path {_q(rtp)} -Name DisableRealtimeMonitoring -Value 1 "
        "-PropertyType DWord -Force | Out-Null",
        _checked("powercfg.exe", "/change", "standby-timeout-ac", "0"),
        _checked("powercfg.exe", "/change", "monitor-timeout-ac", "0"),
        _checked("powercfg.exe", "/hibernate", "off"),
    ))


def _openings(port: int) -> ProvisionStep:
    return ProvisionStep(f"open the echo port {port} and ICMPv4 echo in the firewall", (
        _firewall_rule(f"echo-tcp-{port}", "TCP", f"-LocalPort {port}"),
        _firewall_rule(f"echo-udp-{port}", "UDP", f"-LocalPort {port}"),
        _firewall_rule("icmpv4-echo", "ICMPv4", "-IcmpType 8"),
    ))


def provision_steps(settings: WindowsImageSettings,
                    pvpanic_dir: str | None) -> tuple[ProvisionStep, ...]:
    """The steps, in order (``pvpanic_dir``: media folder of pvpanic.inf, if any)."""
    return (
        _openssh(settings),
        _sshd_service(),
        ProvisionStep("open TCP 22 (sshd) in the firewall",
                      (_firewall_rule("sshd", "TCP", "-LocalPort 22"),)),
        _authorized_keys(),
        _default_shell(),
        _host_key(),
        _identity_boot_step(),
        ProvisionStep("turn test signing on", (_checked("bcdedit.exe", "/set", "testsigning",
                                                         "on"),)),
        ProvisionStep("trust the lab CA (Root, TrustedPublisher)", tuple(
            f"Import-Certificate -FilePath {_media(CA_NAME)} -CertStoreLocation "
            f"{_q(CERT_STORE + store)} | Out-Null" for store in ("Root", "TrustedPublisher"))),
        _crash_control(),
        _pvpanic(pvpanic_dir),
        _quiet(),
        _openings(settings.echo_port),
        ProvisionStep("ignore boot failures (bootstatuspolicy)", (
            _checked("bcdedit.exe", "/set", "{current}", "bootstatuspolicy",
                     "ignoreallfailures"),)),
    )


_PRELUDE = r"""# Driver Lab image provisioning (generated; runs once at first logon).
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$Media = $PSScriptRoot
$script:Step = 'open COM1'
$script:Port = $null
Start-Transcript -Path @TRANSCRIPT@ -Force -ErrorAction SilentlyContinue | Out-Null

function Send-Line([string]$Line) {
    Write-Host $Line
    if ($null -ne $script:Port) { $script:Port.WriteLine($Line) }
}

function Start-Step([int]$N, [string]$What) {
    $script:Step = $What
    Send-Line ('{0}{1}/{2}: {3}' -f @STEP@, $N, @TOTAL@, $What)
}

function Invoke-Checked([string]$Exe, [string[]]$Arguments, [int[]]$Ok) {
    $ErrorActionPreference = 'Continue'
    $out = & $Exe @Arguments 2>&1 | Out-String
    if ($Ok -notcontains $LASTEXITCODE) {
        throw ('{0} {1} exited {2}: {3}' -f $Exe, ($Arguments -join ' '), $LASTEXITCODE,
               $out.Trim())
    }
}

try {
    $script:Port = New-Object System.IO.Ports.SerialPort('COM1', 115200,
        [System.IO.Ports.Parity]::None, 8, [System.IO.Ports.StopBits]::One)
    $script:Port.NewLine = "`n"
    $script:Port.Open()
"""

_EPILOGUE = r"""    Send-Line @DONE@
} catch {
    $message = ($_.Exception.Message -replace '\s+', ' ').Trim()
    Send-Line (@FAILED@ + $script:Step + ': ' + $message)
} finally {
    if ($null -ne $script:Port) { $script:Port.Close() }
    Stop-Transcript -ErrorAction SilentlyContinue | Out-Null
}
Stop-Computer -Force
"""


def provision_script(settings: WindowsImageSettings, pvpanic_dir: str | None) -> str:
    """The whole script, CRLF line ends (Windows PowerShell reads either)."""
    steps = provision_steps(settings, pvpanic_dir)
    lines = [_PRELUDE.replace("@TRANSCRIPT@", _q(TRANSCRIPT)).replace("@STEP@", _q(STEP_PREFIX))
             .replace("@TOTAL@", str(len(steps)))]
    for number, step in enumerate(steps, start=1):
        lines.append(f"    Start-Step {number} {_q(step.what)}\n")
        lines.extend(f"    {line}\n" for line in step.body)
    lines.append(_EPILOGUE.replace("@DONE@", _q(COMPLETION_MARKER))
                 .replace("@FAILED@", _q(FAILURE_PREFIX)))
    return "".join(lines).replace("\r\n", "\n").replace("\n", "\r\n")


__all__ = ["AUTHORIZED_KEYS_NAME", "CA_NAME", "HOST_KEY_NAME", "OPENSSH_ZIP_NAME", "SCRIPT_NAME",
           "ProvisionStep", "provision_script", "provision_steps"]
