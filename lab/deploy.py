"""Driver deployment into a guest, through the driver manifests (``drivers/*/driver.toml``).

One interface (:class:`Deployment`) for every guest OS: install, load, verify
loaded, unload (with a deadline), verify gone, read the journal, unbind/rebind
one adapter. :class:`LinuxTwinDeployment` implements it for the micro guests'
kernel-module twins; a Windows implementation (sc/netcfg/labctl.exe over
OpenSSH) is to come and will satisfy the same protocol.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path, PurePosixPath
from typing import Protocol

from lab.drivers import DriverManifest, LinuxTwin
from lab.errors import DriverFailure, LabFailure
from lab.guest import Guest
from lab.journal import Journal, Vocabulary, parse_journal

GUEST_DIR = PurePosixPath("/tmp/lab-drivers")


class Deployment(Protocol):
    """A driver deployed into one guest."""

    name: str

    def install(self) -> None: ...
    def load(self, knobs: tuple[str, ...] = ()) -> None: ...
    def loaded(self) -> bool: ...
    def unload(self, deadline: float | None = None) -> float: ...
    def journal(self) -> Journal: ...
    def unbind(self, ifname: str) -> None: ...
    def bind(self, ifname: str) -> None: ...


def module_release(ko: Path) -> str | None:
    """The kernel release a module was built for (first word of its vermagic)."""
    try:
        out = subprocess.run(["modinfo", "-F", "vermagic", str(ko)], capture_output=True,
                             text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.split()[0] if out.split() else None


class LinuxTwinDeployment:
    """The Linux twin (kernel module) of one driver, in a micro guest."""

    def __init__(self, guest: Guest, manifest: DriverManifest,
                 vocabulary: Vocabulary | None = None) -> None:
        if manifest.linux is None:
            raise LabFailure(f"{manifest.path}: driver {manifest.name} has no [linux] table",
                             hint="add the Linux twin's [linux] table to the manifest")
        self.name = manifest.name
        self.manifest = manifest
        self.twin: LinuxTwin = manifest.linux
        self.guest = guest
        self.vocabulary = vocabulary or Vocabulary.load()
        self.guest_file = GUEST_DIR / self.twin.file.name

    @property
    def module(self) -> str:
        return self.twin.module

    def install(self) -> None:
        guest_release = self.guest.run("uname -r", timeout=30).stdout.strip()
        per_kernel = self.twin.file.parent / guest_release / self.twin.file.name
        local = per_kernel if per_kernel.exists() else self.twin.file
        if not local.exists():
            raise LabFailure(f"{per_kernel} is not built",
                             hint="run `make drivers-linux` (CONFIG=<the lab's toml>)")
        built_for = module_release(local)
        if built_for is not None and built_for != guest_release:
            raise LabFailure(f"{local} was built for kernel {built_for}, "
                             f"the guest runs {guest_release}",
                             hint="rebuild the twins for the guest's kernel: "
                                  "`make drivers-linux` (LINUX_TWINS_META=<kernel package>)")
        self.guest.run(f"mkdir -p {GUEST_DIR}")
        self.guest.put(local, str(self.guest_file))

    def load(self, knobs: tuple[str, ...] = ()) -> None:
        argv = self.twin.insmod_argv(self.guest_file, knobs)
        res = self.guest.run(shlex.join(argv), timeout=60, check=False)
        if not res.ok:
            raise DriverFailure(f"{self.module}: insmod failed ({res.exit_code}): "
                                f"{res.stderr.strip()[-300:]}")
        if not self.loaded():
            raise DriverFailure(f"{self.module}: insmod returned but the module is not loaded")

    def loaded(self) -> bool:
        res = self.guest.run(f"test -d /sys/module/{self.module}", timeout=30, check=False)
        return res.ok

    def unload(self, deadline: float | None = None) -> float:
        """rmmod; a module that does not unload in time is a hung driver."""
        limit = deadline if deadline is not None else self.twin.unload_deadline_s
        t0 = time.monotonic()
        try:
            res = self.guest.run(shlex.join(self.twin.rmmod_argv()), timeout=limit,
                                 check=False)
        except LabFailure as exc:
            if "did not finish within" in exc.summary:
                raise DriverFailure(f"driver hung: rmmod {self.module} did not return within "
                                    f"{limit:.0f}s") from exc
            raise
        took = time.monotonic() - t0
        if not res.ok:
            raise DriverFailure(f"{self.module}: rmmod failed ({res.exit_code}): "
                                f"{res.stderr.strip()[-300:]}")
        if self.loaded():
            raise DriverFailure(f"{self.module}: rmmod returned but the module is still loaded")
        return took

    def journal(self) -> Journal:
        """The whole journal since boot, from the kernel log (survives the unload)."""
        out = self.guest.run("dmesg | grep 'labjournal: ' || true", timeout=30).stdout
        return parse_journal(out.splitlines(), self.vocabulary).of_driver(self.module)

    def _control(self, verb: str, ifname: str) -> None:
        if self.twin.control is None:
            raise LabFailure(f"{self.manifest.path}: {self.name} has no control file to {verb}")
        line = self.twin.control_line(verb, ifname)
        self.guest.run(f"echo {shlex.quote(line)} > {self.twin.control}", timeout=15)

    def unbind(self, ifname: str) -> None:
        self._control("unbind", ifname)

    def bind(self, ifname: str) -> None:
        self._control("bind", ifname)
