"""What `lab image windows` builds from: [windows_image] of lab.toml plus the CLI overrides.

Every input is checked here once, cheaply (the file exists, can be read, is an ISO 9660
image, a zip, ...), and each problem is one line naming the input and the fix: a
:class:`~lab.errors.ConfigError` for a lab.toml key, a :class:`~lab.errors.LabFailure`
naming the command-line flag for a CLI value. :func:`check_installer_iso` looks inside the
Windows ISO (xorriso) and is the builder's to call before it spends time on a VM.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from lab.config import WINDOWS_VERSIONS, LabConfig
from lab.errors import ConfigError, LabFailure
from lab.hosttools import run_tool

#: ISO 9660: the first volume descriptor sits at sector 16 (2048-byte sectors) and carries
#: the standard identifier "CD001" at byte 1 of the descriptor (ECMA-119, 8.1).
_ISO_MAGIC_OFFSET = 16 * 2048 + 1
_ISO_MAGIC = b"CD001"
#: A zip file starts with a local file header signature (PKWARE APPNOTE 4.3.7).
_ZIP_MAGIC = b"PK\x03\x04"
#: Release named in an install.wim image name ("Windows 11 Pro", "Windows Server 2022 ...").
_EDITION_RELEASE = (
    (re.compile(r"\bWindows Server (2016|2019|2022|2025)\b", re.IGNORECASE), "server{}"),
    (re.compile(r"\bWindows (10|11)\b", re.IGNORECASE), "{}"),
)


@dataclass(frozen=True)
class WindowsImageSettings:
    """Every typed input of one Windows golden image build (see [windows_image])."""

    iso: Path  #: the Windows installation ISO (user input)
    virtio_win: Path | None  #: virtio-win ISO, optional
    edition: str  #: image name in install.wim or its index ("2")
    locale: str  #: "en-US"
    admin_user: str  #: "Administrator"
    product_key: str  #: "" = none
    openssh_zip: Path | None  #: offline OpenSSH-Win64.zip; None = Add-WindowsCapability
    disk_size_gib: int  #: 64
    disk_bus: str  #: "sata" | "virtio" (virtio needs virtio_win)
    tpm: bool  #: False: Windows 11 checks bypassed in windowsPE
    install_timeout_s: int  #: 7200
    echo_port: int  #: 7007 (firewall opening)
    windows_version: str = "server2022"  #: one of WINDOWS_VERSIONS; picks virtio-win folders

    @property
    def edition_index(self) -> int | None:
        """The install.wim index when the edition is given as a number."""
        return int(self.edition) if self.edition.isdigit() else None


@dataclass(frozen=True)
class _Input:
    """Where one input came from, to word its errors (lab.toml key or CLI flag)."""

    where: str
    key: str
    flag: str
    from_cli: bool

    def fail(self, value: str, problem: str, fix: str) -> LabFailure:
        if self.from_cli:
            return LabFailure(f"{self.flag} {value}: {problem}", hint=fix)
        return ConfigError(self.where, f"windows_image.{self.key}", f"{value!r} {problem}",
                           fix)


def settings_from(config: LabConfig, iso: str | None = None, virtio_win: str | None = None,
                  edition: str | None = None) -> WindowsImageSettings:
    """The build's settings: CLI values override [windows_image]; every file checked."""
    where = str(config.path)
    section = config.windows_image
    iso_path = _file(config, "iso", "--iso", iso, section.iso, _ISO_MAGIC_OFFSET, _ISO_MAGIC,
                     "an ISO 9660 image", "pass the Windows installation ISO (e.g. a Server "
                     "2022 evaluation ISO)")
    if iso_path is None:
        raise ConfigError(where, "windows_image.iso", "is empty and no --iso was given",
                          "pass --iso W.iso, or set [windows_image] iso")
    virtio = _file(config, "virtio_win", "--virtio-win", virtio_win, section.virtio_win,
                   _ISO_MAGIC_OFFSET, _ISO_MAGIC, "an ISO 9660 image",
                   "pass the virtio-win ISO (virtio-win.iso from the virtio-win project)")
    openssh = _file(config, "openssh_zip", "-", None, section.openssh_zip, 0, _ZIP_MAGIC,
                    "a zip file", "point it at Win32-OpenSSH's OpenSSH-Win64.zip, or leave it "
                    "empty for Add-WindowsCapability")
    chosen = (edition if edition is not None else section.edition).strip()
    if not chosen or chosen == "0":
        raise _Input(where, "edition", "--edition", edition is not None).fail(
            chosen, "is not an install.wim image", "give the image name (e.g. \"Windows Server "
            "2022 SERVERSTANDARD\") or its index, starting at 1")
    if section.disk_bus == "virtio" and virtio is None:
        raise ConfigError(where, "windows_image.disk_bus", "is virtio but no virtio-win ISO is "
                          "given (Setup needs viostor to see the disk)",
                          "pass --virtio-win V.iso or set virtio_win, or use disk_bus = \"sata\"")
    if section.tpm and shutil.which("swtpm") is None:
        raise ConfigError(where, "windows_image.tpm", "is true but swtpm is not installed on "
                          "this host", "apt-get install swtpm swtpm-tools, or set tpm = false "
                          "(Windows 11 setup checks are then bypassed)")
    return WindowsImageSettings(
        iso=iso_path, virtio_win=virtio, edition=chosen, locale=section.locale,
        admin_user=section.admin_user, product_key=section.product_key, openssh_zip=openssh,
        disk_size_gib=section.disk_size_gib, disk_bus=section.disk_bus, tpm=section.tpm,
        install_timeout_s=section.install_timeout_s, echo_port=section.echo_port,
        windows_version=release_of(chosen) or section.version)


def is_iso9660(path: Path) -> bool:
    """``path`` starts like an ISO 9660 image (xorriso takes anything else for a blank disc)."""
    try:
        with path.open("rb") as fh:
            fh.seek(_ISO_MAGIC_OFFSET)
            return fh.read(len(_ISO_MAGIC)) == _ISO_MAGIC
    except OSError:
        return False


def release_of(edition: str) -> str | None:
    """The Windows release an install.wim image name names (None for an index)."""
    for pattern, form in _EDITION_RELEASE:
        match = pattern.search(edition)
        if match:
            release = form.format(match.group(1))
            return release if release in WINDOWS_VERSIONS else None
    return None


def _file(config: LabConfig, key: str, flag: str, cli: str | None, configured: str,
          offset: int, magic: bytes, kind: str, fix: str) -> Path | None:
    """A user file (CLI path relative to the cwd, lab.toml path relative to the file)."""
    source = _Input(str(config.path), key, flag, cli is not None)
    if cli is not None:
        text, path = cli, Path(cli).expanduser().resolve()
    elif configured:
        text, path = configured, (config.base_dir / Path(configured).expanduser()).resolve()
    else:
        return None
    if not path.is_file():
        raise source.fail(text, "does not exist" if not path.exists() else "is not a file", fix)
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            head = fh.read(len(magic))
    except OSError as exc:
        raise source.fail(text, f"cannot be read ({exc.strerror})",
                          "make it readable by the user running the lab") from None
    if head != magic:
        raise source.fail(text, f"is not {kind}", fix)
    return path


def check_installer_iso(iso: Path) -> bool:
    """The ISO holds an amd64 UEFI Windows Setup; False when that cannot be seen from here.

    Microsoft's installation media keep the install images in ``sources/install.wim``
    (or ``.esd``/split ``.swm``) and the x64 UEFI loader in ``efi/boot/bootx64.efi``.
    Media made with ``oscdimg -u2`` (every current Microsoft ISO) put those files in UDF
    only, behind an ISO 9660 "bridge" that holds a README: xorriso reads no UDF, so those
    are listed with 7-Zip (``7z l``, which reads UDF); without 7-Zip this returns False
    (contents NOT checked; Setup itself is the check then).
    """
    names = _iso9660_names(iso)
    if not any(n.startswith("/sources/") for n in names) and _has_udf(iso):
        udf = _udf_names(iso)
        if udf is None:
            return False
        names = udf
    if not any(n.startswith("/sources/install.") and n.endswith((".wim", ".esd", ".swm"))
               for n in names):
        raise LabFailure(f"{iso}: is not a Windows installer (no sources/install.wim or .esd)",
                         hint="pass a Windows 10/11 or Server 2016-2025 installation ISO")
    if "/efi/boot/bootx64.efi" not in names:
        raise LabFailure(f"{iso}: has no x64 UEFI boot loader (efi/boot/bootx64.efi): wrong "
                         "architecture or not UEFI-bootable",
                         hint="use the amd64 (x64) installation ISO")
    return True


def _iso9660_names(iso: Path) -> set[str]:
    listing = run_tool(["xorriso", "-no_rc", "-indev", str(iso), "-find", "/", "-type", "f"],
                       f"listing {iso}", timeout=120)
    return {line.strip().strip("'").lower() for line in listing.splitlines()}


def _udf_names(iso: Path) -> set[str] | None:
    """File paths of a UDF volume as 7-Zip lists them (``Path = ...`` rows of ``-slt``)."""
    if shutil.which("7z") is None:
        return None
    listing = run_tool(["7z", "l", "-slt", "-tudf", str(iso)], f"listing the UDF of {iso}",
                       timeout=120)
    return {"/" + line.split("=", 1)[1].strip().replace("\\", "/").lower()
            for line in listing.splitlines() if line.startswith("Path = ")
            and line.split("=", 1)[1].strip() != str(iso)}


def _has_udf(iso: Path) -> bool:
    """A UDF NSR descriptor ("NSR02"/"NSR03") in the volume recognition sequence (ECMA-167
    2/9.1), which follows the ISO 9660 descriptors from sector 16 on."""
    with iso.open("rb") as fh:
        for sector in range(16, 64):
            fh.seek(sector * 2048 + 1)
            ident = fh.read(5)
            if ident in (b"NSR02", b"NSR03"):
                return True
            if not ident:
                break
    return False


__all__ = ["WindowsImageSettings", "check_installer_iso", "is_iso9660", "release_of",
           "settings_from"]
