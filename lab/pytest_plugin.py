"""pytest plugin (entry point ``pytest11``): options, hooks and fixtures only.

* ``--lab-config`` picks lab.toml; every process (controller and each xdist
  worker) enters the lab's network namespace in ``pytest_configure``, before
  any thread starts, so ``pytest -n 4 tests/scenarios`` works as written.
* ``lab_vm`` leases one VM exclusively across workers (:mod:`lab.leases`),
  reverts it to its clean snapshot, and writes its evidence folder
  (:mod:`lab.evidence`), linked from the JUnit XML as properties.
* Each failure gets a verdict (:mod:`lab.verdict`) that keeps the driver apart
  from the lab: driver crashed / driver hung / driver failed / lab failed; a
  self-test that expects one (:mod:`lab.expect`) records expected and observed.
* Each session with lab tests gets a run id and folder per lab (:mod:`lab.run_session`,
  :mod:`lab.runs`): JUnit, evidence, the collected tests and each result, so `lab
  report` reads that run and tells an interrupted run from a complete one.
* Progress (:mod:`lab.suite_progress`): per-worker status files and logs; the
  controller prints "still running: <test> on <vm> ..." lines when not on a terminal.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Generator, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from lab import (
    flake,
    host,
    hostagent,
    inventory,
    run_session,
    runs,
    suite_live,
    suite_progress,
    vm_watch,
)
from lab.config import LabConfig, load_config
from lab.drivers import DriverManifest, load_manifests
from lab.errors import LabError, LabFailure, NetworkBroken
from lab.evidence import Evidence, collect
from lab.guests import guest_kind
from lab.host_connections import HostConnections, on_hosts
from lab.hypervisor import Hypervisor
from lab.inventory import VmEntry
from lab.journal import Vocabulary
from lab.lab_ref import down_text, up_command
from lab.leases import Lease, LeasedVm
from lab.load import LoadResult
from lab.paths import StatePaths
from lab.selftest.mutants import find_mutant, with_mutant
from lab.verdict import PASS, classify, crash_cause, verdict_text
from lab.vm import Timeline, Vm
from lab.wait import crash_watch

CRASHED = pytest.StashKey[bool]()
VERDICT = pytest.StashKey[str]()
VERDICT_TEXT = pytest.StashKey[str]()
LEASE = pytest.StashKey[LeasedVm]()
RUN = pytest.StashKey[run_session.RunSession]()
EXIT_STATUS = pytest.StashKey[int]()
WATCHER = pytest.StashKey[suite_progress.Watcher]()
STATUS = pytest.StashKey[suite_progress.WorkerStatus]()
PANEL = pytest.StashKey[suite_live.SuitePanel]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("driver-lab")
    group.addoption("--lab-config", default=None, help="lab.toml of the lab to test against")
    group.addoption("--lab-evidence", default=None,
                    help="folder for per-test evidence (default: evidence/ in the run folder)")
    group.addoption("--lab-progress", choices=("auto", "on", "off"), default="auto",
                    help="every --lab-progress-interval seconds, one 'still running: <test> on "
                         "<vm> for Ns, last step: ...' line per running test (auto: every test "
                         "when stdout is not a terminal, e.g. CI; on a terminal only tests "
                         "running for 4 intervals); per-worker logs always go to progress/ in "
                         "the run folder")
    group.addoption("--lab-progress-interval", type=float, default=30.0, metavar="SECONDS",
                    help="seconds between progress lines (default: 30)")
    group.addoption("--lab-run-dir", default=None, metavar="DIR",
                    help="this run's folder (default: artifacts/<lab name>/runs/<run id>, "
                         "which `lab report` reads; JUnit goes there unless --junitxml)")
    group.addoption("--lab-lease-timeout", type=float, default=900.0,
                    help="seconds a test waits for a free VM (default: 900)")
    group.addoption("--lab-skip-if-down", action="store_true", default=False,
                    help="skip the scenarios when the lab is not up (default: they fail, so a "
                         "run that tested nothing never looks green)")
    group.addoption("--lab-rerun-failed", action="store_true", default=False,
                    help="nightly mode: re-run a failed scenario once on a freshly reverted VM "
                         "and mark it flaky (passed the second time) or consistent (JUnit "
                         "property 'flake')")
    group.addoption("--lab-hosts", default=None, metavar="NAME[,NAME...]",
                    help="lease only VMs of these hypervisor hosts (`lab status` HOST column; "
                         "'local' is the lab's own host; default: every host)")
    group.addoption("--lab-mutant", default=None, metavar="NAME",
                    help="deploy mutant NAME of a Linux twin instead of the twin (the mutation "
                         "self-test, `lab selftest`; mutants: drivers/*/linux/mutants)")


def _config_path(config: pytest.Config) -> str | None:
    value = config.getoption("--lab-config")
    if value:
        return str(value)
    return "lab.toml" if Path("lab.toml").exists() else None


@pytest.hookimpl(tryfirst=True)  # before junitxml reads --junitxml
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario: a Driver Lab scenario run on a leased VM")
    cfg: LabConfig | None = None
    lab_session = run_session.likely_lab_session(config.args,
                                                 bool(config.getoption("--lab-config")))
    with suppress(LabError):  # reported by the fixtures, where a test needs the lab
        cfg = load_config(_config_path(config))
        if lab_session:  # only scenario sessions move into the lab's namespace: the
            host.enter_existing(cfg)  # other tiers keep the host's network (apt, builds)
    worker = getattr(config, "workerinput", None)
    run = run_session.make(cfg, config.getoption("--lab-run-dir"), worker)
    config.stash[RUN] = run
    if worker is None and not config.option.xmlpath and run_session.likely_lab_session(
            config.args, bool(config.getoption("--lab-config"))):
        config.option.xmlpath = str(run.junit)
    if worker is None:  # the controller sees every test's reports, the workers' too
        config.pluginmanager.register(run_session.Recorder(run), "driver-lab-run-recorder")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:  # xdist: the workers share the run
    run = node.config.stash[RUN]
    node.workerinput[run_session.RUN_ID_KEY] = run.run_id
    node.workerinput[run_session.RUN_DIR_KEY] = str(run.folder)


def pytest_collection_finish(session: pytest.Session) -> None:
    run = session.config.stash[RUN]
    lab_tests = [i.nodeid for i in session.items if "lab_vm" in getattr(i, "fixturenames", ())]
    if lab_tests and not session.config.option.collectonly:
        if not hasattr(session.config, "workerinput"):
            run_session.start(run, session.config.option.xmlpath or "")
        runs.write_collected(run.folder, lab_tests)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    run = node.config.stash[RUN]
    if not (run.folder / runs.RUN_FILE).exists():
        run_session.start(run, node.config.option.xmlpath or "")


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    choice = config.getoption("--lab-progress")
    if hasattr(config, "workerinput") or choice == "off":
        return
    interval = float(config.getoption("--lab-progress-interval"))
    # On a terminal (auto) only tests running for 4 intervals: the dots stay readable.
    min_age = 4 * interval if choice == "auto" and sys.stdout.isatty() else 0.0
    if config.pluginmanager.get_plugin("terminalreporter") is None:
        return
    writer = config.get_terminal_writer()
    if choice == "auto" and suite_live.wanted(config, writer):
        panel = suite_live.attach(writer, config.stash[RUN].folder)
        config.stash[PANEL] = panel
        config.pluginmanager.register(suite_live.Counting(panel.state), "driver-lab-panel")
        return

    def write(line: str) -> None:
        if writer.width_of_current_line:  # after a row of progress dots
            writer.line()
        writer.line(line)

    watcher = suite_progress.Watcher(config.stash[RUN].folder / "progress", write, interval,
                                     min_age)
    config.stash[WATCHER] = watcher
    watcher.start()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[EXIT_STATUS] = int(exitstatus)
    watcher = session.config.stash.get(WATCHER, None)
    if watcher is not None:
        watcher.stop()
    panel = session.config.stash.get(PANEL, None)
    if panel is not None:  # before pytest's summary (the terminal reporter wraps this hook)
        suite_live.detach(session.config.get_terminal_writer(), panel)


@pytest.hookimpl(trylast=True)  # after junitxml wrote the file
def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(RUN, None)
    if run is not None and not hasattr(config, "workerinput"):
        run_session.finish(run, config.stash.get(EXIT_STATUS, runs.EXIT_INTERRUPTED))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    if not item.config.getoption("--lab-rerun-failed") or item.get_closest_marker(
            "scenario") is None:
        return None
    flake.run_with_rerun(item, nextitem, _forget_run)
    return True


def _forget_run(item: pytest.Item) -> None:
    """What one run of ``item`` left in its stash (before a re-run)."""
    with suppress(KeyError):
        del item.stash[CRASHED]
    with suppress(KeyError):
        del item.stash[VERDICT]
    with suppress(KeyError):
        del item.stash[VERDICT_TEXT]
    with suppress(KeyError):
        del item.stash[LEASE]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if "lab_vm" not in getattr(item, "fixturenames", ()):
        return report
    if call.when == "setup" and report.failed and call.excinfo is not None:
        # the VM could not be leased, reached or reverted: the lab's verdict, said so
        verdict = classify(call.excinfo.value, False)
        item.stash[VERDICT] = verdict
        item.user_properties.append(("verdict", verdict))
        return report
    if call.when != "call":
        return report
    crashed = item.stash.get(CRASHED, False)
    lease = item.stash.get(LEASE, None)
    exc = call.excinfo.value if call.excinfo else None
    cause: str | None = None
    if lease is not None and report.failed:
        if not crashed:
            with suppress(LabError):
                crashed = lease.vm.crashed()
        # A panic on the console is a crash even when libvirt never said so (no pvpanic).
        cause = crash_cause(crashed, _console(lease), lease.vm.kind)
        crashed = cause is not None
        if not crashed:  # SSH lost: the agent tells a broken network from a lost guest
            with suppress(LabError):
                exc = lease.vm.judge_lost(exc)
            if isinstance(exc, NetworkBroken):
                report.sections.append(("Driver Lab network", exc.summary))
    item.stash[CRASHED] = crashed
    verdict = PASS if report.passed else (
        "skipped" if report.skipped else classify(exc, crashed))
    text = verdict_text(verdict, exc, cause) if report.failed else None
    expectation = lease.evidence.expectation if lease is not None else None
    if expectation is not None:  # a self-test: the lab's verdict of the bug it caught
        verdict = expectation.got
        item.user_properties.append(("expected_verdict", expectation.expected_text))
        text = expectation.text() + (f" (then the test failed: {text})" if text else "")
    item.stash[VERDICT] = verdict
    item.user_properties.append(("verdict", verdict))
    if text is not None:
        item.stash[VERDICT_TEXT] = text
    if report.failed and text is not None:
        report.sections.append(("Driver Lab verdict", text))
    return report


def _console(lease: LeasedVm) -> str:
    try:
        return lease.console()
    except OSError:
        return ""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "nic_model" in metafunc.fixturenames:
        models = models_from_config(_config_path(metafunc.config))
        metafunc.parametrize("nic_model", models, ids=[f"nic={m}" for m in models])


def models_from_config(path: str | None) -> list[str]:
    """NIC models of the lab's test NICs (for parametrizing), in order, unique."""
    try:
        models = load_config(path).vms.test_nics
    except LabError:
        return ["virtio"]
    return list(dict.fromkeys(models))


@pytest.fixture(scope="session")
def lab_config(pytestconfig: pytest.Config) -> LabConfig:
    return load_config(_config_path(pytestconfig))


@pytest.fixture(scope="session")
def lab_inventory(pytestconfig: pytest.Config, lab_config: LabConfig) -> inventory.Inventory:
    path = StatePaths(lab_config.state_dir).inventory
    if not path.exists():
        message = f"{down_text(lab_config)}: bring it up with `{up_command(lab_config)}`"
        if pytestconfig.getoption("--lab-skip-if-down"):
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    return inventory.read(path)


@pytest.fixture(scope="session")
def lab_vm_pool(pytestconfig: pytest.Config, lab_config: LabConfig,
                lab_inventory: inventory.Inventory) -> tuple[VmEntry, ...]:
    """The VMs tests may lease: those of the hosts ``--lab-hosts`` names (default: all)."""
    wanted = pytestconfig.getoption("--lab-hosts")
    if wanted is None:
        return lab_inventory.vms
    try:
        return on_hosts(lab_inventory.vms, str(wanted),
                        f"{lab_inventory.lab} ({lab_config.path})")
    except LabError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def lab_hypervisor(lab_inventory: inventory.Inventory) -> Iterator[Hypervisor]:
    with Hypervisor(lab_inventory.uri) as hv:
        hv.check()
        yield hv


@pytest.fixture(scope="session")
def lab_hosts(lab_config: LabConfig, lab_inventory: inventory.Inventory,
              lab_hypervisor: Hypervisor) -> Iterator[HostConnections]:
    """A connection per hypervisor host (lab.host_connections)."""
    conns = HostConnections(lab_config, lab_inventory, lab_hypervisor)
    yield conns
    conns.close()


@pytest.fixture(scope="session")
def lab_manifests(pytestconfig: pytest.Config, lab_config: LabConfig
                  ) -> dict[str, DriverManifest]:
    manifests = load_manifests()
    mutant = pytestconfig.getoption("--lab-mutant")
    if mutant:
        try:
            manifests = with_mutant(manifests, find_mutant(str(mutant)), guest_kind(lab_config))
        except LabError as exc:
            pytest.fail(str(exc), pytrace=False)
    return manifests


@pytest.fixture(scope="session")
def lab_vocabulary() -> Vocabulary:
    return Vocabulary.load()


def _worker() -> tuple[str, int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    digits = re.sub(r"\D", "", worker)
    return worker, int(digits) if digits else 0


def _safe(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", nodeid.split("::", 1)[-1])[:120]


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


@pytest.fixture
def lab_vm(request: pytest.FixtureRequest, lab_config: LabConfig,
           lab_inventory: inventory.Inventory, lab_vm_pool: tuple[VmEntry, ...],
           lab_hosts: HostConnections,
           lab_manifests: dict[str, DriverManifest],
           lab_vocabulary: Vocabulary) -> Iterator[LeasedVm]:
    """One VM, leased exclusively, reverted to its clean snapshot, with evidence."""
    worker, index = _worker()
    names = lab_hosts.leasable(lab_vm_pool)
    if not names:
        raise LabFailure(f"no VM can be leased: every host is down ({lab_hosts.down_hosts()})",
                         hint="check the hosts with `lab status`")
    lease = Lease(StatePaths(lab_config.state_dir).leases, names,
                  f"{worker}:{request.node.nodeid}", index)
    name = lease.acquire(float(request.config.getoption("--lab-lease-timeout")))
    entry = lab_inventory.vm(name)
    request.node.user_properties.append(("vm", name))  # also when the setup fails below
    status = _status(request.config, worker)
    timeline = Timeline(listener=status.step)
    try:
        hv = lab_hosts.for_vm(entry, timeline.add)
    except LabError:
        lease.release()
        raise
    vm = Vm(lab_inventory, entry, hv, guest_kind(lab_config), timeline)
    evidence = Evidence(_evidence_root(request.config) / _safe(request.node.nodeid))
    leased = LeasedVm(vm, evidence, lab_manifests, lab_vocabulary, _size(entry.console_log))
    cancel: Callable[[], None] | None = None
    try:
        status.begin(request.node.nodeid, name)
        timeline.add(f"leased {name} by {worker}" + (
            f" (host {entry.host})" if entry.host != "local" else ""))
        timeline.add(f"revert took {vm.revert():.1f}s")
        # the test's console slice starts at its clean state: a guest that locked up right
        # after an in-place load (then reverted by libvirt) must not count as its crash
        leased.console_offset = _size(entry.console_log)
        cancel = vm_watch.watch(hv, vm,
                                lambda: request.node.stash.__setitem__(CRASHED, True))
        request.node.stash[LEASE] = leased
        request.node.user_properties.append(("evidence", str(evidence.path)))
        with crash_watch(vm.crash_seen), hostagent.using(lab_hosts.instruments_for(entry)):
            yield leased
    finally:
        if cancel is not None:
            cancel()
        try:
            _collect(request, leased)
        finally:
            vm.close()
            lease.release()
            status.end(request.node.nodeid, request.node.stash.get(VERDICT, "not run"))


def _status(config: pytest.Config, worker: str) -> suite_progress.WorkerStatus:
    if STATUS not in config.stash:
        config.stash[STATUS] = suite_progress.WorkerStatus(
            config.stash[RUN].folder / "progress", worker)
    return config.stash[STATUS]


def _evidence_root(config: pytest.Config) -> Path:
    chosen = config.getoption("--lab-evidence")
    return Path(chosen).resolve() if chosen else config.stash[RUN].evidence


def _collect(request: pytest.FixtureRequest, leased: LeasedVm) -> None:
    try:
        console = leased.console()
    except OSError as exc:
        console = f"(console log unreadable: {exc})\n"
    collect(leased.vm, leased.evidence, request.node.stash.get(VERDICT, "not run"),
            request.node.stash.get(CRASHED, False), console,
            request.node.stash.get(VERDICT_TEXT, None))


def record_load(lab_vm: LeasedVm, results: list[LoadResult],
                node: pytest.Item | None = None) -> None:
    """Keep load results as evidence and, with ``node``, as JUnit properties."""
    for result in results:
        lab_vm.evidence.add_load(result)
        if node is not None:
            node.user_properties.append(("throughput_MBps", f"{result.throughput / 1e6:.2f}"))
            node.user_properties.append(("load_errors", str(len(result.errors))))


__all__ = ["Evidence", "LeasedVm", "classify", "record_load"]
