"""pytest plugin (entry point ``pytest11``): the lab's fixtures for scenario suites.

* ``--lab-config`` picks lab.toml; every process (controller and each xdist
  worker) enters the lab's network namespace in ``pytest_configure``, before
  any thread starts, so ``pytest -n 4 tests/scenarios`` works as written.
* ``lab_vm`` leases one VM exclusively across workers (file locks next to the
  inventory), waits with a deadline when every VM is taken, and always starts
  from the VM's clean snapshot.
* Each test gets an evidence folder (console slice, guest kernel log, driver
  journals, libvirt event timeline, load results, verdict, memory dump on a
  crash), linked from the JUnit XML as properties.
* Each failure gets a verdict that keeps the driver apart from the lab:
  driver crashed / driver hung / driver failed / lab failed.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from lab import host, inventory
from lab.config import LabConfig, load_config
from lab.deploy import LinuxTwinDeployment
from lab.drivers import DriverManifest, load_manifests
from lab.errors import DriverFailure, LabError, LabFailure
from lab.hypervisor import Hypervisor
from lab.journal import Vocabulary
from lab.load import LoadResult
from lab.vm import Timeline, Vm

CRASHED = pytest.StashKey[bool]()
VERDICT = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("driver-lab")
    group.addoption("--lab-config", default=None, help="lab.toml of the lab to test against")
    group.addoption("--lab-evidence", default="artifacts/evidence",
                    help="folder for per-test evidence (default: artifacts/evidence)")
    group.addoption("--lab-lease-timeout", type=float, default=900.0,
                    help="seconds a test waits for a free VM (default: 900)")


def _config_path(config: pytest.Config) -> str | None:
    value = config.getoption("--lab-config")
    if value:
        return str(value)
    return "lab.toml" if Path("lab.toml").exists() else None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario: a Driver Lab scenario run on a leased VM")
    with suppress(LabError):  # reported by the fixtures, where a test needs the lab
        host.enter_existing(load_config(_config_path(config)))


# ---- verdicts ----------------------------------------------------------------------


def classify(exc: BaseException | None, crashed: bool) -> str:
    """The verdict line for a failed scenario."""
    if crashed:
        return "driver crashed"
    if isinstance(exc, DriverFailure):
        return "driver hung" if exc.summary.startswith("driver hung") else "driver failed"
    if isinstance(exc, AssertionError):
        return "driver failed"
    return "lab failed"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when != "call" or "lab_vm" not in getattr(item, "fixturenames", ()):
        return report
    crashed = item.stash.get(CRASHED, False)
    lease: LeasedVm | None = getattr(item, "_lab_lease", None)
    if lease is not None and not crashed and report.failed:
        with suppress(LabError):
            crashed = lease.vm.crashed()
    item.stash[CRASHED] = crashed
    verdict = "pass" if report.passed else (
        "skipped" if report.skipped else classify(call.excinfo.value if call.excinfo else None,
                                                  crashed))
    item.stash[VERDICT] = verdict
    item.user_properties.append(("verdict", verdict))
    if report.failed:
        report.sections.append(("Driver Lab verdict", verdict))
    return report


# ---- session fixtures --------------------------------------------------------------


@pytest.fixture(scope="session")
def lab_config(pytestconfig: pytest.Config) -> LabConfig:
    return load_config(_config_path(pytestconfig))


@pytest.fixture(scope="session")
def lab_inventory(lab_config: LabConfig) -> inventory.Inventory:
    path = lab_config.state_dir / inventory.INVENTORY_NAME
    if not path.exists():
        message = f"the lab is not up ({path} is missing): run `make lab-up` first"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return inventory.read(path)


@pytest.fixture(scope="session")
def lab_hypervisor(lab_inventory: inventory.Inventory) -> Iterator[Hypervisor]:
    with Hypervisor(lab_inventory.uri) as hv:
        hv.check()
        yield hv


@pytest.fixture(scope="session")
def lab_manifests() -> dict[str, DriverManifest]:
    return load_manifests()


@pytest.fixture(scope="session")
def lab_vocabulary() -> Vocabulary:
    return Vocabulary.load()


# ---- leases ------------------------------------------------------------------------


def _worker(config: pytest.Config) -> tuple[str, int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    digits = re.sub(r"\D", "", worker)
    return worker, int(digits) if digits else 0


class Lease:
    """An exclusive hold on one VM, by file lock, for one test."""

    def __init__(self, lock_dir: Path, names: list[str], holder: str, start: int) -> None:
        self.lock_dir = lock_dir
        self.names = names[start % len(names):] + names[:start % len(names)]
        self.holder = holder
        self.lock: FileLock | None = None
        self.name: str | None = None

    def acquire(self, timeout: float) -> str:
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
            self._log("release")
            self.lock.release()
            self.lock = None

    def _log(self, event: str) -> None:
        line = json.dumps({"t": time.time(), "event": event, "vm": self.name,
                           "holder": self.holder, "pid": os.getpid()})
        with (self.lock_dir / "leases.jsonl").open("a") as fh:
            fh.write(line + "\n")


@dataclass
class Evidence:
    """The evidence folder of one test."""

    path: Path
    deployments: list[LinuxTwinDeployment] = field(default_factory=list)
    loads: list[LoadResult] = field(default_factory=list)

    def write(self, name: str, text: str) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / name
        target.write_text(text)
        return target

    def add_load(self, result: LoadResult) -> None:
        self.loads.append(result)


@dataclass
class LeasedVm:
    """What the ``lab_vm`` fixture hands a test."""

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
    def test_nics(self) -> tuple[inventory.NicEntry, ...]:
        return self.vm.entry.test_nics

    def nic(self, model: str) -> inventory.NicEntry:
        for nic in self.test_nics:
            if nic.model == model:
                return nic
        pytest.skip(f"{self.vm.name} has no {model} test NIC")

    def deploy(self, name: str, knobs: tuple[str, ...] = ()) -> LinuxTwinDeployment:
        """Install and load driver ``name`` (manifest name) with fault ``knobs`` on."""
        dep = LinuxTwinDeployment(self.vm.guest, self.manifests[name], self.vocabulary)
        dep.install()
        dep.load(knobs)
        self.vm.timeline.add(f"{dep.module} loaded" + (f" with {', '.join(knobs)}"
                                                       if knobs else ""))
        self.evidence.deployments.append(dep)
        return dep


def _safe(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", nodeid.split("::", 1)[-1])[:120]


@pytest.fixture
def lab_vm(request: pytest.FixtureRequest, lab_config: LabConfig,
           lab_inventory: inventory.Inventory, lab_hypervisor: Hypervisor,
           lab_manifests: dict[str, DriverManifest],
           lab_vocabulary: Vocabulary) -> Iterator[LeasedVm]:
    """One VM, leased exclusively, reverted to its clean snapshot, with evidence."""
    worker, index = _worker(request.config)
    lease = Lease(lab_config.state_dir / "leases", [v.name for v in lab_inventory.vms],
                  f"{worker}:{request.node.nodeid}", index)
    name = lease.acquire(float(request.config.getoption("--lab-lease-timeout")))
    entry = lab_inventory.vm(name)
    timeline = Timeline()
    vm = Vm(lab_inventory, entry, lab_hypervisor, timeline)
    evidence = Evidence(Path(request.config.getoption("--lab-evidence")).resolve()
                        / _safe(request.node.nodeid))
    console_offset = _size(entry.console_log)
    cancel: Callable[[], None] | None = None
    leased = LeasedVm(vm, evidence, lab_manifests, lab_vocabulary, console_offset)
    try:
        timeline.add(f"leased {name} by {worker}")
        timeline.add(f"revert took {vm.revert():.1f}s")

        def on_lifecycle(what: str) -> None:
            timeline.add(f"libvirt lifecycle: {what}")
            if what.startswith("crashed"):
                request.node.stash[CRASHED] = True

        cancel = lab_hypervisor.watch_lifecycle(vm.domain(), on_lifecycle)
        request.node._lab_lease = leased
        request.node.user_properties.append(("vm", name))
        request.node.user_properties.append(("evidence", str(evidence.path)))
        yield leased
    finally:
        if cancel is not None:
            cancel()
        try:
            _collect(request, leased)
        finally:
            vm.close()
            lease.release()


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _collect(request: pytest.FixtureRequest, leased: LeasedVm) -> None:
    """Write the evidence folder (always; it is small), plus a dump on a crash."""
    vm, ev = leased.vm, leased.evidence
    verdict = request.node.stash.get(VERDICT, "not run")
    ev.write("verdict.txt", verdict + "\n")
    try:
        ev.write("console.log", leased.console())
    except OSError as exc:
        ev.write("console.log", f"(console log unreadable: {exc})\n")
    crashed = request.node.stash.get(CRASHED, False)
    if crashed:
        _dump(vm, ev)
    else:
        _guest_logs(vm, ev)
    for i, load in enumerate(ev.loads):
        ev.write(f"load-{i}.json", json.dumps(load.to_dict(), indent=1, default=str))
    ev.write("timeline.txt", vm.timeline.text())


def _guest_logs(vm: Vm, ev: Evidence) -> None:
    try:
        ev.write("dmesg.txt", vm.guest.run("dmesg", timeout=20, check=False).stdout)
        for dep in ev.deployments:
            ev.write(f"journal-{dep.module}.txt", "".join(e.line + "\n" for e in dep.journal()))
    except LabError as exc:
        ev.write("guest-unreachable.txt", f"{exc}\n")
        vm.guest.close()


def _dump(vm: Vm, ev: Evidence) -> None:
    ev.path.mkdir(parents=True, exist_ok=True)
    target = ev.path / "memory.elf"
    try:
        vm.hv.dump_memory(vm.domain(), str(target))
        vm.timeline.add(f"memory dump written: {target.name}")
    except LabError as exc:
        ev.write("memory-dump-failed.txt", f"{exc}\n")


@pytest.fixture
def lab_evidence(lab_vm: LeasedVm) -> Evidence:
    return lab_vm.evidence


def record_load(lab_vm: LeasedVm, results: list[LoadResult],
                node: pytest.Item | None = None) -> None:
    """Keep load results as evidence and, with ``node``, as JUnit properties."""
    for result in results:
        lab_vm.evidence.add_load(result)
        if node is not None:
            node.user_properties.append(("throughput_MBps", f"{result.throughput / 1e6:.2f}"))
            node.user_properties.append(("load_errors", str(len(result.errors))))


def models_from_config(path: str | None) -> list[str]:
    """NIC models of the lab's test NICs (for parametrizing), in order, unique."""
    try:
        models = load_config(path).vms.test_nics
    except LabError:
        return ["virtio"]
    return list(dict.fromkeys(models))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "nic_model" in metafunc.fixturenames:
        models = models_from_config(_config_path(metafunc.config))
        metafunc.parametrize("nic_model", models, ids=[f"nic={m}" for m in models])


__all__ = ["Evidence", "LeasedVm", "classify", "record_load"]
