"""The config media: a small ISO that turns a plain Windows install into a lab image.

It holds ``autounattend.xml`` at its root (Windows Setup looks for it on every removable
and CD media), the provisioning script, the lab CA, the lab's authorized key, the image's
SSH host key pair (made here; VMs replace it with their own at boot, see
lab.guests.windows_identity), the per-VM host key boot step's script, the
optional offline OpenSSH zip, and the virtio-win drivers Setup and the first logon need in
``$WinPEDriver$`` (a folder Setup loads by itself; dockur/windows src/install.sh does the
same). The ISO is ISO 9660 + Joliet (what Windows reads) + Rock Ridge, volume label
CONFIG_MEDIA_LABEL, built with xorriso's mkisofs emulation; files are extracted with
``xorriso -osirrox on -extract`` (xorriso(1)).

Everything secret (admin password, lab private key, host private key) lives in the build's
workdir as 0600 files and is reused when the same workdir is built again, so the media
digest changes only when an input does. The ISO itself is 0600 too: it carries the host
private key and the admin password.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lab.errors import LabFailure
from lab.guests.windows_identity import BOOT_SCRIPT_NAME, boot_script
from lab.hosttools import run_tool
from lab.image.answer import WINPE_DRIVER_DIR, answer_file
from lab.image.markers import CONFIG_MEDIA_LABEL
from lab.image.provision_script import (
    AUTHORIZED_KEYS_NAME,
    CA_NAME,
    HOST_KEY_NAME,
    OPENSSH_ZIP_NAME,
    SCRIPT_NAME,
    provision_script,
)
from lab.image.settings import WindowsImageSettings, is_iso9660

ANSWER_NAME = "autounattend.xml"
ISO_NAME = "config-media.iso"
PASSWORD_NAME = "admin-password"
CLIENT_KEY_NAME = "id_ed25519"
#: virtio-win ISO folder of each Windows release (<driver>/<folder>/amd64/ on the ISO).
VIRTIO_RELEASE_DIR: dict[str, str] = {
    "10": "w10", "11": "w11", "server2016": "2k16", "server2019": "2k19",
    "server2022": "2k22", "server2025": "2k25",
}
#: Drivers copied from virtio-win: disk (viostor: virtio-blk, vioscsi: virtio-scsi), NIC
#: (NetKVM) for Setup, pvpanic for the first logon.
VIRTIO_DRIVERS = ("viostor", "vioscsi", "NetKVM", "pvpanic")
XORRISO_TIMEOUT_S = 300


@dataclass(frozen=True)
class ConfigMedia:
    """A built config media and the keys the lab needs to use the image made with it."""

    iso: Path  #: the config ISO (volume label CONFIG_MEDIA_LABEL)
    digest: str  #: sha256 over every file put on it (names + bytes)
    ssh_key: Path  #: the lab's private key for the image's admin (OpenSSH PEM, 0600)
    host_key_pub: Path  #: the image's SSH host public key file (.pub line), pinned by the lab
    files: tuple[str, ...]  #: paths on the media


def build_config_media(settings: WindowsImageSettings, workdir: Path,
                       ca_cert: Path) -> ConfigMedia:
    """Build ``workdir/config-media.iso`` (atomically: temp name, then rename)."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o700)
    try:
        ca = ca_cert.read_bytes()
    except OSError as exc:
        raise LabFailure(f"the lab CA {ca_cert} cannot be read ({exc.strerror})",
                         hint="run `make drivers-windows` (it makes the lab test CA)") from None
    password = _secret_file(workdir / PASSWORD_NAME)
    client_pub = _keypair(workdir / CLIENT_KEY_NAME, "driver-lab")
    host_pub = _keypair(workdir / HOST_KEY_NAME, "driver-lab-host")
    stage = Path(tempfile.mkdtemp(prefix=".media-stage-", dir=workdir))
    tmp_iso = workdir / f".{ISO_NAME}.{os.getpid()}.tmp"
    try:
        drivers = _copy_drivers(settings, stage)
        _put(stage, ANSWER_NAME, answer_file(settings, password, drivers=bool(drivers)))
        _put(stage, SCRIPT_NAME,
             provision_script(settings, drivers.get("pvpanic")).encode("ascii"))
        _put(stage, CA_NAME, ca)
        _put(stage, AUTHORIZED_KEYS_NAME, client_pub.encode("ascii"))
        _put(stage, HOST_KEY_NAME, (workdir / HOST_KEY_NAME).read_bytes())
        _put(stage, HOST_KEY_NAME + ".pub", host_pub.encode("ascii"))
        _put(stage, BOOT_SCRIPT_NAME, boot_script().encode("ascii"))
        if settings.openssh_zip is not None:
            _put(stage, OPENSSH_ZIP_NAME, settings.openssh_zip.read_bytes())
        contents = _tree(stage)
        run_tool(["xorriso", "-no_rc", "-as", "mkisofs", "-quiet", "-o", str(tmp_iso),
                  "-V", CONFIG_MEDIA_LABEL, "-J", "-joliet-long", "-r", str(stage)],
                 "building the config media", timeout=XORRISO_TIMEOUT_S)
        os.chmod(tmp_iso, 0o600)
        os.replace(tmp_iso, workdir / ISO_NAME)
    finally:
        tmp_iso.unlink(missing_ok=True)
        _remove_tree(stage)
    return ConfigMedia(iso=workdir / ISO_NAME, digest=media_digest(contents.items()),
                       ssh_key=workdir / CLIENT_KEY_NAME,
                       host_key_pub=workdir / (HOST_KEY_NAME + ".pub"),
                       files=tuple(sorted(contents)))


def media_digest(files: Iterable[tuple[str, bytes]]) -> str:
    """sha256 over (name, size, bytes) of each file, in name order."""
    digest = hashlib.sha256()
    for name, data in sorted(files):
        digest.update(name.encode("utf-8") + b"\0" + len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def read_media(iso: Path) -> dict[str, bytes]:
    """Every file on an ISO (extracted with xorriso -osirrox), by its path on the media."""
    _require_iso(iso)
    with tempfile.TemporaryDirectory(prefix="lab-media-") as tmp:
        target = Path(tmp) / "root"
        try:
            run_tool(["xorriso", "-no_rc", "-osirrox", "on", "-indev", str(iso),
                      "-extract", "/", str(target)],
                     f"reading {iso}", timeout=XORRISO_TIMEOUT_S)
            return _tree(target)
        finally:
            _writable(target)


def list_iso(iso: Path) -> tuple[str, ...]:
    """Paths of every file on an ISO ("/dir/file"), as xorriso -find prints them."""
    _require_iso(iso)
    out = run_tool(["xorriso", "-no_rc", "-indev", str(iso), "-find", "/", "-type", "f"],
                   f"listing {iso}", timeout=XORRISO_TIMEOUT_S)
    names = []
    for line in out.splitlines():
        line = line.strip()
        if len(line) >= 2 and line[0] == line[-1] == "'":
            names.append(line[1:-1].replace("'\"'\"'", "'"))
    return tuple(names)


def _require_iso(iso: Path) -> None:
    if not is_iso9660(iso):
        raise LabFailure(f"reading {iso}: it is missing or not an ISO 9660 image",
                         hint="pass an ISO file (xorriso would read anything else as empty)")


def _copy_drivers(settings: WindowsImageSettings, stage: Path) -> dict[str, str]:
    """Extract the drivers of this release into $WinPEDriver$; {driver: media folder}."""
    if settings.virtio_win is None:
        return {}
    release = VIRTIO_RELEASE_DIR[settings.windows_version]
    found: dict[str, str] = {}
    for name in list_iso(settings.virtio_win):
        parts = name.strip("/").split("/")
        if len(parts) < 4 or parts[1].lower() != release or parts[2].lower() != "amd64":
            continue
        for driver in VIRTIO_DRIVERS:
            if parts[0].lower() == driver.lower():
                found.setdefault(driver, "/" + "/".join(parts[:3]))
    if settings.disk_bus == "virtio" and "viostor" not in found:
        raise LabFailure(f"{settings.virtio_win}: has no viostor/{release}/amd64 driver, which "
                         "a virtio system disk needs",
                         hint=f"use a virtio-win ISO that supports Windows "
                              f"{settings.windows_version}, or disk_bus = \"sata\"")
    if not found:
        raise LabFailure(f"{settings.virtio_win}: holds none of "
                         f"{', '.join(VIRTIO_DRIVERS)} for {release}/amd64",
                         hint="pass the virtio-win ISO (virtio-win.iso) and check "
                              "[windows_image] version")
    command = ["xorriso", "-no_rc", "-osirrox", "on", "-indev", str(settings.virtio_win)]
    folders: dict[str, str] = {}
    for driver, source in sorted(found.items()):
        folder = f"{WINPE_DRIVER_DIR}/{driver}/{release}/amd64"
        command += ["-extract", source, str(stage / folder)]
        folders[driver] = folder
    try:
        run_tool(command, f"copying drivers out of {settings.virtio_win}",
                 timeout=XORRISO_TIMEOUT_S)
    finally:
        _writable(stage)
    return folders


def _put(stage: Path, name: str, data: bytes) -> None:
    path = stage / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by its relative POSIX path, in name order."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in files}


def _writable(root: Path) -> None:
    """Extracted ISO trees are read-only (r-x dirs): open them up for us to delete."""
    if not root.exists():
        return
    for dirpath, _dirs, names in os.walk(root):
        os.chmod(dirpath, 0o700)
        for name in names:
            os.chmod(os.path.join(dirpath, name), 0o600)


def _remove_tree(root: Path) -> None:
    _writable(root)
    shutil.rmtree(root, ignore_errors=True)


def _write_private(path: Path, data: bytes) -> None:
    """Write a 0600 file atomically (created 0600, never wider)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _secret_file(path: Path) -> str:
    """The build's admin password: random once per workdir, 0600, never printed.

    Letters, digits and '-'/'_' (token_urlsafe) plus one of each class, which meets the
    default Windows complexity policy (three of four character classes).
    """
    if not path.exists():
        _write_private(path, (secrets.token_urlsafe(18) + "-Aa1").encode("ascii"))
    return path.read_text(encoding="ascii").strip()


def _keypair(path: Path, comment: str) -> str:
    """An ed25519 key pair in OpenSSH format (private 0600); the public line."""
    pub = path.with_name(path.name + ".pub")
    if not path.exists() or not pub.exists():
        key = Ed25519PrivateKey.generate()
        _write_private(path, key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.OpenSSH,
                                               serialization.NoEncryption()))
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH)
        pub.write_bytes(line + f" {comment}\n".encode("ascii"))
    return pub.read_text(encoding="ascii")


__all__ = ["ANSWER_NAME", "ConfigMedia", "build_config_media", "list_iso", "media_digest",
           "read_media"]
