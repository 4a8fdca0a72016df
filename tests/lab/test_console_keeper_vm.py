"""Issue 12 against a real 1-VM lab: the console keeper mirrors a VM's serial console
through libvirt's console stream into a controller file.

The lab (`fck`, its own subnets and state directory) is brought up for the module and
down afterwards. Markers are written in the guest to /dev/ttyS0 over SSH; the keeper's
file and QEMU's own console log (``<serial><log>``, still written while a stream is
attached) must agree on them, across a snapshot revert that restarts QEMU.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from labtier import REPO, lab_cli, require_lab_host, seed_cache
from ptyrun import run_in_pty

from lab import console_keeper, host, inventory
from lab.config import LabConfig, load_config
from lab.hypervisor import Hypervisor
from lab.paths import StatePaths
from lab.wait import wait_for

pytestmark = pytest.mark.lab

STATE = REPO / "var" / "fck"
LAB_TOML = f"""\
[lab]
name = "fck"
uri = "qemu:///system"
acceleration = "auto"
state_dir = "."
pool_path = "{REPO / 'var' / 'fck-pool'}"

[image]
kind = "linux-micro"

[network]
management = "192.168.224.0/24"
test = ["192.168.225.0/24", "192.168.226.0/24"]

[vms]
names = ["k1"]
test_nics = ["virtio"]
"""
ATTACHED = b"[lab console keeper: attached "


@pytest.fixture(scope="module")
def fck_lab() -> Iterator[LabConfig]:
    """A 1-VM lab for this module (package cache hard-linked from var/cache when there)."""
    require_lab_host()
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "lab.toml").write_text(LAB_TOML)
    seed_cache(STATE)
    cfg = load_config(STATE / "lab.toml")
    try:
        res = lab_cli(cfg.path, "up")
        assert res.returncode == 0, f"lab up failed:\n{res.stderr[-3000:]}"
        yield cfg
    finally:
        console_keeper.stop(cfg.state_dir)
        lab_cli(cfg.path, "down")


def _wait_in(path: Path, what: str, seen: Callable[[bytes], bool], timeout: float = 20) -> None:
    wait_for(what, lambda: True if seen(path.read_bytes()) else None, timeout)


def _lines_with(data: bytes, token: str) -> list[str]:
    """Each line holding ``token``, from the token on (a prompt the guest printed before
    the keeper attached precedes the first marker in QEMU's log only)."""
    return [ln[ln.index(token):].rstrip("\r") for ln in data.decode(errors="replace").splitlines()
            if token in ln]


def _mark(cfg: LabConfig, vm: str, text: str) -> None:
    res = lab_cli(cfg.path, "ssh", vm, f"echo {text} > /dev/ttyS0", timeout=60)
    assert res.returncode == 0, res.stderr


def _console_session_lasts(argv: list[str], seconds: float) -> bool:
    """Run an interactive console on a terminal for ``seconds``: True if it was still
    attached then (it is ended here), False if it ended by itself before."""
    master, slave = os.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            time.sleep(0.1)
        return True
    finally:
        proc.kill()  # virsh console ignores SIGTERM
        proc.wait(5)
        os.close(master)


def test_keeper_mirrors_the_console_across_a_revert(fck_lab: LabConfig) -> None:
    inv = inventory.read(StatePaths(fck_lab.state_dir).inventory)
    entry = inv.vms[0]
    mine = Path(entry.console_log).with_suffix(".keeper.log")
    mine.unlink(missing_ok=True)
    mine.write_bytes(b"line from before (kept)")  # no newline: the marker starts a new line
    token = f"KEEPER-{uuid.uuid4().hex[:8]}"

    console_keeper.stop(fck_lab.state_dir)
    pid = console_keeper.start(fck_lab.state_dir, inv.uri, {entry.domain: mine})
    assert console_keeper.running(fck_lab.state_dir) == pid
    assert (fck_lab.state_dir / "console-keeper.pid").read_text().strip() == str(pid)
    assert console_keeper.start(fck_lab.state_dir, inv.uri, {entry.domain: mine}) == pid
    _wait_in(mine, "the keeper's first attach", lambda d: d.count(ATTACHED) == 1)
    _mark(fck_lab, entry.name, f"{token}-one")
    _wait_in(mine, "marker one in the keeper's file", lambda d: f"{token}-one".encode() in d)

    with host.inside_lab(fck_lab), Hypervisor(inv.uri) as hv:
        dom = hv.domain(entry.domain)
        assert dom is not None
        before = dom.ID()
        hv.revert_snapshot(dom, inventory.SNAPSHOT_NAME)
        after = hv.domain(entry.domain)
        assert after is not None and after.ID() != before, "the revert kept the same QEMU"
    _wait_in(mine, "the keeper's re-attach after the revert", lambda d: d.count(ATTACHED) == 2)
    _mark(fck_lab, entry.name, f"{token}-two")
    _wait_in(mine, "marker two in the keeper's file", lambda d: f"{token}-two".encode() in d)

    ours = mine.read_bytes()
    qemu = Path(entry.console_log).read_bytes()
    assert ours.startswith(b"line from before (kept)\n" + ATTACHED)
    assert _lines_with(ours, token) == [f"{token}-one", f"{token}-two"]
    assert _lines_with(ours, token) == _lines_with(qemu, token)
    assert b"[lab console keeper: detached " in ours
    assert stat.S_IMODE(mine.stat().st_mode) == 0o600

    assert console_keeper.stop(fck_lab.state_dir) is True
    assert console_keeper.running(fck_lab.state_dir) is None
    assert not (fck_lab.state_dir / "console-keeper.pid").exists()
    assert not Path(f"/proc/{pid}").exists(), "the keeper's process is still there"
    assert mine.read_bytes().rstrip().endswith(b"(keeper stopped)]")


def test_a_forced_user_console_keeps_the_console_until_it_ends(fck_lab: LabConfig) -> None:
    """With the keeper attached, plain `virsh console` is refused; `virsh console --force`
    takes the console, the keeper notes the gap and waits, then attaches again."""
    inv = inventory.read(StatePaths(fck_lab.state_dir).inventory)
    entry = inv.vms[0]
    mine = Path(entry.console_log).with_suffix(".keeper.log")
    start = len(mine.read_bytes()) if mine.exists() else 0
    console_keeper.start(fck_lab.state_dir, inv.uri, {entry.domain: mine})
    try:
        _wait_in(mine, "the keeper's attach", lambda d: ATTACHED in d[start:])
        virsh = ["virsh", "-c", inv.uri, "console", entry.domain]
        rc, out = run_in_pty(virsh, REPO, timeout=10)
        assert rc != 0 and "Active console session exists" in out, out
        assert _console_session_lasts([*virsh, "--force"], 3.0), "the keeper took it back"
        _wait_in(mine, "the keeper's note and re-attach",
                 lambda d: b"[lab console keeper: waiting " in d[start:]
                 and d[start:].count(ATTACHED) == 2)
    finally:
        console_keeper.stop(fck_lab.state_dir)
    assert console_keeper.running(fck_lab.state_dir) is None
