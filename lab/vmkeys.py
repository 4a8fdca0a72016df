"""Per-VM SSH host keys of micro guests, pinned before the VM first boots.

Design. Each VM gets its own ed25519 host key when it is defined. The private key
never enters the shared golden disk (that would let every guest impersonate every
other, and the golden image file is readable by whoever can read the pool) and
never travels on the kernel command line (readable by any guest process and
libvirt's XML). Instead the VM boots a *per-VM initramfs*: the shared initramfs
followed by a second cpio archive holding ``lab/host_key`` (Linux unpacks
concatenated archives in order). The initramfs init copies the key into a RAM-only
tmpfs on ``/etc/dropbear`` of the new root before ``switch_root`` (which then frees
the initramfs). The per-VM initramfs lives in the lab's pool (a 0600 volume) and a
0600 copy of the key stays in ``<state_dir>/keys/vms`` (0700).

The lab pins the VM's public key from the start (known_hosts, inventory, every
Guest connection), so there is no trust-on-first-use window and no shared
bootstrap key to steal: a guest that reads another VM's key file has nothing to
read, and a key in the golden image (older images) is never accepted for a VM
that has its own key. Reverting to the clean snapshot keeps the key (the domain
keeps its initramfs; the key is in the snapshot's RAM). Guest kinds that boot their
own disk (Windows) get an OpenSSH-format key pair instead (:func:`new_openssh_host_key`),
carried by a per-VM identity media (:mod:`lab.guests.windows_identity`).
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lab import keys
from lab.errors import HostKeyRefused
from lab.hosttools import run_tool
from lab.paths import StatePaths

#: Where the initramfs finds the key (images/linux-micro/initramfs-init).
KEY_IN_INITRAMFS = "lab/host_key"


@dataclass(frozen=True)
class VmHostKey:
    private: Path  #: dropbear (micro) or OpenSSH (Windows) format, 0600
    public: str  #: "ssh-ed25519 AAAA..."


def _dir(state_dir: Path) -> Path:
    return StatePaths(state_dir).keys / "vms"


def _fresh_pin(state_dir: Path, vm: str) -> tuple[Path, Path]:
    """The 0700 key folder and ``vm``'s pin file, removed first: no stale pin survives a
    failed generation."""
    folder = _dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder.parent, 0o700)
    os.chmod(folder, 0o700)
    pub_file = folder / f"{vm}.pub"
    pub_file.unlink(missing_ok=True)
    return folder, pub_file


def _write_pin(pub_file: Path, public: str) -> None:
    tmp = pub_file.with_suffix(".tmp")
    tmp.write_text(public + "\n")
    os.replace(tmp, pub_file)


def new_host_key(state_dir: Path, vm: str) -> VmHostKey:
    """A fresh host key for ``vm`` (replacing any older one: a redefined VM is a new VM)."""
    folder, pub_file = _fresh_pin(state_dir, vm)
    private = folder / f"{vm}.dropbear"
    private.unlink(missing_ok=True)  # dropbearkey refuses to overwrite
    run_tool(["dropbearkey", "-t", "ed25519", "-f", str(private)],
             f"generating the SSH host key of {vm}", timeout=60)
    os.chmod(private, 0o600)
    public = keys.host_public_line(private)
    _write_pin(pub_file, public)
    return VmHostKey(private=private, public=public)


def new_openssh_host_key(state_dir: Path, vm: str) -> VmHostKey:
    """A fresh ed25519 host key pair for ``vm`` in OpenSSH format (what Win32-OpenSSH's
    sshd reads), private half 0600 as ``<vm>.key``; replaces any older one."""
    folder, pub_file = _fresh_pin(state_dir, vm)
    private = folder / f"{vm}.key"
    key = Ed25519PrivateKey.generate()
    _write_private(private, key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.OpenSSH,
                                              serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode("ascii")
    _write_pin(pub_file, public)
    return VmHostKey(private=private, public=public)


def _write_private(path: Path, data: bytes) -> None:
    """Write a 0600 file atomically (created 0600, never wider)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def pinned_key(state_dir: Path, vm: str) -> str | None:
    """The public host key pinned for ``vm``, or None for a VM without its own key (a
    VM defined before per-VM keys)."""
    pub_file = _dir(state_dir) / f"{vm}.pub"
    try:
        line = pub_file.read_text().strip()
    except OSError:
        return None
    return line or None


def fingerprint(line: str) -> str:
    """``SHA256:<base64>`` of a public key line (what ``ssh-keygen -l`` prints)."""
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def check_host_key(vm: str, presented: str, pinned: str, image_key: str | None = None) -> None:
    """Accept ``presented`` only if it is the key pinned for ``vm``; else one clear line
    (naming the image's shared key when the VM fell back to it: its own never arrived)."""
    if presented.split()[:2] == pinned.split()[:2]:
        return
    shared = image_key is not None and presented.split()[:2] == image_key.split()[:2]
    what = "the golden image's shared host key" if shared else "an unknown host key"
    raise HostKeyRefused(
        f"{vm}: SSH host key refused: the guest presents {what} {fingerprint(presented)}, "
        f"not its own pinned key {fingerprint(pinned)}",
        hint="its own key never reached it (Windows: no identity media, or an image built "
             "before per-VM host keys: rebuild it with `lab image windows`); `lab down` then "
             "`lab up` makes the VM and its key again" if shared else
             "something else answers on its address, or its key was replaced: `lab down` "
             "and `lab up` make the VM and its key again")


def _cpio_entry(name: str, mode: int, data: bytes, ino: int) -> bytes:
    """One entry of a cpio "newc" archive (the format the kernel unpacks)."""
    name_z = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_z), 0)
    head = b"070701" + b"".join(b"%08X" % f for f in fields) + name_z
    head += b"\0" * (-len(head) % 4)
    return head + data + b"\0" * (-len(data) % 4)


def key_archive(private_key: bytes) -> bytes:
    """A cpio archive with ``lab/`` (0700) and ``lab/host_key`` (0600)."""
    return (_cpio_entry("lab", 0o040700, b"", 1)
            + _cpio_entry(KEY_IN_INITRAMFS, 0o100600, private_key, 2)
            + _cpio_entry("TRAILER!!!", 0, b"", 0))


def write_vm_initrd(shared: Path, key: VmHostKey, out: Path) -> str:
    """The VM's initramfs at ``out`` (0600): the shared one as it is (compressed), zero
    padding to 4 bytes, then the key archive uncompressed -- the kernel unpacks
    concatenated archives, compressed or not (Documentation/driver-api/early-userspace/
    buffer-format.rst); no recompression per VM. Returns its sha256."""
    data = shared.read_bytes()
    data += b"\0" * (-len(data) % 4) + key_archive(key.private.read_bytes())
    fd = os.open(out.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(out.with_suffix(".tmp"), out)
    return hashlib.sha256(data).hexdigest()


def vm_initrd_path(state_dir: Path, vm: str) -> Path:
    return _dir(state_dir) / f"{vm}.initrd"


def cpio_names(archive: bytes) -> list[tuple[str, int, bytes]]:
    """(name, mode, data) of every entry of concatenated newc archives (for tests)."""
    out: list[tuple[str, int, bytes]] = []
    pos = 0
    while pos + 110 <= len(archive):
        if archive[pos:pos + 6] != b"070701":
            pos += 4 if archive[pos:pos + 4] == b"\0\0\0\0" else 1
            continue
        fields = [int(archive[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        size, namesize = fields[6], fields[11]
        name_end = pos + 110 + namesize
        name = archive[pos + 110:name_end - 1].decode()
        data_start = name_end + (-name_end % 4)
        out.append((name, fields[1], archive[data_start:data_start + size]))
        pos = data_start + size + (-(data_start + size) % 4)
    return out
