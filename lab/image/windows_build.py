"""`lab image windows`: a Windows golden image built unattended from the user's ISOs.

Steps: check every input (nothing is created before that), hash the inputs, make
the config media, and look the image up in a content-addressed cache under
``<state_dir>/images/windows/<digest>/``. On a miss the build runs in
``<digest>.partial/``: a qcow2 target, a transient install VM (no network) that
boots the Windows ISO, the serial console followed until the completion marker
and the power-off, then ``qemu-img convert -c`` into the cache, the keys next
to it and the manifest written last; the folder is renamed into place. Any
failure or interrupt removes the ``.partial`` folder and the VM; a folder
without a manifest that matches its disk is never reused.

The build runs on the KVM host itself (the install VM reads local files and
the lab reads the console log it writes).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

from lab.config import Acceleration, LabConfig, load_config
from lab.domxml import Ownership
from lab.errors import LabFailure
from lab.guests.windows_image import file_digest
from lab.hosttools import run_tool
from lab.image.install_inputs import (
    InputCache,
    check_inputs,
    inputs_digest,
)
from lab.image.install_vm import run_install
from lab.image.install_xml import InstallSpec, install_domain_xml
from lab.image.media import ConfigMedia, build_config_media
from lab.image.settings import WindowsImageSettings, settings_from
from lab.paths import StatePaths
from lab.progress import Progress

#: Part of every image digest: bump it when the build recipe changes what it produces.
BUILDER_VERSION = "1"
INSTALL_VM = "winbuild"
MANIFEST = "manifest.json"
DISK_NAME = "windows.qcow2"
KEY_NAME = "id_admin"
HOST_KEY_NAME = "ssh_host_key.pub"
#: The last install's serial console, next to the cache (it outlives a failed build).
CONSOLE_LOG = "last-install-console.log"

Say = Callable[[str], None]


@dataclass(frozen=True)
class BuiltImage:
    """A golden image in the cache (built now, or reused)."""

    disk: Path
    digest: str
    sha256: str
    size: int
    ssh_key: Path
    host_key_pub: Path
    cached: bool

    def lab_toml(self) -> str:
        """The [image] lines that make the lab use this image."""
        return (f'[image]\nkind = "windows"\nwindows_disk = "{self.disk}"\n'
                f'windows_ssh_key = "{self.ssh_key}"\nwindows_host_key = "{self.host_key_pub}"\n')


def images_root(config: LabConfig) -> Path:
    return StatePaths(config.state_dir).images / "windows"


def cached_image(folder: Path, digest: str) -> BuiltImage | None:
    """The image in ``folder`` if its manifest is there and its disk matches it."""
    try:
        data = json.loads((folder / MANIFEST).read_text())
        disk = folder / str(data["disk"])
        if data["digest"] != digest or disk.stat().st_size != int(data["size"]):
            return None
        if file_digest(disk) != data["sha256"]:
            return None
        return BuiltImage(disk=disk, digest=digest, sha256=str(data["sha256"]),
                          size=int(data["size"]), ssh_key=folder / str(data["ssh_key"]),
                          host_key_pub=folder / str(data["host_key_pub"]), cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _domain_type(config: LabConfig, say: Say) -> str:
    """kvm or qemu (TCG): from lab.toml, the lab's cached probe, or /dev/kvm."""
    accel = config.lab.acceleration
    if accel is Acceleration.AUTO:
        try:
            accel = Acceleration(json.loads(
                StatePaths(config.state_dir).accel_cache.read_text())["choice"])
        except (OSError, ValueError, KeyError, TypeError):
            usable = os.access("/dev/kvm", os.R_OK | os.W_OK)
            accel = Acceleration.KVM if usable else Acceleration.TCG
    say(f"install VM acceleration: {accel.value}")
    return "kvm" if accel is Acceleration.KVM else "qemu"


def _install_spec(config: LabConfig, settings: WindowsImageSettings, media: ConfigMedia,
                  work: Path, domain_type: str, run: str) -> InstallSpec:
    image, base = config.image, config.base_dir
    return InstallSpec(
        name=f"{config.lab.name}-{INSTALL_VM}",
        owner=Ownership(lab=config.lab.name, run=run, vm=INSTALL_VM),
        domain_type=domain_type, installer_iso=str(settings.iso), config_iso=str(media.iso),
        virtio_win_iso=str(settings.virtio_win) if settings.virtio_win else None,
        disk=str(work / "install.qcow2"), disk_bus=settings.disk_bus,
        console_log=str(work.parent / CONSOLE_LOG),
        loader=str(base / Path(image.windows_ovmf_code).expanduser()),
        nvram_template=str(base / Path(image.windows_ovmf_vars).expanduser()),
        nvram=str(work / "OVMF_VARS.fd"), tpm=settings.tpm)


def _install(config: LabConfig, settings: WindowsImageSettings, media: ConfigMedia,
             work: Path, say: Say) -> None:
    """qcow2 target + install VM, until it powered itself off after the marker."""
    from lab.host import open_host
    from lab.hypervisor import LOCAL_URIS

    if config.lab.uri not in LOCAL_URIS:
        raise LabFailure(f"{config.path}: [lab] uri {config.lab.uri} is remote; the image build "
                         "runs its install VM on this host", hint="run `lab image windows` on "
                         "the KVM host itself, with uri = \"qemu:///system\"")
    run_tool(["qemu-img", "create", "-q", "-f", "qcow2", str(work / "install.qcow2"),
              f"{settings.disk_size_gib}G"], "creating the image's target disk")
    run = time.strftime("%Y%m%d-%H%M%S-build")
    hv = open_host(config, Progress(quiet=True))
    assert hv is not None
    with hv:
        spec = _install_spec(config, settings, media, work, _domain_type(config, say), run)
        say(f"installing Windows from {settings.iso.name} (edition {settings.edition!r}; "
            f"deadline {settings.install_timeout_s}s)")
        run_install(hv, install_domain_xml(spec), spec.name, config.lab.name,
                    Path(spec.console_log), settings.install_timeout_s, say)


def _finish(work: Path, media: ConfigMedia, digest: str, say: Say) -> None:
    """Compact the disk, copy the keys, write the manifest last (atomically)."""
    disk = work / DISK_NAME
    say("compacting the image (qemu-img convert -c)")
    run_tool(["qemu-img", "convert", "-q", "-c", "-O", "qcow2", str(work / "install.qcow2"),
              str(disk)], "compacting the golden image", timeout=7200)
    for leftover in ("install.qcow2", "OVMF_VARS.fd"):
        (work / leftover).unlink(missing_ok=True)
    shutil.copyfile(media.ssh_key, work / KEY_NAME)
    os.chmod(work / KEY_NAME, 0o600)
    shutil.copyfile(media.host_key_pub, work / HOST_KEY_NAME)
    manifest = {"digest": digest, "builder": BUILDER_VERSION, "disk": DISK_NAME,
                "size": disk.stat().st_size, "sha256": file_digest(disk), "ssh_key": KEY_NAME,
                "host_key_pub": HOST_KEY_NAME, "media_digest": media.digest,
                "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    tmp = work / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, work / MANIFEST)


@contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    """One build at a time per state directory (they share the install VM's name)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".build.lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabFailure(f"another `lab image windows` is building in {root}",
                             hint="wait for it to finish, then run this again") from None
        yield


@contextmanager
def _partial(folder: Path) -> Iterator[Path]:
    """A fresh ``<digest>.partial`` folder, removed unless the build renamed it into place."""
    work = folder.with_name(folder.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build_windows_image(config: LabConfig, settings: WindowsImageSettings, progress: Say,
                        ca_cert: Path | None = None) -> BuiltImage:
    """Build (or reuse) the golden image of these inputs; see the module docstring."""
    from lab.guests.windows import LAB_CA

    ca = ca_cert or LAB_CA
    root = images_root(config)
    cache = InputCache(root / "inputs.json")
    check_inputs(settings, root, ca, cache)
    inputs = inputs_digest(settings, ca, cache, BUILDER_VERSION, progress)
    media = build_config_media(settings, root / "media" / inputs[:16], ca)
    digest = hashlib.sha256(f"{inputs}:{media.digest}".encode()).hexdigest()[:24]
    folder = root / digest
    found = cached_image(folder, digest)
    if found is not None:
        progress(f"golden image {digest} is up to date (cache hit): {found.disk}")
        return found
    with _build_lock(root), _partial(folder) as work:
        shutil.rmtree(folder, ignore_errors=True)  # no manifest, or it does not match its disk
        progress(f"building golden image {digest} in {work}")
        _install(config, settings, media, work, progress)
        _finish(work, media, digest, progress)
        os.replace(work, folder)
    built = cached_image(folder, digest)
    if built is None:
        raise LabFailure(f"the image just built in {folder} does not match its manifest")
    progress(f"golden image ready: {built.disk} ({built.size >> 20} MiB)")
    return replace(built, cached=False)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise KeyboardInterrupt


def cmd_windows(args: argparse.Namespace) -> int:
    """`lab image windows [--iso W.iso] [--virtio-win V.iso] [--edition E]`."""
    config = load_config(args.config)
    settings = settings_from(config, iso=args.iso, virtio_win=args.virtio_win,
                             edition=args.edition)
    progress = Progress(log=StatePaths(config.state_dir).lab_log).for_subject("image")
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # clean up on SIGTERM too
    try:
        image = build_windows_image(config, settings, progress)
    finally:
        signal.signal(signal.SIGTERM, previous)
    state = "reused" if image.cached else "built"
    print(f"windows golden image {image.digest} ({state})\n  disk: {image.disk}\n"
          f"  sha256: {image.sha256}\n\nPut these lines in lab.toml to use it:\n\n"
          f"{image.lab_toml()}")
    return 0
