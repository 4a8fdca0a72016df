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
    """SIGKILL the sandbox's libvirtd while a hot-unplug test runs; then the next test."""
    pre = _up()
    qemus = h.lab_qemus(FLT.name)
    old = _daemon_pid("libvirtd")
    before = _runs()
    argv = [str(h.REPO / ".venv" / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider",
            "--lab-config", str(FLT.config), UNPLUG, AFTER]
    killed: list[int] = []

    def kill_when(_out: str) -> bool:
        log = _new_log(before)
        if killed or log is None or not log.exists() or "revert took" not in log.read_text():
            return False
        os.kill(old, signal.SIGKILL)  # the lab's own libvirtd, by the pid it recorded
        killed.append(old)
        return False

    run = h.run_until(argv, kill_when, 900)
    log = _new_log(before)
    verdicts = _verdicts(log.parent.parent / "junit.xml") if log else {}
    unplug, after = verdicts.get("test_hot_unplug_replug[nic=virtio]"), verdicts.get(
        "test_unbind_rebind[nic=virtio]")
    new = _daemon_pid("libvirtd")
    kept = h.lab_qemus(FLT.name) == qemus and bool(qemus)
    ok = (not pre and bool(killed) and unplug == "lab failed" and after == "pass"
          and "INTERNALERROR" not in run.output and new not in (0, old) and kept)
    left = _down_clean(FLT)
    return _row("libvirtd SIGKILLed during a hot-unplug test", ok, left,
                f"unplug test: {unplug}; next test: {after}; libvirtd {old} -> {new}; "
                f"QEMU {'kept' if kept else 'NOT kept'} | {run.line('HypervisorLost', 'lost')}")


def _console_grows(marker: str) -> bool:
    """Write ``marker`` to the guest's console (over SSH) and find it in the console log."""
    log = FLT.state / "consoles" / "f1.log"
    cmd = h.run_lab(FLT.config, "ssh", "f1", "sh", "-c", f"echo {marker} > /dev/console")
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



CASES = (
    Case("libvirtd-killed-mid-test", False, libvirtd_killed_mid_test),
    Case("virtlogd-killed", False, virtlogd_killed),
)
