"""Per-VM SSH host keys of Windows VMs: identity media, boot step, pinning, refusal.

Real parts: the key pairs (cryptography), the identity media (xorriso builds the ISO,
xorriso reads it back: label and files as a guest would find them), the pinned keys
the lab writes, and a real SSH server (dropbear, root only) presenting a key that is
not the pinned one. The Windows side is the typed test double (tests/doubles): it runs
the image's startup step on the media it was given. No real Windows runs the boot step
here.
"""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from test_guest_deadlines import FakeGuest, guest_sshd

from lab import vmkeys
from lab.errors import DeadlineExceeded, HostKeyRefused
from lab.guest import Guest, wait_for_ssh
from lab.guests import windows_identity as ident
from tests.doubles.windows_guest import IMAGE_HOST_KEY, ImageState, VolumeSpec, WindowsGuestDouble

__all__ = ["guest_sshd"]  # the real dropbear fixture, shared with test_guest_deadlines

needs_xorriso = pytest.mark.skipif(shutil.which("xorriso") is None,
                                   reason="needs xorriso (make setup)")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _booted(state: Path, vm: str, *, media: bool = True,
            image: ImageState | None = None) -> WindowsGuestDouble:
    """The lab defines ``vm`` (key + media, read back for real), the double boots with it."""
    built = ident.build_identity_media(state, vm)
    label, files = ident.read_identity_media(built.path)
    return WindowsGuestDouble(vm, image=image, volumes=[VolumeSpec(label, files)] if media
                              else [])


@needs_xorriso
def test_the_identity_media_is_private_and_carries_the_pinned_pair(tmp_path: Path) -> None:
    built = ident.build_identity_media(tmp_path, "w1")
    assert _mode(built.path) == 0o600 and _mode(built.path.parent) == 0o700
    assert _mode(built.path.parent.parent) == 0o700  # <state>/keys
    label, files = ident.read_identity_media(built.path)
    assert label == ident.IDENTITY_LABEL
    assert set(files) == {ident.HOST_KEY_NAME, ident.HOST_PUB_NAME}
    assert files[ident.HOST_KEY_NAME].startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert files[ident.HOST_KEY_NAME] == (built.path.parent / "w1.key").read_bytes()
    assert _mode(built.path.parent / "w1.key") == 0o600
    assert files[ident.HOST_PUB_NAME].decode().strip() == built.public
    assert vmkeys.pinned_key(tmp_path, "w1") == built.public
    assert not list(built.path.parent.glob(".ident-stage-*"))  # no staging copy left


@needs_xorriso
def test_two_vms_present_different_keys_each_its_pinned_one(tmp_path: Path) -> None:
    one, two = _booted(tmp_path, "w1"), _booted(tmp_path, "w2")
    pin1, pin2 = vmkeys.pinned_key(tmp_path, "w1"), vmkeys.pinned_key(tmp_path, "w2")
    assert pin1 is not None and pin2 is not None and pin1 != pin2
    assert one.presented_host_key() == pin1 and two.presented_host_key() == pin2
    assert IMAGE_HOST_KEY not in (pin1, pin2)
    vmkeys.check_host_key("w1", one.presented_host_key(), pin1, IMAGE_HOST_KEY)
    vmkeys.check_host_key("w2", two.presented_host_key(), pin2, IMAGE_HOST_KEY)
    with pytest.raises(HostKeyRefused, match="an unknown host key"):  # w1 posing as w2
        vmkeys.check_host_key("w2", one.presented_host_key(), pin2, IMAGE_HOST_KEY)
    one._boot()  # a reboot keeps the VM's own key
    assert one.presented_host_key() == pin1


@needs_xorriso
@pytest.mark.parametrize("case", ["no media", "image without the boot step", "wrong label"])
def test_a_vm_without_its_key_fails_the_host_key_check_in_one_line(tmp_path: Path,
                                                                    case: str) -> None:
    if case == "no media":
        guest = _booted(tmp_path, "w3", media=False)
    elif case == "image without the boot step":
        guest = _booted(tmp_path, "w3", image=ImageState(identity_boot_step=False))
    else:
        built = ident.build_identity_media(tmp_path, "w3")
        guest = WindowsGuestDouble("w3", volumes=[VolumeSpec(
            "CONFIG", ident.read_identity_media(built.path)[1])])
    pinned = vmkeys.pinned_key(tmp_path, "w3")
    assert pinned is not None
    assert guest.presented_host_key() == IMAGE_HOST_KEY
    with pytest.raises(HostKeyRefused) as caught:
        vmkeys.check_host_key("w3", guest.presented_host_key(), pinned, IMAGE_HOST_KEY)
    summary = caught.value.summary
    assert "\n" not in summary
    assert summary == (f"w3: SSH host key refused: the guest presents the golden image's "
                       f"shared host key {vmkeys.fingerprint(IMAGE_HOST_KEY)}, not its own "
                       f"pinned key {vmkeys.fingerprint(pinned)}")
    assert caught.value.hint is not None and "lab image windows" in caught.value.hint


def test_fingerprint_is_what_ssh_keygen_prints(tmp_path: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("needs ssh-keygen")
    key = vmkeys.new_openssh_host_key(tmp_path, "w1")
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "keys/vms/w1.pub")],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    assert out.split()[1] == vmkeys.fingerprint(key.public)


def test_the_boot_step_script() -> None:
    text = ident.boot_script()
    text.encode("ascii")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    assert "-Filter 'Label = ''LABIDENT'''" in text
    assert "/inheritance:r /grant '*S-1-5-18:F' /grant '*S-1-5-32-544:F'" in text
    assert "/setowner '*S-1-5-18'" in text
    # the key is ACL'd before it takes the final name, and sshd restarts only if it runs
    assert text.index("/setowner") < text.index("Move-Item")
    assert "if ($Changed -and ((Get-Service -Name sshd).Status -eq 'Running'))" in text
    code = re.sub(r"'(?:[^']|'')*'", "''", text)  # braces inside literals do not count
    assert code.count("{") == code.count("}") and code.count("(") == code.count(")")


def test_the_lab_refuses_a_real_server_presenting_the_image_key(guest_sshd: FakeGuest,
                                                                  tmp_path: Path) -> None:
    """dropbear presents the lab's image key; the VM's own key is pinned: one clear line."""
    own = vmkeys.new_openssh_host_key(tmp_path / "state", "fake")
    image_key = guest_sshd.addr.host_key
    addr = replace(guest_sshd.addr, host_key=own.public, shared_host_key=image_key)
    with Guest(addr, connect_timeout=3) as guest, pytest.raises(HostKeyRefused) as caught:
        guest.run("true", timeout=10)
    assert caught.value.summary.startswith("fake: SSH host key refused: the guest presents "
                                           "the golden image's shared host key SHA256:")
    assert vmkeys.fingerprint(own.public) in caught.value.summary
    # waiting for SSH names the refusal when it gives up (a Windows alive() swallows errors)
    with pytest.raises(DeadlineExceeded, match="fake: SSH host key refused: the guest "
                       "presents the golden image's shared host key"):
        wait_for_ssh(addr, 3, alive=_alive)


def _alive(guest: Guest) -> bool:
    try:
        return guest.run("true", timeout=5, check=False).ok
    except HostKeyRefused:
        return False
