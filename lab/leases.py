"""Leases: one VM held exclusively by one pytest worker for one test (file locks).

Workers coordinate only through lock files next to the inventory; every
acquire and release is logged as one JSON line, so the report can tell how
many VMs were leased at once and by whom.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from lab.drivers import DriverManifest
from lab.errors import LabFailure
from lab.evidence import Evidence
from lab.guests.base import Deployment
from lab.journal import Vocabulary
from lab.plan import Nic
from lab.vm import Vm

#: Lease logs this process could not write (said once).
_LOST_LOGS: set[Path] = set()


class Lease:
    """An exclusive hold on one VM, by file lock, for one test."""

    def __init__(self, lock_dir: Path, names: list[str], holder: str, start: int) -> None:
        self.lock_dir = lock_dir
        self.names = names[start % len(names):] + names[:start % len(names)]
        self.holder = holder
        self.lock: FileLock | None = None
        self.name: str | None = None

    def acquire(self, timeout: float) -> str:
        """The first free VM (starting at this worker's own); waits up to ``timeout``."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        delay = 0.2
        while True:
            for name in self.names:
                lock = FileLock(str(self.lock_dir / f"{name}.lock"))
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    continue
                self.lock, self.name = lock, name
                self._log("acquire")
                return name
            if time.monotonic() >= deadline:
                raise LabFailure(f"no VM became free within {timeout:.0f}s "
                                 f"({len(self.names)} VMs, all leased)",
                                 hint="use fewer xdist workers or more VMs, or raise "
                                      "--lab-lease-timeout")
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)

    def release(self) -> None:
        if self.lock is not None:
            try:
                self._log("release")
            finally:
                self.lock.release()
                self.lock = None

    def _log(self, event: str) -> None:
        """Best effort: the lease log feeds the report only, so a log that cannot be
        written (a full disk) never fails or pins a lease; said once per process."""
        line = json.dumps({"t": time.time(), "event": event, "vm": self.name,
                           "holder": self.holder, "pid": os.getpid()}) + "\n"
        path = self.lock_dir / "leases.jsonl"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())  # one write: no interleaving between workers
            finally:
                os.close(fd)
        except OSError as exc:
            if path not in _LOST_LOGS:
                _LOST_LOGS.add(path)
                print(f"lab: cannot write the lease log {path} ({exc.strerror or exc}); "
                      "leases go on without it", file=sys.stderr, flush=True)


@dataclass
class LeasedVm:
    """What the ``lab_vm`` fixture hands a test: the VM, its evidence, the drivers."""

    vm: Vm
    evidence: Evidence
    manifests: dict[str, DriverManifest]
    vocabulary: Vocabulary
    console_offset: int = 0

    def console(self) -> str:
        """The VM's serial console since this lease began (raises OSError if unreadable)."""
        with open(self.vm.entry.console_log, "rb") as fh:
            fh.seek(self.console_offset)
            return fh.read().decode(errors="replace")

    @property
    def test_nics(self) -> tuple[Nic, ...]:
        return self.vm.entry.test_nics

    def nic(self, model: str) -> Nic:
        """The test NIC of ``model`` (LabFailure when the VM has none: a config mismatch)."""
        for nic in self.test_nics:
            if nic.model == model:
                return nic
        raise LabFailure(f"{self.vm.name} has no {model} test NIC",
                         hint="the lab's [vms] test_nics and the suite's models disagree")

    def deploy_observer(self) -> Deployment | None:
        """Deploy the kind's independent TDI client (after labtdi), if it has one."""
        name = self.vm.kind.observer_driver
        if name is None:
            self.vm.timeline.add(f"no independent TDI client for {self.vm.kind.name} guests")
            return None
        return self.deploy(name)

    def deploy(self, name: str, knobs: tuple[str, ...] = (), *,
               persistent: bool = False) -> Deployment:
        """Install and load driver ``name`` (manifest name) with fault ``knobs`` on;
        ``persistent``: installed so the guest loads it at every boot, after the drivers
        deployed so before it (the reboot scenario)."""
        dep = self.vm.handle.deployment(self.manifests[name], self.vocabulary)
        if persistent:
            dep.install_persistent(knobs)
        else:
            dep.install()
        dep.load(knobs)
        self.vm.timeline.add(f"{dep.module} loaded" + (f" with {', '.join(knobs)}"
                                                       if knobs else ""))
        self.evidence.deployments.append(dep)
        return dep
