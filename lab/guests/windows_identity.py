"""Per-VM SSH host keys of Windows guests: the identity media and the boot step that reads it.

Design. A Windows VM boots its own disk (a linked clone of the golden image), so the
lab cannot hand it a key the way it does a micro guest (its initramfs). Instead:

* when the VM is defined, :func:`lab.vmkeys.new_openssh_host_key` makes its own
  ed25519 key pair (OpenSSH format, 0600 in ``<state_dir>/keys/vms``) and the lab pins
  the public half at once (known_hosts, inventory, every Guest connection);
* :func:`build_identity_media` puts the pair on a tiny ISO 9660 + Joliet image
  labelled :data:`IDENTITY_LABEL` (xorriso, as the config media), written 0600;
  the lab uploads it to its pool as :func:`volume_name` (libvirt makes pool
  volumes 0600) and deletes the local copy;
* the domain attaches it as a read-only SATA CD-ROM (lab.domxml): QEMU refuses a
  read-only SATA/IDE *hard disk*, a CD-ROM is read-only by nature, and Windows reads
  Joliet with no driver;
* the golden image's provisioning (lab.image.provision_script) installs
  :func:`boot_script` and a scheduled task running it as SYSTEM at every startup:
  when a volume labelled LABIDENT is present it installs the pair as
  ``C:\\ProgramData\\ssh\\ssh_host_ed25519_key(.pub)`` (owner SYSTEM, only SYSTEM and
  Administrators on the private key: Win32-OpenSSH wiki "Security protection of
  various files") and restarts sshd if it already runs (sshd is delayed-auto, so it
  normally starts after the task).

A VM whose media is missing keeps the image's shared key, which the lab no longer
accepts for that VM: :func:`lab.vmkeys.check_host_key` names it in one line. The key
lives on the VM's own overlay disk, so its clean snapshot keeps it; `lab down` deletes
the volume with the pool. Proved on the host (real xorriso, real keys) and against the
Windows test double; a real Windows guest running the boot step is not tested here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lab import vmkeys
from lab.errors import LabFailure
from lab.guests.windows_text import ps_quote
from lab.hosttools import run_tool
from lab.paths import StatePaths

#: The volume label the boot step looks for (ISO 9660 and Joliet volume id).
IDENTITY_LABEL = "LABIDENT"
#: The key pair's file names, on the media and in C:\\ProgramData\\ssh.
HOST_KEY_NAME = "ssh_host_ed25519_key"
HOST_PUB_NAME = HOST_KEY_NAME + ".pub"
SSH_DIR = "C:\\ProgramData\\ssh"
#: The boot step's script, its folder in the guest and its scheduled task.
BOOT_SCRIPT_NAME = "lab-identity.ps1"
BOOT_SCRIPT_DIR = "C:\\ProgramData\\driver-lab"
BOOT_TASK_NAME = "driver-lab-identity"
#: How long the boot step waits for the media's drive letter.
MEDIA_WAIT_S = 120
XORRISO_TIMEOUT_S = 60
#: Well-known SIDs (locale-proof): SYSTEM, BUILTIN\\Administrators.
SYSTEM_SID = "*S-1-5-18"
ADMINS_SID = "*S-1-5-32-544"


@dataclass(frozen=True)
class IdentityMedia:
    """A VM's identity media on this host (0600) and the key it carries."""

    path: Path
    public: str  #: "ssh-ed25519 AAAA..." (pinned for the VM)
    sha256: str


def media_path(state_dir: Path, vm: str) -> Path:
    return StatePaths(state_dir).keys / "vms" / f"{vm}.ident.iso"


def volume_name(vm: str) -> str:
    """The pool volume of ``vm``'s identity media (lab.identity.is_lab_volume knows it)."""
    return f"ident-{vm}.iso"


def build_identity_media(state_dir: Path, vm: str) -> IdentityMedia:
    """A fresh host key pair for ``vm`` and the 0600 ISO carrying it."""
    key = vmkeys.new_openssh_host_key(state_dir, vm)
    out = media_path(state_dir, vm)
    stage = Path(tempfile.mkdtemp(prefix=".ident-stage-", dir=out.parent))  # 0700
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(key.private, stage / HOST_KEY_NAME)
        (stage / HOST_PUB_NAME).write_text(key.public + "\n", encoding="ascii")
        tmp.unlink(missing_ok=True)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        run_tool(["xorriso", "-no_rc", "-as", "mkisofs", "-quiet", "-o", str(tmp),
                  "-V", IDENTITY_LABEL, "-J", "-joliet-long", "-r", str(stage)],
                 f"building the identity media of {vm}", timeout=XORRISO_TIMEOUT_S)
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(stage, ignore_errors=True)
    return IdentityMedia(path=out, public=key.public,
                         sha256=hashlib.sha256(out.read_bytes()).hexdigest())


def read_identity_media(iso: Path) -> tuple[str, dict[str, bytes]]:
    """(volume label, {file name: bytes}) of an identity media, read back with xorriso
    (what a guest would find on the CD-ROM)."""
    info = run_tool(["xorriso", "-no_rc", "-indev", str(iso), "-pvd_info"],
                    f"reading {iso}", timeout=XORRISO_TIMEOUT_S)
    label = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("Volume Id")), "")
    with tempfile.TemporaryDirectory(prefix="lab-ident-") as tmp:
        root = Path(tmp) / "root"
        try:
            run_tool(["xorriso", "-no_rc", "-osirrox", "on", "-indev", str(iso),
                      "-extract", "/", str(root)], f"reading {iso}", timeout=XORRISO_TIMEOUT_S)
            files = {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}
        finally:
            for path in (root, *root.rglob("*")) if root.exists() else ():
                os.chmod(path, 0o700)  # extracted trees are read-only: let them be deleted
    if not label:
        raise LabFailure(f"{iso}: xorriso shows no volume id")
    return label, files


_BOOT_SCRIPT = r"""# Driver Lab: install the own SSH host key of this VM from its identity media.
# Generated; runs at every startup as SYSTEM, from the scheduled task @TASK@.
$ErrorActionPreference = 'Stop'
$Log = 'C:\Windows\Temp\driver-lab-identity.log'
Start-Transcript -Path $Log -Force -ErrorAction SilentlyContinue | Out-Null
$Deadline = (Get-Date).AddSeconds(@WAIT@)
$Root = $null
while (($null -eq $Root) -and ((Get-Date) -lt $Deadline)) {
    $Volume = Get-CimInstance -ClassName Win32_Volume -Filter @FILTER@ |
        Where-Object { $_.DriveLetter } | Select-Object -First 1
    if ($null -ne $Volume) { $Root = $Volume.DriveLetter + '\' } else { Start-Sleep -Seconds 2 }
}
if ($null -eq $Root) {
    Write-Output 'no identity media: the image key stays (the lab refuses it for this VM)'
    exit 0
}
$Changed = $false
foreach ($Name in @(@KEY@, @PUB@)) {
    $Source = Join-Path $Root $Name
    $Target = Join-Path @SSH@ $Name
    $New = [Convert]::ToBase64String([System.IO.File]::ReadAllBytes($Source))
    if ((Test-Path -LiteralPath $Target) -and
        ([Convert]::ToBase64String([System.IO.File]::ReadAllBytes($Target)) -eq $New)) {
        continue
    }
    $Staged = $Target + '.new'
    Copy-Item -LiteralPath $Source -Destination $Staged -Force
    (Get-Item -LiteralPath $Staged).Attributes = 'Normal'
    if ($Name -eq @KEY@) {
        & icacls.exe $Staged /inheritance:r /grant @SYSTEM@ /grant @ADMINS@ | Out-Null
        if ($LASTEXITCODE -ne 0) { throw ('icacls /grant exited {0}' -f $LASTEXITCODE) }
        & icacls.exe $Staged /setowner @OWNER@ | Out-Null
        if ($LASTEXITCODE -ne 0) { throw ('icacls /setowner exited {0}' -f $LASTEXITCODE) }
    }
    Move-Item -LiteralPath $Staged -Destination $Target -Force
    $Changed = $true
}
if ($Changed -and ((Get-Service -Name sshd).Status -eq 'Running')) {
    Restart-Service -Name sshd
}
Write-Output ('identity media {0}: host key installed (changed: {1})' -f $Root, $Changed)
"""


def boot_script() -> str:
    """The boot step (Windows PowerShell 5.1), CRLF line ends, every literal single-quoted."""
    text = _BOOT_SCRIPT
    for mark, value in (("@TASK@", BOOT_TASK_NAME), ("@WAIT@", str(MEDIA_WAIT_S)),
                        ("@FILTER@", ps_quote(f"Label = '{IDENTITY_LABEL}'")),
                        ("@KEY@", ps_quote(HOST_KEY_NAME)), ("@PUB@", ps_quote(HOST_PUB_NAME)),
                        ("@SSH@", ps_quote(SSH_DIR)), ("@SYSTEM@", ps_quote(SYSTEM_SID + ":F")),
                        ("@ADMINS@", ps_quote(ADMINS_SID + ":F")),
                        ("@OWNER@", ps_quote(SYSTEM_SID))):
        text = text.replace(mark, value)
    return text.replace("\n", "\r\n")


def boot_script_path() -> str:
    return f"{BOOT_SCRIPT_DIR}\\{BOOT_SCRIPT_NAME}"


__all__ = ["BOOT_SCRIPT_NAME", "BOOT_TASK_NAME", "HOST_KEY_NAME", "HOST_PUB_NAME",
           "IDENTITY_LABEL", "IdentityMedia", "boot_script", "boot_script_path",
           "build_identity_media", "media_path", "read_identity_media", "volume_name"]
