"""Lab tier: `lab image windows` end to end against the STAND-IN installer (not Windows).

A real (sandboxed) libvirtd and QEMU under TCG run the whole orchestration: the
install VM is defined and boots the installer ISO, the serial console is followed,
the completion marker ends the install, the VM powers off, the disk is compacted
into the hash-keyed cache and a second build reuses it without booting anything.
The hanging and the failing stand-ins give one clear error within the deadline
and leave neither a domain nor a ``.partial`` folder behind. What this proves about
Windows itself: nothing; see tests/doubles/standin_installer.py.

Own lab name ``dlimg`` and state directory var/test-image: nothing of `dlab`,
`dle` or `dltest` is touched; `lab down` of dlimg runs at the end.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from labtier import REPO, require_lab_host

from lab.image.markers import COMPLETION_MARKER, STEP_PREFIX
from lab.image.media import read_media
from tests.doubles.standin_installer import (
    STANDIN_EDITION,
    build_standin_iso,
    read_disk_marker,
    standin_kernel,
)

pytestmark = pytest.mark.lab

STATE = REPO / "var" / "test-image"
LAB = "dlimg"
DOMAIN = f"{LAB}-winbuild"
#: The stand-in boots OVMF + a kernel under TCG in well under a minute; a hang is called
#: after this long (the lab.toml floor of 600 s is for real Windows, so the runner sets it).
HANG_DEADLINE_S = 90
OK_DEADLINE_S = 420

LAB_TOML = f"""\
[lab]
name = "{LAB}"
state_dir = "."
acceleration = "tcg"

[network]
management = "192.168.233.0/24"
test = ["192.168.234.0/24", "192.168.235.0/24"]

[windows_image]
edition = "{STANDIN_EDITION}"
disk_size_gib = 32
"""

#: Runs one build in a child process (the lab enters the sandbox's network namespace,
#: which must not happen to pytest): argv = config, iso, deadline, "cli" | "api".
RUNNER = """
import argparse, dataclasses, json, sys
from pathlib import Path
from lab.config import load_config
from lab.errors import LabError
from lab.image import windows_build
from lab.image.settings import settings_from
config_path, iso, deadline, how = sys.argv[1:5]
try:
    if how == "cli":
        sys.exit(windows_build.cmd_windows(argparse.Namespace(
            config=config_path, iso=iso, virtio_win=None, edition=None)))
    config = load_config(config_path)
    settings = dataclasses.replace(settings_from(config, iso=iso),
                                   install_timeout_s=int(deadline))
    image = windows_build.build_windows_image(
        config, settings, lambda m: print("progress: " + m, file=sys.stderr, flush=True))
    print(json.dumps({k: str(v) for k, v in dataclasses.asdict(image).items()}))
except LabError as exc:
    print(f"LABERROR {type(exc).__name__}: {exc}")
    sys.exit(1)
"""


@pytest.fixture(scope="module")
def image_lab(cli: Callable[..., subprocess.CompletedProcess[str]]) -> Iterator[Path]:
    require_lab_host("virsh", "grub-mkrescue", "mcopy", "xorriso", "wimcapture", "wiminfo",
                     "cpio")
    STATE.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(STATE / "images" / "windows", ignore_errors=True)  # a cold cache
    config = STATE / "lab.toml"
    config.write_text(LAB_TOML)
    try:
        yield config
    finally:
        cli(config, "down", timeout=300)


@pytest.fixture(scope="module")
def standin_isos(image_lab: Path) -> dict[str, Path]:
    """The three stand-in installers (ok, hang, fail), built from the generic kernel."""
    seeds = sorted(REPO.glob("var/**/cache/debs/*.deb"))
    kernel = standin_kernel(STATE / "cache", lambda m: print(m), seeds)
    folder = STATE / "standin"
    folder.mkdir(exist_ok=True)
    return {mode: build_standin_iso(kernel, mode, folder / f"standin-{mode}.iso")
            for mode in ("ok", "hang", "fail")}


def _build(config: Path, iso: Path, deadline: int, how: str = "api",
           ) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([sys.executable, "-c", RUNNER, str(config), str(iso), str(deadline),
                          how], capture_output=True, text=True, timeout=deadline + 300,
                         cwd=REPO)
    sys.stdout.write(f"$ build {iso.name} ({how}) -> {res.returncode}\n{res.stdout}"
                     f"{res.stderr}")
    return res


def _domains() -> list[str]:
    res = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
                         capture_output=True, text=True, timeout=60)
    return [line.strip() for line in res.stdout.splitlines() if line.strip()]


def _windows_images() -> list[str]:
    root = STATE / "images" / "windows"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_standin_build_then_cache_hit(image_lab: Path, standin_isos: dict[str, Path]) -> None:
    first = _build(image_lab, standin_isos["ok"], OK_DEADLINE_S, how="cli")
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    assert "install VM dlimg-winbuild started" in first.stderr
    assert f"{STEP_PREFIX}3/4: stand-in Setup: answer file on" in first.stderr
    assert "completion marker seen" in first.stderr
    assert "install VM powered off" in first.stderr
    assert "compacting the image" in first.stderr
    assert 'kind = "windows"' in first.stdout
    disk = Path(first.stdout.split('windows_disk = "')[1].split('"')[0])
    key = Path(first.stdout.split('windows_ssh_key = "')[1].split('"')[0])
    host_key = Path(first.stdout.split('windows_host_key = "')[1].split('"')[0])
    digest = disk.parent.name
    assert disk.parent.parent == STATE / "images" / "windows"
    manifest = json.loads((disk.parent / "manifest.json").read_text())
    assert manifest["digest"] == digest and manifest["size"] == disk.stat().st_size
    assert key.stat().st_mode & 0o077 == 0 and "PRIVATE KEY" in key.read_text()
    assert host_key.read_text().startswith("ssh-ed25519 ")
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(disk)],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == 32 << 30
    marker = read_disk_marker(disk)  # the stand-in wrote the answer file's hash there
    media = sorted((STATE / "images" / "windows" / "media").glob("*/config-media.iso"))
    assert len(media) == 1
    answer = read_media(media[0])["autounattend.xml"]
    assert marker.get("answer-sha256") == hashlib.sha256(answer).hexdigest()
    assert COMPLETION_MARKER in (STATE / "images" / "windows" /
                                 "last-install-console.log").read_text(errors="replace")
    assert not [n for n in _windows_images() if n.endswith(".partial")]
    assert DOMAIN not in _domains()

    second = _build(image_lab, standin_isos["ok"], OK_DEADLINE_S, how="cli")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "cache hit" in second.stderr and "(reused)" in second.stdout
    assert "install VM" not in second.stderr  # nothing booted
    assert f'windows_disk = "{disk}"' in second.stdout


def _assert_nothing_left() -> None:
    assert DOMAIN not in _domains()
    assert not [n for n in _windows_images() if n.endswith(".partial")]


def test_standin_hang_is_one_clear_error_within_the_deadline(
        image_lab: Path, standin_isos: dict[str, Path]) -> None:
    before = set(_windows_images())
    res = _build(image_lab, standin_isos["hang"], HANG_DEADLINE_S)
    assert res.returncode == 1
    assert "LABERROR InstallFailed: Windows image install failed: no completion marker " \
           f"within {HANG_DEADLINE_S}s" in res.stdout
    assert "console tail" in res.stdout
    assert f"{STEP_PREFIX}1/4: stand-in Setup (hang)" in res.stdout  # the tail shows it
    _assert_nothing_left()
    assert set(_windows_images()) - before <= {"last-install-console.log"}


def test_standin_failure_gives_its_message(image_lab: Path,
                                           standin_isos: dict[str, Path]) -> None:
    res = _build(image_lab, standin_isos["fail"], OK_DEADLINE_S)
    assert res.returncode == 1
    assert ("LABERROR InstallFailed: Windows image install failed: stand-in: simulated Setup "
            "failure (mode fail)") in res.stdout
    _assert_nothing_left()
