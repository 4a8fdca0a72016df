"""`lab up` of a Windows lab whose image is missing or unusable: one clear line, nothing made.

Runs the real CLI (`python -m lab up`) in a subprocess. The checks happen before
any libvirt object, sandbox or state directory is created, so no libvirtd is needed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

LAB_TOML = """\
[lab]
name = "dlwinbad"
state_dir = "state"
[image]
kind = "windows"
windows_disk = "win.qcow2"
windows_ssh_key = "id_lab"
windows_host_key = "host.pub"
[vms]
names = ["w1"]
memory_mib = 4096
test_nics = ["e1000e"]
"""


def _lab(tmp_path: Path, disk: bytes | None) -> Path:
    if disk is not None:
        (tmp_path / "win.qcow2").write_bytes(disk)
    (tmp_path / "id_lab").write_text("not used: the image check fails first\n")
    (tmp_path / "host.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE0= host\n")
    path = tmp_path / "lab.toml"
    path.write_text(LAB_TOML)
    return path


def _up(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", "-c", str(config), "up"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)


@pytest.mark.parametrize(("disk", "says"), [
    (None, "image.windows_disk"),  # no file at all: a config error
    (b"MZ not a disk image" * 100, "qcow2"),  # a file qemu-img reads as raw
])
def test_unusable_windows_image_fails_in_one_line_and_creates_nothing(
        tmp_path: Path, disk: bytes | None, says: str) -> None:
    res = _up(_lab(tmp_path, disk))
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    first = res.stderr.strip().splitlines()[0]
    assert first.startswith("lab: lab failed: ") and says in first, res.stderr
    assert "win.qcow2" in first or "windows_disk" in first
    # Only the lab's own log may exist: no inventory, keys, consoles, images or caches.
    made = {p.name for p in (tmp_path / "state").iterdir()} if (tmp_path / "state").exists() \
        else set()
    assert made <= {"logs"}, made
