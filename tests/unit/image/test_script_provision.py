"""The provisioning script: every step in order, announced on COM1, failures trapped."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from lab.image.markers import COMPLETION_MARKER, FAILURE_PREFIX, STEP_PREFIX
from lab.image.provision_script import provision_script, provision_steps
from lab.image.settings import WindowsImageSettings

SETTINGS = WindowsImageSettings(
    iso=Path("/isos/win.iso"), virtio_win=Path("/isos/virtio-win.iso"), edition="2",
    locale="en-US", admin_user="Administrator", product_key="", openssh_zip=None,
    disk_size_gib=64, disk_bus="sata", tpm=False, install_timeout_s=7200, echo_port=7007)
PVPANIC = "$WinPEDriver$/pvpanic/2k22/amd64"

#: (what the step says, text its body must hold), in the issue's order.
EXPECTED = [
    ("OpenSSH server", "Add-WindowsCapability -Online -Name 'OpenSSH.Server~~~~0.0.1.0'"),
    ("delayed-auto", "Invoke-Checked 'sc.exe' @('config', 'sshd', 'start=', 'delayed-auto')"),
    ("TCP 22", "-Protocol TCP -LocalPort 22"),
    ("authorize the lab key", "'/inheritance:r', '/grant', '*S-1-5-32-544:F'"),
    ("default shell", "-Name DefaultShell -Value "
                      "'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe'"),
    ("host key", "'C:\\ProgramData\\ssh\\ssh_host_ed25519_key'"),
    ("per-VM host key boot step", "Register-ScheduledTask -TaskName 'driver-lab-identity'"),
    ("test signing", "@('/set', 'testsigning', 'on')"),
    ("lab CA", "-CertStoreLocation 'Cert:\\LocalMachine\\TrustedPublisher'"),
    ("CrashControl", "-Name NMICrashDump -Value 1"),
    ("pvpanic", "'pnputil.exe' @('/add-driver', (Join-Path $Media "
                "'$WinPEDriver$\\pvpanic\\2k22\\amd64\\*.inf'), '/install')"),
    ("Windows Update", "Set-MpPreference -DisableRealtimeMonitoring $true"),
    ("echo port 7007", "-Protocol ICMPv4 -IcmpType 8"),
    ("bootstatuspolicy", "'{current}', 'bootstatuspolicy', 'ignoreallfailures'"),
]


def step_bodies(script: str) -> list[tuple[int, str, str]]:
    """(number, what, body) of every ``Start-Step`` in the script, in script order."""
    parts = re.split(r"^    Start-Step (\d+) '((?:[^']|'')*)'\r$", script, flags=re.MULTILINE)
    return [(int(parts[i]), parts[i + 1], parts[i + 2]) for i in range(1, len(parts) - 1, 3)]


def test_every_step_in_order_with_its_command() -> None:
    script = provision_script(SETTINGS, PVPANIC)
    steps = step_bodies(script)
    assert [n for n, _, _ in steps] == list(range(1, len(EXPECTED) + 1))
    for (_, what, body), (expected_what, command) in zip(steps, EXPECTED, strict=True):
        assert expected_what.lower() in what.lower(), (what, expected_what)
        assert command in body, (what, command)


def test_markers_on_com1_then_power_off() -> None:
    script = provision_script(SETTINGS, PVPANIC)
    total = len(provision_steps(SETTINGS, PVPANIC))
    assert "New-Object System.IO.Ports.SerialPort('COM1', 115200" in script
    assert f"Send-Line ('{{0}}{{1}}/{{2}}: {{3}}' -f '{STEP_PREFIX}', $N, {total}, $What)" \
        in script
    done = script.index(f"Send-Line '{COMPLETION_MARKER}'")
    catch = script.index("} catch {")
    failed = script.index(f"Send-Line ('{FAILURE_PREFIX}' + $script:Step + ': ' + $message)")
    last_step = script.rindex("Start-Step ")
    assert last_step < done < catch < failed < script.index("Stop-Computer -Force")
    assert script.rstrip().endswith("Stop-Computer -Force")
    assert "$ErrorActionPreference = 'Stop'" in script


def test_native_failures_throw() -> None:
    script = provision_script(SETTINGS, PVPANIC)
    assert "if ($Ok -notcontains $LASTEXITCODE) {" in script
    assert "@(0, 3010, 259)" in script  # pnputil: added / reboot needed / no device yet


def test_offline_openssh_zip() -> None:
    script = provision_script(replace(SETTINGS, openssh_zip=Path("/x/OpenSSH-Win64.zip")), None)
    _, what, body = step_bodies(script)[0]
    assert "offline" in what
    assert "Expand-Archive -Path (Join-Path $Media 'OpenSSH-Win64.zip')" in body
    assert "install-sshd.ps1" in body and "Add-WindowsCapability" not in script


def test_no_pvpanic_without_virtio_win_is_said_not_hidden() -> None:
    script = provision_script(replace(SETTINGS, virtio_win=None), None)
    body = next(b for _, what, b in step_bodies(script) if "pvpanic" in what)
    assert "pnputil" not in body and "skipped" in body


@pytest.mark.parametrize("port", [7007, 12345])
def test_echo_port_opened_tcp_and_udp(port: int) -> None:
    script = provision_script(replace(SETTINGS, echo_port=port), PVPANIC)
    for proto in ("TCP", "UDP"):
        assert f"-Protocol {proto} -LocalPort {port}" in script


def test_single_quoted_literals_double_quotes() -> None:
    script = provision_script(SETTINGS, "$WinPEDriver$/it's/2k22/amd64")
    assert "'$WinPEDriver$\\it''s\\2k22\\amd64\\*.inf'" in script


def test_ascii_crlf_and_balanced_braces() -> None:
    script = provision_script(SETTINGS, PVPANIC)
    script.encode("ascii")
    assert "\r\n" in script and "\n" not in script.replace("\r\n", "")
    code = re.sub(r"'(?:[^']|'')*'", "''", script)  # braces inside literals do not count
    assert code.count("{") == code.count("}") and code.count("(") == code.count(")")


def test_per_vm_host_key_boot_step_runs_at_startup_as_system() -> None:
    steps = step_bodies(provision_script(SETTINGS, PVPANIC))
    names = [what for _, what, _ in steps]
    host_key = next(i for i, what in enumerate(names) if what.startswith("install the pinned"))
    body = steps[host_key + 1][2]
    assert "per-VM host key boot step" in names[host_key + 1]
    assert ("Copy-Item -Path (Join-Path $Media 'lab-identity.ps1') -Destination "
            "'C:\\ProgramData\\driver-lab\\lab-identity.ps1' -Force") in body
    # the folder and the script (run as SYSTEM) are writable by SYSTEM/Administrators only
    assert ("@('C:\\ProgramData\\driver-lab', '/inheritance:r', '/grant', "
            "'*S-1-5-18:(OI)(CI)F', '/grant', '*S-1-5-32-544:(OI)(CI)F')") in body
    assert ("@('C:\\ProgramData\\driver-lab\\lab-identity.ps1', '/inheritance:r', "
            "'/grant', '*S-1-5-18:F', '/grant', '*S-1-5-32-544:F')") in body
    assert "New-ScheduledTaskTrigger -AtStartup" in body
    assert ("New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount "
            "-RunLevel Highest") in body
    assert ("-File C:\\ProgramData\\driver-lab\\lab-identity.ps1'") in body
    assert "Register-ScheduledTask -TaskName 'driver-lab-identity' -Action $action " \
           "-Trigger $trigger -Principal $principal -Force" in body
