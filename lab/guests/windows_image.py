"""The user's Windows golden image: checked before anything is created, then described.

Nothing here boots Windows. ``check_image`` proves, on the host, what can be
proved there (a qcow2 without a backing chain, a Secure-Boot-off OVMF pair, an
SSH key and a well-formed pinned host key, the lab CA built); ``golden_image``
returns the :class:`~lab.guests.base.GoldenImage` with a content digest cached
by path + size + mtime in the state directory (atomic write).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from lab.config import LabConfig
from lab.errors import LabFailure
from lab.guests.base import GoldenImage
from lab.hosttools import run_tool
from lab.inventory import write_text_atomic
from lab.progress import Progress

#: SSH public key types OpenSSH for Windows offers as host keys.
HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                  "ecdsa-sha2-nistp521", "ssh-rsa")
DIGEST_CACHE = "windows-image.json"
QEMU_IMG_TIMEOUT_S = 120.0
HASH_CHUNK = 8 << 20


class ImageUnusable(LabFailure):
    """The configured Windows image (or a file it needs) cannot be used."""


@dataclass(frozen=True)
class ImageFacts:
    disk: Path
    virtual_size: int
    key_file: Path
    host_key_line: str
    ovmf_code: Path
    ovmf_vars: Path


def _path(config: LabConfig, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (config.base_dir / path)


def qcow2_virtual_size(disk: Path) -> int:
    """``qemu-img info --output=json``: the image must be a qcow2 with no backing file."""
    out = run_tool(["qemu-img", "info", "--force-share", "--output=json", str(disk)],
                   f"reading the Windows image {disk}", timeout=QEMU_IMG_TIMEOUT_S)
    try:
        info = json.loads(out)
    except json.JSONDecodeError:
        raise ImageUnusable(f"qemu-img info printed no JSON for {disk}") from None
    if info.get("format") != "qcow2":
        raise ImageUnusable(f"{disk} is {info.get('format')!r}, not qcow2",
                            hint=f"convert it: qemu-img convert -O qcow2 {disk} win.qcow2")
    if info.get("backing-filename"):
        raise ImageUnusable(f"{disk} has a backing file ({info['backing-filename']})",
                            hint=f"flatten it: qemu-img convert -O qcow2 {disk} win.qcow2")
    size = info.get("virtual-size")
    if not isinstance(size, int) or size <= 0:
        raise ImageUnusable(f"qemu-img info gives no virtual size for {disk}")
    return size


def host_key_line(path: Path) -> str:
    """The ``<type> <base64>`` of an OpenSSH public key file, validated."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageUnusable(f"cannot read the Windows host key {path}: {exc}") from None
    words = text.split()
    if len(words) < 2 or words[0] not in HOST_KEY_TYPES:
        raise ImageUnusable(f"{path} is not an SSH public key line",
                            hint="copy C:\\ProgramData\\ssh\\ssh_host_ed25519_key.pub "
                                 "from the image")
    try:
        blob = base64.b64decode(words[1], validate=True)
    except (binascii.Error, ValueError):
        raise ImageUnusable(f"{path}: the key is not valid base64") from None
    if len(blob) < 4:
        raise ImageUnusable(f"{path}: the key blob is truncated")
    (length,) = struct.unpack_from(">I", blob, 0)
    if blob[4:4 + length].decode("ascii", errors="replace") != words[0]:
        raise ImageUnusable(f"{path}: the key blob is not a {words[0]} key")
    return f"{words[0]} {words[1]}"


def _private_key(path: Path) -> Path:
    try:
        head = path.read_text(encoding="ascii", errors="replace")[:80]
    except OSError as exc:
        raise ImageUnusable(f"cannot read the Windows SSH key {path}: {exc}") from None
    if "PRIVATE KEY-----" not in head:
        raise ImageUnusable(f"{path} is not a private key (PEM/OpenSSH)",
                            hint="point [image] windows_ssh_key at the private half of the "
                                 "key in administrators_authorized_keys")
    return path


def _ovmf(config: LabConfig) -> tuple[Path, Path]:
    code = _path(config, config.image.windows_ovmf_code)
    vars_ = _path(config, config.image.windows_ovmf_vars)
    for path, key in ((code, "windows_ovmf_code"), (vars_, "windows_ovmf_vars")):
        if not path.is_file():
            raise ImageUnusable(f"OVMF file {path} ([image] {key}) does not exist",
                                hint="apt-get install ovmf (Debian), or point the key at "
                                     "your OVMF build")
    if "secboot" in code.name or ".ms." in code.name:
        raise ImageUnusable(f"{code} is a Secure Boot build; testsigning needs it off",
                            hint="use OVMF_CODE_4M.fd (no .secboot/.ms)")
    return code, vars_


def check_image(config: LabConfig) -> ImageFacts:
    """Every host-side check; raises ImageUnusable naming the one thing to fix."""
    image = config.image
    disk = _path(config, image.windows_disk)
    if not image.windows_disk or not disk.is_file():
        raise ImageUnusable(f"the Windows image {disk} does not exist",
                            hint="set [image] windows_disk to your golden qcow2")
    size = qcow2_virtual_size(disk)
    code, vars_ = _ovmf(config)
    key = _private_key(_path(config, image.windows_ssh_key))
    line = host_key_line(_path(config, image.windows_host_key))
    return ImageFacts(disk=disk, virtual_size=size, key_file=key, host_key_line=line,
                      ovmf_code=code, ovmf_vars=vars_)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def cached_digest(disk: Path, state_dir: Path, progress: Progress) -> str:
    """The disk's SHA-256, recomputed only when its path, size or mtime changed."""
    st = disk.stat()
    key = {"path": str(disk.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    cache = state_dir / DIGEST_CACHE
    try:
        saved = json.loads(cache.read_text())
        if isinstance(saved, dict) and {k: saved.get(k) for k in key} == key:
            digest = saved.get("sha256")
            if isinstance(digest, str) and len(digest) == 64:
                return digest
    except (OSError, json.JSONDecodeError):
        pass
    progress(f"hashing the Windows image {disk} ({st.st_size >> 20} MiB, once)")
    digest = file_digest(disk)
    write_text_atomic(cache, json.dumps({**key, "sha256": digest}, indent=1) + "\n")
    return digest


def golden_image(config: LabConfig, progress: Progress) -> GoldenImage:
    facts = check_image(config)
    digest = cached_digest(facts.disk, config.state_dir, progress)
    return GoldenImage(disk=facts.disk, digest=digest[:16], disk_size=facts.virtual_size,
                       key_file=facts.key_file, host_key_line=facts.host_key_line)


__all__ = [
    "ImageFacts",
    "ImageUnusable",
    "cached_digest",
    "check_image",
    "golden_image",
    "host_key_line",
    "qcow2_virtual_size",
]
