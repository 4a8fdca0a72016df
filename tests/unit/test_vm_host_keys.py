"""Per-VM SSH host keys: fresh per VM, private files only, carried by the VM's own initramfs.

Real dropbearkey, real gzip/cpio bytes (the shared initramfs is made by the host's
cpio like the image builder's); the key archive is checked by parsing what the
kernel will unpack.
"""

from __future__ import annotations

import gzip
import shutil
import stat
import subprocess
import zlib
from pathlib import Path

import pytest

from lab import vmkeys
from lab.inventory import VmEntry, known_hosts_text
from lab.plan import Nic

pytestmark = pytest.mark.skipif(shutil.which("dropbearkey") is None or shutil.which("cpio") is None,
                                reason="needs dropbearkey and cpio (make setup)")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _shared_initrd(tmp_path: Path) -> Path:
    staging = tmp_path / "initramfs"
    (staging / "bin").mkdir(parents=True)
    (staging / "init").write_text("#!/bin/busybox sh\n")
    listing = "init\nbin\n"
    archive = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"], cwd=staging,
                             input=listing.encode(), capture_output=True, check=True,
                             timeout=60).stdout
    out = tmp_path / "initrd.img"
    out.write_bytes(gzip.compress(archive))
    return out


def test_each_vm_gets_its_own_private_key(tmp_path: Path) -> None:
    one = vmkeys.new_host_key(tmp_path, "vm1")
    two = vmkeys.new_host_key(tmp_path, "vm2")
    assert one.public != two.public and one.public.startswith("ssh-ed25519 ")
    assert _mode(one.private) == 0o600 and _mode(one.private.parent) == 0o700
    assert _mode(one.private.parent.parent) == 0o700  # <state>/keys
    assert vmkeys.pinned_key(tmp_path, "vm1") == one.public
    assert vmkeys.pinned_key(tmp_path, "vm3") is None


def test_a_redefined_vm_gets_a_new_key(tmp_path: Path) -> None:
    first = vmkeys.new_host_key(tmp_path, "vm1")
    again = vmkeys.new_host_key(tmp_path, "vm1")
    assert first.public != again.public
    assert vmkeys.pinned_key(tmp_path, "vm1") == again.public


def test_the_vm_initrd_is_the_shared_one_plus_the_key(tmp_path: Path) -> None:
    shared = _shared_initrd(tmp_path)
    key = vmkeys.new_host_key(tmp_path, "vm1")
    out = vmkeys.vm_initrd_path(tmp_path, "vm1")
    vmkeys.write_vm_initrd(shared, key, out)
    assert _mode(out) == 0o600
    # as the kernel reads it: a gzip member, then (after zero padding) a plain archive
    unpack = zlib.decompressobj(wbits=31)
    first = unpack.decompress(out.read_bytes())
    rest = unpack.unused_data
    assert unpack.eof and len(rest) - len(rest.lstrip(b"\0")) < 4
    assert rest.lstrip(b"\0").startswith(b"070701")  # newc, uncompressed
    assert first == gzip.decompress(shared.read_bytes())  # the shared archive, untouched
    entries = vmkeys.cpio_names(first) + vmkeys.cpio_names(rest.lstrip(b"\0"))
    assert {name for name, _mode_, _data in entries[:2]} == {"init", "bin"}
    got = {name: (mode, data) for name, mode, data in entries}
    assert got["lab/host_key"] == (0o100600, key.private.read_bytes())
    assert got["lab"][0] == 0o040700
    # the shared initramfs itself never holds a key
    shared_names = [n for n, _m, _d in vmkeys.cpio_names(gzip.decompress(shared.read_bytes()))]
    assert "lab/host_key" not in shared_names


def test_known_hosts_pin_each_vm_to_its_own_key(tmp_path: Path) -> None:
    def entry(name: str, address: str, key: str) -> VmEntry:
        nic = Nic(alias="ua-mgmt", role="management", mac="52:54:00:01:01:00",
                  model="virtio", network="l-mgmt", bridge="l-m", address=address, prefix=24)
        return VmEntry(name=name, domain=f"l-{name}", snapshot="clean", console_log="",
                       nics=(nic,), host_key=key)

    text = known_hosts_text((entry("vm1", "10.9.0.11", "ssh-ed25519 AAA1"),
                             entry("vm2", "10.9.0.12", "")), "ssh-ed25519 SHARED")
    assert text == "10.9.0.11 ssh-ed25519 AAA1\n10.9.0.12 ssh-ed25519 SHARED\n"
