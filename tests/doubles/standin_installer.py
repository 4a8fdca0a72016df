"""A STAND-IN for Windows Setup, built in the tests: NOT Windows, and it proves nothing
about Windows itself.

It is a small UEFI-bootable ISO (grub-mkrescue) laid out like Microsoft's installation
media as far as `lab image windows` looks (``sources/install.wim`` made with wimcapture,
``efi/boot/bootx64.efi``), booting the Debian kernel the micro guest uses (the generic
flavour: it has the AHCI driver the SATA CD-ROMs need) with a busybox initramfs whose
``/init`` follows Windows Setup's contract as the lab sees it:

* it finds the config media among the CD-ROMs by its volume label and autounattend.xml;
* it writes the target disk (a marker holding the answer file's sha256);
* it prints step lines and the completion marker on ttyS0 (COM1) and powers off.

The mode is baked into the kernel command line: ``ok`` does all that; ``hang`` prints
one step and never finishes; ``fail`` prints a failure line and powers off.
"""

from __future__ import annotations

import gzip
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from lab.guests.micro_image import (
    BUSYBOX,
    fetch_kernel,
    kernel_release,
    module_closure,
    resolve_kernel_package,
)
from lab.hosttools import run_tool
from lab.image.markers import (
    COMPLETION_MARKER,
    CONFIG_MEDIA_LABEL,
    FAILURE_PREFIX,
    STEP_PREFIX,
)

#: The stand-in's install.wim holds one image of this name (release_of() reads 2022).
STANDIN_EDITION = "Stand-in Windows Server 2022 SERVERSTANDARD"
MODES = ("ok", "hang", "fail")
#: The generic kernel: the cloud flavour has no AHCI (SATA) driver.
KERNEL_PACKAGE = "linux-image-amd64"
#: Storage the stand-in needs: SATA (CD-ROMs, sata disk), virtio disk, ISO 9660.
MODULES = ("ahci", "sd_mod", "sr_mod", "isofs", "virtio_pci", "virtio_blk")
#: First line the stand-in writes at the start of the target disk.
DISK_MARKER = "driver-lab stand-in installed image"
TOTAL_STEPS = 4


@dataclass(frozen=True)
class StandinKernel:
    vmlinuz: Path
    modules: Path  # lib/modules/<release> of the unpacked kernel package
    release: str


def standin_kernel(cache: Path, say: Callable[[str], None],
                   seed_debs: Iterable[Path] = ()) -> StandinKernel:
    """The unpacked generic kernel (a .deb found in ``seed_debs`` saves the download)."""
    abi = resolve_kernel_package(KERNEL_PACKAGE)
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{abi}_*.deb")):
        for deb in seed_debs:
            if deb.name.startswith(f"{abi}_") and deb.suffix == ".deb":
                shutil.copy2(deb, debs / deb.name)
                break
    tree = fetch_kernel(KERNEL_PACKAGE, cache, say)
    release = kernel_release(tree)
    if not (tree / "lib" / "modules" / release / "modules.dep").exists():
        run_tool(["depmod", "-b", str(tree), release], "depmod for the stand-in kernel")
    return StandinKernel(vmlinuz=tree / "boot" / f"vmlinuz-{release}",
                         modules=tree / "lib" / "modules" / release, release=release)


def init_script() -> str:
    """/init of the stand-in (busybox sh); markers come from lab.image.markers."""
    q = shlex.quote
    step = STEP_PREFIX
    return f"""#!/bin/busybox sh
# STAND-IN for Windows Setup (driver-lab tests). Not Windows.
/bin/busybox mkdir -p /proc /sys /dev /mnt /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() {{ echo "$*" > /dev/ttyS0; }}
fail() {{ say {q(FAILURE_PREFIX)}"stand-in: $*"; sync; poweroff -f; sleep 60; }}
mode=ok
for arg in $(cat /proc/cmdline); do
  case "$arg" in standin.mode=*) mode="${{arg#standin.mode=}}" ;; esac
done
say {q(step + f"1/{TOTAL_STEPS}: ")}"stand-in Setup ($mode): loading storage drivers"
while read -r m; do insmod "/modules/$m" 2>/dev/null; done < /modules/order
if [ "$mode" = hang ]; then while :; do sleep 3600; done; fi
if [ "$mode" = fail ]; then fail "simulated Setup failure (mode fail)"; fi
say {q(step + f"2/{TOTAL_STEPS}: ")}"stand-in Setup: looking for the config media"
config=""
i=0
while [ -z "$config" ] && [ $i -lt 60 ]; do
  for dev in /dev/sr*; do
    [ -b "$dev" ] || continue
    # ISO 9660 volume identifier: 32 bytes at byte 40 of the descriptor in sector 16
    label=$(dd if="$dev" bs=1 skip=32808 count=32 2>/dev/null | tr -d ' ')
    [ "$label" = {q(CONFIG_MEDIA_LABEL)} ] || continue
    mkdir -p /mnt/config
    mount -t iso9660 -o ro "$dev" /mnt/config 2>/dev/null || continue
    if [ -f /mnt/config/autounattend.xml ]; then config="$dev"; break; fi
    umount /mnt/config
  done
  [ -n "$config" ] || {{ sleep 1; i=$((i + 1)); }}
done
[ -n "$config" ] || fail "no CD-ROM labelled {CONFIG_MEDIA_LABEL} with autounattend.xml"
sum=$(sha256sum /mnt/config/autounattend.xml | cut -d' ' -f1)
say {q(step + f"3/{TOTAL_STEPS}: ")}"stand-in Setup: answer file on $config, sha256 $sum"
target=""
for dev in /dev/vda /dev/sda /dev/sdb /dev/sdc /dev/sdd; do
  name=${{dev#/dev/}}
  [ -b "$dev" ] || continue
  [ "$(cat /sys/block/$name/device/type 2>/dev/null || echo 0)" = 0 ] || continue
  target="$dev"; break
done
[ -n "$target" ] || fail "no target disk"
printf '%s\\nanswer-sha256 %s\\nconfig-media %s\\n' {q(DISK_MARKER)} "$sum" "$config" \\
  | dd of="$target" conv=notrunc,fsync 2>/dev/null || fail "cannot write $target"
say {q(step + f"4/{TOTAL_STEPS}: ")}"stand-in Setup: wrote $target; shutting down"
say {q(COMPLETION_MARKER)}
sync
poweroff -f
sleep 60
"""


def _cpio_gz(staging: Path, out: Path) -> None:
    listing = "\n".join(sorted(str(p.relative_to(staging)) for p in staging.rglob("*"))) + "\n"
    archive = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"], cwd=staging,
                             input=listing.encode(), capture_output=True, check=True,
                             timeout=120).stdout
    out.write_bytes(gzip.compress(archive, compresslevel=6))


def build_initramfs(kernel: StandinKernel, out: Path, workdir: Path) -> None:
    staging = workdir / "initramfs"
    (staging / "bin").mkdir(parents=True)
    (staging / "modules").mkdir()
    shutil.copy2(BUSYBOX, staging / "bin" / "busybox")
    init = staging / "init"
    init.write_text(init_script())
    init.chmod(0o755)
    order = module_closure(kernel.modules, MODULES)
    for rel in order:
        shutil.copy2(kernel.modules / rel, staging / "modules" / Path(rel).name)
    (staging / "modules" / "order").write_text("".join(Path(r).name + "\n" for r in order))
    _cpio_gz(staging, out)


def _grub_cfg(mode: str) -> str:
    return ("set timeout=0\nset default=0\n"
            "menuentry 'driver-lab stand-in installer (not Windows)' {\n"
            f"  linux /standin/vmlinuz console=ttyS0,115200 quiet panic=-1 standin.mode={mode}\n"
            "  initrd /standin/initrd.img\n}\n")


def _install_wim(stage: Path, workdir: Path) -> None:
    """A real WIM (wimcapture) holding one tiny image named STANDIN_EDITION."""
    content = workdir / "wim-content"
    content.mkdir()
    (content / "STAND-IN.txt").write_text("driver-lab stand-in install image, not Windows\n")
    (stage / "sources").mkdir()
    run_tool(["wimcapture", str(content), str(stage / "sources" / "install.wim"),
              STANDIN_EDITION, "driver-lab stand-in (not Windows)"], "capturing install.wim")


def build_standin_iso(kernel: StandinKernel, mode: str, out: Path) -> Path:
    """The stand-in installer ISO for ``mode`` (ok | hang | fail) at ``out``."""
    if mode not in MODES:
        raise ValueError(f"stand-in mode {mode!r} is not one of {MODES}")
    with tempfile.TemporaryDirectory(prefix="standin-", dir=out.parent) as tmp:
        workdir = Path(tmp)
        stage = workdir / "stage"
        (stage / "boot" / "grub").mkdir(parents=True)
        (stage / "boot" / "grub" / "grub.cfg").write_text(_grub_cfg(mode))
        (stage / "standin").mkdir()
        shutil.copy2(kernel.vmlinuz, stage / "standin" / "vmlinuz")
        build_initramfs(kernel, stage / "standin" / "initrd.img", workdir)
        (stage / "README-STANDIN.txt").write_text(__doc__ or "stand-in")
        _install_wim(stage, workdir)
        volid = ["--", "-volid", f"STANDIN_{mode.upper()}"]
        first = workdir / "first.iso"
        run_tool(["grub-mkrescue", "-o", str(first), str(stage), *volid], "grub-mkrescue")
        # Microsoft's media also carry the UEFI loader as a file: copy GRUB's from efi.img.
        efi_img = workdir / "efi.img"
        run_tool(["xorriso", "-no_rc", "-osirrox", "on", "-indev", str(first),
                  "-extract", "/efi.img", str(efi_img)], "reading efi.img")
        (stage / "efi" / "boot").mkdir(parents=True)
        run_tool(["mcopy", "-i", str(efi_img), "::/efi/boot/bootx64.efi",
                  str(stage / "efi" / "boot" / "bootx64.efi")], "copying bootx64.efi")
        run_tool(["grub-mkrescue", "-o", str(out), str(stage), *volid], "grub-mkrescue")
    return out


def read_disk_marker(disk: Path) -> dict[str, str]:
    """What the stand-in wrote at the start of a (qcow2) disk: {"answer-sha256": ...}."""
    with tempfile.TemporaryDirectory(prefix="standin-disk-") as tmp:
        raw = Path(tmp) / "head.raw"
        run_tool(["qemu-img", "dd", "-f", "qcow2", "-O", "raw", "bs=4096", "count=1",
                  f"if={disk}", f"of={raw}"], "reading the disk's first block")
        text = raw.read_bytes().split(b"\0", 1)[0].decode("ascii", errors="replace")
    lines = text.splitlines()
    if not lines or lines[0] != DISK_MARKER:
        return {}
    return dict(line.split(" ", 1) for line in lines[1:] if " " in line)
