"""Driver deployment into a guest, through the driver manifests (``drivers/*/driver.toml``).

One interface (:class:`Deployment`) for every guest OS: install, load, verify
loaded, unload (with a deadline), verify gone, read the journal, unbind/rebind
one adapter. :class:`LinuxTwinDeployment` implements it for the micro guests'
kernel-module twins; a Windows implementation (sc/netcfg/labctl.exe over
OpenSSH) is to come and will satisfy the same protocol.
"""

from __future__ import annotations

import shlex
import time
from pathlib import PurePosixPath
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
        if not self.twin.file.exists():
            raise LabFailure(f"{self.twin.file} is not built",
                             hint="run `make drivers-linux`")
        abi_file = self.twin.file.parent / "kernel-abi"
        guest_release = self.guest.run("uname -r", timeout=30).stdout.strip()
        if abi_file.exists() and abi_file.read_text().strip() != guest_release:
            raise LabFailure(f"{self.twin.file} was built for {abi_file.read_text().strip()}, "
                             f"the guest runs {guest_release}",
                             hint="rebuild with `make drivers-linux` after `make images`")
        self.guest.run(f"mkdir -p {GUEST_DIR}")
        self.guest.put(self.twin.file, str(self.guest_file))

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
