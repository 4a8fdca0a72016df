"""Builder of the micro Linux guest: Debian cloud kernel, initramfs, golden disk.

Everything comes from Debian packages on this host: the kernel package is
fetched with ``apt-get download`` and unpacked (never installed), busybox,
dropbear and sftp-server are copied with their libraries. The recipe (init
scripts, inittab) lives in ``images/linux-micro/``. The result is cached under
``<state_dir>/images/linux-micro`` and rebuilt only when an input changes.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from lab import keys, netns
from lab.errors import LabFailure
from lab.hosttools import run_tool
from lab.inventory import write_text_atomic
from lab.paths import StatePaths

RECIPE_DIR = Path(__file__).resolve().parents[2] / "images" / "linux-micro"
BUILDER_VERSION = "5"  # 5: the golden disk is a compressed qcow2

#: Modules the initramfs loads (with their dependencies) to reach the root disk;
#: those the kernel has built in (modules.builtin) are skipped. ext4 and crc32c are
#: built in on the cloud kernel but modules on the generic one (which has e1000e).
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4")

#: Host binaries copied into the guest, with their shared libraries.
GUEST_BINARIES = {
    "/usr/sbin/dropbear": "usr/sbin/dropbear",
    "/usr/lib/openssh/sftp-server": "usr/lib/sftp-server",
}
BUSYBOX = "/bin/busybox"
#: The out-of-band agent (lab.agent), compiled into /sbin/lab-agent; init respawns it.
AGENT_SOURCE = RECIPE_DIR / "lab-agent.c"
#: The i6300esb watchdog's petter (lab.domxml), compiled into /sbin/lab-watchdog; init
#: respawns it. User space drives the device: the cloud kernel has no driver for it.
WATCHDOG_SOURCE = RECIPE_DIR / "lab-watchdog.c"
#: The hotplug handler (a uevent listener), compiled into /sbin/lab-uevent; rcS starts it.
UEVENT_SOURCE = RECIPE_DIR / "lab-uevent.c"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MicroImage:
    """A built micro guest image (all paths absolute, on this host)."""

    kernel: Path
    initrd: Path
    disk: Path
    kernel_release: str
    host_key_line: str  # "ssh-ed25519 AAAA..." pinned by the lab
    digest: str  # identifies this build; used in volume names

    def to_json(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


def resolve_kernel_package(package: str) -> str:
    """Map a meta package (linux-image-cloud-amd64) to its ABI package."""
    if re.match(r"^linux-image-\d", package):
        return package
    out = run_tool(["apt-cache", "depends", "--important", package], f"resolving {package}")
    for line in out.splitlines():
        m = re.match(r"\s*Depends:\s*(linux-image-\d\S*)", line)
        if m:
            return m.group(1)
    raise LabFailure(f"cannot resolve kernel package {package!r} with apt-cache",
                     hint="check [image] kernel_package in lab.toml and run `apt-get update`")


#: What apt-cache answers from: its package lists and dpkg's status (their change times
#: are the key of the cached answer)
APT_STATE = (Path("/var/lib/apt/lists"), Path("/var/lib/dpkg/status"))


def resolve_cached(package: str, cache: Path) -> str:
    """:func:`resolve_kernel_package`, its answer kept in ``cache`` while apt's package
    lists and dpkg's status are unchanged (apt-cache costs most of a second per `lab up`)."""
    stamp = ",".join(str(p.stat().st_mtime_ns) if p.exists() else "-" for p in APT_STATE)
    record = cache / "kernel-package.json"
    try:
        known = json.loads(record.read_text())
        if known.get("package") == package and known.get("apt_state") == stamp:
            return str(known["abi"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass  # none yet, or unreadable: ask apt-cache
    abi = resolve_kernel_package(package)
    cache.mkdir(parents=True, exist_ok=True)
    write_text_atomic(record, json.dumps({"package": package, "apt_state": stamp, "abi": abi}))
    return abi


def fetch_kernel(package: str, cache: Path, progress: Progress) -> Path:
    """Download and unpack the kernel .deb; returns the unpacked tree."""
    abi = resolve_cached(package, cache)
    tree = cache / abi
    if (tree / ".complete").exists():
        return tree
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{abi}_*.deb"))
    if not found:
        progress(f"downloading {abi} (apt-get download)")
        try:
            with disk_full_is_one_line(debs, f"downloading {abi}", remove=False):
                run_tool(netns.on_host_network(["apt-get", "download", "-q", abi]),
                         f"downloading {abi}", cwd=debs)
        except LabFailure:
            for cut in debs.glob(f"{abi}_*.deb"):  # a cut download is no package
                cut.unlink()
            raise
        found = sorted(debs.glob(f"{abi}_*.deb"))
    if not found:
        raise LabFailure(f"apt-get download {abi} left no .deb in {debs}")
    shutil.rmtree(tree, ignore_errors=True)
    with disk_full_is_one_line(tree, "unpacking the guest kernel"):
        run_tool(["dpkg-deb", "-x", str(found[-1]), str(tree)], f"unpacking {found[-1].name}")
    (tree / ".complete").touch()  # the tree's completeness marker: written last
    return tree


def kernel_release(tree: Path) -> str:
    releases = [p.name for p in (tree / "lib" / "modules").iterdir() if p.is_dir()]
    if len(releases) != 1:
        raise LabFailure(f"expected one kernel release in {tree}/lib/modules, found {releases}")
    return releases[0]


def _inputs_digest(kernel_tree: Path, host_pub: str, client_pub: str) -> str:
    h = hashlib.sha256(BUILDER_VERSION.encode())
    h.update(kernel_tree.name.encode())
    h.update(host_pub.encode() + client_pub.encode())
    for path in sorted(RECIPE_DIR.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(RECIPE_DIR)).encode())
            h.update(path.read_bytes())
    for src in [BUSYBOX, *GUEST_BINARIES]:
        h.update(Path(src).read_bytes() if Path(src).exists() else b"missing")
    return h.hexdigest()[:12]


def build_image(kernel_package: str, state_dir: Path, disk_size_mib: int,
                progress: Progress, force: bool = False,
                check_tree: Callable[[Path], None] | None = None) -> MicroImage:
    """Build (or reuse) the micro guest image for the lab in ``state_dir``;
    ``check_tree`` sees the unpacked kernel first (it raises when the lab cannot use it)."""
    paths = StatePaths(state_dir)
    out = paths.images / "linux-micro"
    manifest = out / "image.json"
    tree = fetch_kernel(kernel_package, paths.cache, progress)
    if check_tree is not None:
        check_tree(tree)
    lab_keys = keys.ensure_keys(paths.keys)
    digest = _inputs_digest(tree, lab_keys.host_public, lab_keys.client_public)
    if manifest.exists() and not force:
        data = json.loads(manifest.read_text())
        if data.get("digest") == digest and Path(data["disk"]).exists():
            private_files(out)
            return MicroImage(kernel=Path(data["kernel"]), initrd=Path(data["initrd"]),
                              disk=Path(data["disk"]), kernel_release=data["kernel_release"],
                              host_key_line=data["host_key_line"], digest=digest)
    progress(f"building micro guest image {digest} (kernel {tree.name})")
    with disk_full_is_one_line(out, "building the micro guest image"):
        image = _build(out, tree, lab_keys, digest, disk_size_mib)
    progress(f"micro guest image ready: {image.disk} ({image.disk.stat().st_size // 1024} KiB)")
    return image


@contextmanager
def disk_full_is_one_line(folder: Path, what: str, remove: bool = True) -> Iterator[None]:
    """A full disk (ENOSPC, EDQUOT: an OSError, a shutil.Error listing them, a tool that
    says so) while writing ``folder`` becomes one LabFailure naming it and the fix; the
    half-written ``folder`` is removed if ``remove`` (its completeness marker was never
    written)."""
    try:
        yield
    except (OSError, LabFailure) as exc:
        if not _disk_full(exc):
            raise
        if remove:
            shutil.rmtree(folder, ignore_errors=True)
        raise LabFailure(f"{what} failed: the disk is full (no space left in {folder})",
                         hint="free space on that file system, or move [lab] state_dir "
                              "to a file system with room") from None


def _disk_full(exc: OSError | LabFailure) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(os.strerror(code) in str(exc) for code in (errno.ENOSPC, errno.EDQUOT))


def _build(out: Path, tree: Path, lab_keys: keys.LabKeys, digest: str,
           disk_size_mib: int) -> MicroImage:
    """Build the image into a fresh ``out``; its manifest (image.json, the completeness
    marker :func:`build_image` checks) is written last, atomically."""
    manifest = out / "image.json"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    private_files(out)
    release = kernel_release(tree)
    root = out / "rootfs"
    _stage_rootfs(root, tree, release, lab_keys)
    initrd = out / "initrd.img"
    _build_initramfs(initrd, tree, release, out / "initramfs")
    kernel = out / "vmlinuz"
    shutil.copy2(tree / "boot" / f"vmlinuz-{release}", kernel)
    disk = out / "golden.qcow2"
    _build_disk(root, disk, disk_size_mib, out)
    shutil.rmtree(root)
    image = MicroImage(kernel=kernel, initrd=initrd, disk=disk, kernel_release=release,
                       host_key_line=lab_keys.host_public, digest=digest)
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(image.to_json(), indent=2))
    os.replace(tmp, manifest)
    private_files(out)
    return image


def private_files(folder: Path) -> None:
    """Only the lab's user may read the image folder (0700, files 0600): the golden disk
    holds the lab's login setup and, in images built before per-VM host keys, a host
    private key."""
    for parent in (folder.parent, folder):
        os.chmod(parent, 0o700)
    for path in folder.iterdir():
        if path.is_file() and not path.is_symlink():
            os.chmod(path, 0o600)


def _copy_with_libs(src: str, root: Path, dest: str) -> None:
    target = root / dest
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, target)
    for lib in _shared_libs(src):
        lib_target = root / lib.lstrip("/")
        if not lib_target.exists():
            lib_target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(lib), lib_target)


def _shared_libs(binary: str) -> list[str]:
    out = run_tool(["ldd", binary], f"listing libraries of {binary}")
    libs: list[str] = []
    for line in out.splitlines():
        m = re.search(r"(/\S+)\s+\(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def _install_busybox(root: Path) -> None:
    bb = root / "bin" / "busybox"
    bb.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, bb)
    applets = run_tool([BUSYBOX, "--list-full"], "listing busybox applets").split()
    for applet in applets:
        link = root / applet
        if link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(bb, link.parent))


def build_static(source: Path, out: Path) -> None:
    """A guest program from the recipe, static: the image has no C library."""
    run_tool(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out),
              str(source)], f"building the micro guest's {source.name}")


def build_agent(out: Path) -> None:
    """The guest agent (:data:`AGENT_SOURCE`)."""
    build_static(AGENT_SOURCE, out)


def _stage_rootfs(root: Path, tree: Path, release: str, lab_keys: keys.LabKeys) -> None:
    shutil.copytree(RECIPE_DIR / "rootfs", root, symlinks=True)
    _install_busybox(root)
    build_agent(root / "sbin" / "lab-agent")
    build_static(WATCHDOG_SOURCE, root / "sbin" / "lab-watchdog")
    build_static(UEVENT_SOURCE, root / "sbin" / "lab-uevent")
    for src, dest in GUEST_BINARIES.items():
        if not Path(src).exists():
            raise LabFailure(f"{src} is missing on this host",
                             hint="run `make setup` (dropbear-bin, openssh-sftp-server)")
        _copy_with_libs(src, root, dest)
    modules = root / "lib" / "modules"
    modules.mkdir(parents=True, exist_ok=True)
    shutil.copytree(tree / "lib" / "modules" / release, modules / release, symlinks=True)
    run_tool(["depmod", "-b", str(root), release], "depmod for the guest module tree")
    # No host private key on the shared disk: each VM gets its own (lab.vmkeys), mounted
    # here by the initramfs.
    (root / "etc" / "dropbear").mkdir(parents=True, exist_ok=True)
    ssh_dir = root / "root" / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(lab_keys.client_public + "\n")
    os.chmod(ssh_dir, 0o700)
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    (root / "etc" / "hostname").write_text("micro\n")


def module_closure(tree_modules: Path, names: tuple[str, ...]) -> list[str]:
    """Relative paths of ``names`` and their dependencies, dependencies first."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (tree_modules / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        by_name[_module_name(path)] = path
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    builtin = _builtin_names(tree_modules)
    for name in names:
        if name in builtin:
            continue
        if name not in by_name:
            raise LabFailure(f"kernel module {name} is not in {tree_modules}")
        visit(by_name[name])
    return order


def missing_modules(tree: Path, names: tuple[str, ...]) -> list[str]:
    """Those of ``names`` the unpacked kernel ``tree`` has neither as a module nor built in
    (e.g. e1000e on Debian's cloud kernel)."""
    modules = tree / "lib" / "modules" / kernel_release(tree)
    builtin = _builtin_names(modules)
    # the package has no modules.dep (depmod makes it) but lists its modules in
    # modules.order: one file read, where a walk of the tree took 0.1-0.3 s per `lab up`;
    # a listed module counts only when its file is there
    listing = modules / "modules.order"
    if listing.exists():
        shipped = {_module_name(p) for p in listing.read_text().splitlines()
                   if _module_name(p) in names and any(
                       (modules / f"{p}{z}").exists() for z in ("", ".xz", ".zst", ".gz"))}
    else:
        shipped = {_module_name(p) for p in modules.rglob("*.ko*")}
    return [name for name in names if name not in builtin | shipped]


def _module_name(path: str | Path) -> str:
    """A module's name from its file path (kernel/net/e1000e.ko.xz -> e1000e; dashes are
    underscores, as modprobe treats them)."""
    return Path(path).name.split(".ko")[0].replace("-", "_")


def _builtin_names(tree_modules: Path) -> set[str]:
    listing = tree_modules / "modules.builtin"
    if not listing.exists():
        return set()
    return {_module_name(line)
            for line in listing.read_text().splitlines() if line.strip()}


def _build_initramfs(initrd: Path, tree: Path, release: str, staging: Path) -> None:
    mod_src = tree / "lib" / "modules" / release
    if not (mod_src / "modules.dep").exists():
        run_tool(["depmod", "-b", str(tree), release], "depmod for the kernel tree")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "bin").mkdir(parents=True)
    (staging / "modules").mkdir()
    shutil.copy2(BUSYBOX, staging / "bin" / "busybox")
    shutil.copy2(RECIPE_DIR / "initramfs-init", staging / "init")
    order = module_closure(mod_src, INITRAMFS_MODULES)
    for rel in order:
        shutil.copy2(mod_src / rel, staging / "modules" / Path(rel).name)
    (staging / "modules" / "order").write_text("".join(Path(r).name + "\n" for r in order))
    listing = "\n".join(sorted(str(p.relative_to(staging)) for p in staging.rglob("*"))) + "\n"
    archive = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"],
                             cwd=staging, input=listing.encode(), capture_output=True,
                             check=True, timeout=120).stdout
    initrd.write_bytes(gzip.compress(archive, compresslevel=6))
    shutil.rmtree(staging)


def _build_disk(root: Path, disk: Path, size_mib: int, workdir: Path) -> None:
    raw = workdir / "golden.raw"
    run_tool(["mke2fs", "-q", "-t", "ext4", "-L", "labroot", "-d", str(root), "-F",
          "-E", "root_owner=0:0", str(raw), f"{size_mib}M"], "creating the golden ext4 disk")
    # Compressed clusters (zlib, which every QEMU that reads qcow2 v3 can read): 100 ->
    # 30 MiB, so less to stream to a remote host at every `lab up` and to copy locally.
    # The golden disk is only ever a backing file: the guest's writes go to its overlay.
    run_tool(["qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", str(raw),
              str(disk)], "converting the golden disk to a compressed qcow2")
    raw.unlink()
