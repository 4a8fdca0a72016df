"""Daemon deaths during a real lab's work (issue 15, "Daemons"): the sandbox's libvirtd
killed in the middle of a test, its virtlogd killed between commands.

What must hold: the test that was running gets a *lab* verdict (never "driver hung"),
pytest keeps the whole session's results (no INTERNALERROR), the next test reconnects
and passes, the dead daemon is restarted alone and every running VM is kept (same
QEMU process), and its console log is still written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import harness as h
from cases import FLT, Case, Row, _down_clean, _row

from lab.sandbox import Sandbox

#: a hot-unplug (the test during which libvirtd dies) and a second test that must pass
UNPLUG = "tests/scenarios/test_scenarios.py::test_hot_unplug_replug[nic=virtio]"
AFTER = "tests/scenarios/test_scenarios.py::test_unbind_rebind[nic=virtio]"


def _up() -> list[str]:
    """FLT up from nothing; returns what was left before (a failed precondition)."""
    FLT.write()
    pre = _down_clean(FLT)
    up = h.run_lab(FLT.config, "up")
    return pre + ([] if up.rc == 0 else [f"lab up failed: {up.line()}"])


def _daemon_pid(name: str) -> int:
    st = Sandbox().state()
    return 0 if st is None else int(getattr(st, f"{name}_pid"))


def _runs() -> set[Path]:
    root = h.REPO / "artifacts" / FLT.name / "runs"
    return set(root.iterdir()) if root.is_dir() else set()


def _new_log(before: set[Path]) -> Path | None:
    new = sorted(_runs() - before)
    return new[-1] / "progress" / "main.log" if new else None


def _verdicts(junit: Path) -> dict[str, str]:
    """test name -> the lab's verdict property, from the run's JUnit."""
    found: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        for prop in case.iter("property"):
            if prop.get("name") == "verdict":
                found[case.get("name", "?")] = prop.get("value", "?")
    return found


def libvirtd_killed_mid_test() -> Row:
    """SIGKILL the sandbox's libvirtd as a hot-unplug test detaches its NIC; then the next
    test on the same VM."""
    pre = _up()
    qemus: list[int] = []
    old = _daemon_pid("libvirtd")
    before = _runs()
    argv = [str(h.REPO / ".venv" / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider",
            "--lab-config", str(FLT.config), UNPLUG, AFTER]
    killed: list[int] = []
    #: the lab's QEMUs the moment the new libvirtd was recorded (before the next test's
    #: revert, which restarts QEMU anyway when the unplugged NIC differs from the snapshot)
    at_restart: list[list[int]] = []

    def kill_when(_out: str) -> bool:
        if killed:
            if not at_restart and _daemon_pid("libvirtd") not in (0, old):
                at_restart.append(h.lab_qemus(FLT.name))
            return False
        log = _new_log(before)
        if log is None or not log.exists() or " detach " not in log.read_text():
            return False
        qemus.extend(h.lab_qemus(FLT.name))  # each revert may start a new QEMU: the one now
        os.kill(old, signal.SIGKILL)  # the lab's own libvirtd, by the pid it recorded
        killed.append(old)
        return False

    run = h.run_until(argv, kill_when, 900)
    log = _new_log(before)
    verdicts = _verdicts(log.parent.parent / "junit.xml") if log else {}
    unplug, after = verdicts.get("test_hot_unplug_replug[nic=virtio]"), verdicts.get(
        "test_unbind_rebind[nic=virtio]")
    new = _daemon_pid("libvirtd")
    kept = bool(qemus) and at_restart == [qemus]
    ok = (not pre and bool(killed) and unplug == "lab failed" and after == "pass"
          and "INTERNALERROR" not in run.output and new not in (0, old) and kept)
    left = _down_clean(FLT)
    return _row("libvirtd SIGKILLed during a hot-unplug test", ok, left,
                f"unplug test: {unplug}; next test: {after}; libvirtd {old} -> {new}; "
                f"QEMU {qemus} -> {at_restart} | {run.line('HypervisorLost', 'lost')}")


def _console_grows(marker: str) -> bool:
    """Write ``marker`` to the guest's serial console (over SSH), find it in the console log."""
    log = FLT.state / "consoles" / "f1.log"
    # one argument: `lab ssh` joins its words with spaces, as ssh(1) does
    cmd = h.run_lab(FLT.config, "ssh", "f1", f"echo {marker} > /dev/ttyS0")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if cmd.rc == 0 and log.exists() and marker in log.read_text(errors="replace"):
            return True
        time.sleep(0.5)
    return False


def virtlogd_killed() -> Row:
    """SIGKILL the sandbox's virtlogd: `lab up` restarts it alone, the VM keeps running
    and keeps writing its console log."""
    pre = _up()
    qemus = h.lab_qemus(FLT.name)
    old = _daemon_pid("virtlogd")
    os.kill(old, signal.SIGKILL)
    time.sleep(1)
    still = h.lab_qemus(FLT.name) == qemus and bool(qemus)
    console_before = _console_grows("flt-marker-before-up")
    up = h.run_lab(FLT.config, "up")
    new = _daemon_pid("virtlogd")
    kept = h.lab_qemus(FLT.name) == qemus
    console_after = _console_grows("flt-marker-after-up")
    ok = (not pre and up.rc == 0 and still and kept and new not in (0, old)
          and console_before and console_after and "restarted" in up.output)
    left = _down_clean(FLT)
    return _row("virtlogd SIGKILLed, then `lab up`", ok, left,
                f"QEMU {'kept' if kept else 'NOT kept'}; console "
                f"{'written' if console_before and console_after else 'NOT written'}; "
                f"{up.line('restarted')}")





def _state_words(lab: h.Lab) -> str:
    return h.run_lab(lab.config, "status").line(" paused", "running")


def _pause_watch(lab: h.Lab) -> str:
    """Python code that arms the test fixture's watch (lab.vm_watch) on the VM and waits;
    it prints the error the wait ends with (VmPaused expected once the pool is full)."""
    code = (
        "import sys\nfrom lab.config import load_config\nfrom lab import inventory, vm_watch\n"
        "from lab.errors import LabError\nfrom lab.guests import guest_kind\n"
        "from lab.hypervisor import Hypervisor\nfrom lab.paths import StatePaths\n"
        "from lab.vm import Vm\nfrom lab.wait import crash_watch, wait_for\n"
        f"cfg = load_config({str(lab.config)!r})\n"
        "inv = inventory.read(StatePaths(cfg.state_dir).inventory)\n"
        "hv = Hypervisor(inv.uri)\nvm = Vm(inv, inv.vms[0], hv, guest_kind(cfg))\n"
        "vm_watch.watch(hv, vm, lambda: None)\nprint('armed', flush=True)\n"
        "try:\n    with crash_watch(vm.crash_seen):\n"
        "        wait_for('the pool to fill up', lambda: None, 300)\n"
        "except LabError as exc:\n    print(type(exc).__name__, exc.summary, flush=True)\n")
    return code


def pool_full() -> Row:
    """The VM's pool on a small tmpfs that fills while the guest writes: the VM pauses
    (error policy stop), the test's wait ends with VmPaused (a lab verdict), `lab status`
    names the disk error, and once space is freed `lab up` brings the VM back."""
    if Sandbox().running():
        return Row("pool full while the guest writes", "skipped", "none",
                   "the shared sandbox runs already: its daemons cannot see a tmpfs mounted "
                   "after they started; run with no lab up")
    mnt = h.WORK / "poolfs"
    mnt.mkdir(parents=True, exist_ok=True)
    lab = h.Lab("flf", h.REPO / "var" / "flf", mnt / "pool", 244, "tcg")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=420m", "flf-poolfs", str(mnt)],
                   check=True)
    try:
        return _pool_full(lab, mnt)
    finally:
        _down_clean(lab)
        subprocess.run(["umount", str(mnt)], check=False)


def _pool_full(lab: h.Lab, mnt: Path) -> Row:
    lab.write()
    up = h.run_lab(lab.config, "up")
    if up.rc != 0:
        return _row("pool full while the guest writes", False, [], up.line())
    watcher = subprocess.Popen(h.python_argv(_pause_watch(lab)), cwd=h.REPO,
                               stdout=subprocess.PIPE, text=True)
    assert watcher.stdout is not None
    watcher.stdout.readline()  # armed
    filler = mnt / "filler"
    subprocess.run(["fallocate", "-l", str(_free(mnt) - 4096), str(filler)], check=False)
    writer = h.start_lab(lab.config, "ssh", "f1",
                         "dd if=/dev/urandom of=/var/fill bs=1M count=48 conv=fsync")
    try:
        said = watcher.communicate(timeout=300)[0].strip()
    except subprocess.TimeoutExpired:
        watcher.kill()
        said = "(no error within 300s)"
    status = _state_words(lab)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    filler.unlink()
    again = h.run_lab(lab.config, "up")
    ok = (said.startswith("VmPaused") and "disk I/O error" in status and again.rc == 0
          and "was paused (disk I/O error" in again.output)
    return _row("pool full while the guest writes", ok, [],
                f"{said} | status: {status} | {again.line('was paused')}")


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize




#: a two-host lab of the suite: f1 on the sandbox, f2 on a namespace host (issue 12)
TWO_HOST = h.Lab("fth", h.REPO / "var" / "fth", h.REPO / "var" / "fth-pool", 233, "tcg")
TWO_HOST_TESTS = ("test_hot_unplug_replug or (test_unbind_rebind and not unplug) "
                  "or test_load_every_nic or test_link_flap or test_nic_reset")


def _write_two_host() -> Path:
    TWO_HOST.write()
    text = TWO_HOST.config.read_text().replace('names = ["f1"]', 'names = ["f1", "f2"]')
    TWO_HOST.config.write_text(text + '\n[[hosts]]\nname = "fh2"\nkind = "namespace"\n'
                               'vms = ["f2"]\n')
    return TWO_HOST.config


def _junit_rows(junit: Path) -> list[tuple[str, str, str]]:
    """(test, vm, verdict) of every test case in a run's JUnit."""
    rows = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value", "") for p in case.iter("property")}
        rows.append((case.get("name", "?"), props.get("vm", "?"), props.get("verdict", "?")))
    return rows


def host_libvirtd_killed() -> Row:
    """Two hosts, `pytest -n 2`: SIGKILL the second host's libvirtd while a test runs on
    its VM. Its VM's tests get lab verdicts, the local VM's tests go on and pass, and
    `lab down` leaves nothing on either host."""
    from lab.nshost import HostSpec, NamespaceHost
    from lab.sandbox import RUN_DIR

    config = _write_two_host()
    pre = _down_clean(TWO_HOST)
    up = h.run_lab(config, "up")
    if up.rc != 0:
        return _row("second host's libvirtd killed mid-suite", False, pre, up.line())
    host2 = NamespaceHost(HostSpec(name="fh2", netns="dlh-fh2", run_dir=RUN_DIR / "hosts" / "fh2"))
    st = host2.state()
    before = {p for p in (h.REPO / "artifacts" / "fth" / "runs").glob("*")} \
        if (h.REPO / "artifacts" / "fth" / "runs").is_dir() else set()
    argv = [str(h.REPO / ".venv" / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider",
            "-n", "2", "--lab-config", str(config), "tests/scenarios/test_scenarios.py",
            "-k", TWO_HOST_TESTS]
    killed: list[int] = []

    def kill_when(_out: str) -> bool:
        runs = sorted(set((h.REPO / "artifacts" / "fth" / "runs").glob("*")) - before)
        logs = list(runs[-1].glob("progress/*.log")) if runs else []
        if killed or st is None or not any("(host fh2)" in p.read_text() for p in logs):
            return False
        os.kill(st.libvirtd_pid, signal.SIGKILL)
        killed.append(st.libvirtd_pid)
        return False

    run = h.run_until(argv, kill_when, 1200)
    runs = sorted(set((h.REPO / "artifacts" / "fth" / "runs").glob("*")) - before)
    rows = _junit_rows(runs[-1] / "junit.xml") if runs else []
    on_f2 = [v for _t, vm, v in rows if vm == "f2"]
    on_f1 = [v for _t, vm, v in rows if vm == "f1"]
    bad = [(t, vm, v) for t, vm, v in rows if v not in ("pass", "lab failed")
           or (v == "lab failed" and vm != "f2")]
    ok = (not pre and bool(killed) and "INTERNALERROR" not in run.output and not bad
          and "lab failed" in on_f2 and bool(on_f1) and all(v == "pass" for v in on_f1))
    down = h.run_lab(config, "down")
    left = h.leaks(TWO_HOST.name, (TWO_HOST.pool,))
    left += ["namespace dlh-fh2"] if (Path("/run/netns") / "dlh-fh2").exists() else []
    left += ["lab down failed"] if down.rc else []
    return _row("second host's libvirtd killed mid-suite (two hosts, -n 2)", ok, left,
                f"f1: {len(on_f1)} tests {sorted(set(on_f1))}; f2: {len(on_f2)} tests "
                f"{sorted(set(on_f2))}; {down.line('unreachable', 'is down')}"
                + (f"; unexpected {bad}" if bad else ""))


CASES = (
    Case("libvirtd-killed-mid-test", False, libvirtd_killed_mid_test),
    Case("virtlogd-killed", False, virtlogd_killed),
    Case("pool-full", False, pool_full),
    Case("host-libvirtd-killed", False, host_libvirtd_killed),
)
