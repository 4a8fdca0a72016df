"""The injected faults of issue 15 ("Interrupted work", "Concurrency and ownership").

Each case injects its fault for real (SIGKILL of a real `lab` process at a named
moment, real concurrent commands, real configs and directories) and returns a
:class:`Row`. ``quick`` cases need no VM boot and run in CI (`make faults-quick`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import harness as h

from lab.inventory import write_text_atomic
from lab.sandbox import RUN_DIR

FLT = h.Lab("flt", h.REPO / "var" / "flt", h.REPO / "var" / "flt-pool", 250)
#: same lab name as FLT, another config and state dir
TWIN = h.Lab("flt", h.REPO / "var" / "flt-twin", h.REPO / "var" / "flt-twin-pool", 250, "tcg")
#: a lab whose pool_path already exists (the user's directory)
USERDIR = h.Lab("flp", h.REPO / "var" / "flp", h.REPO / "var" / "flp-userdir", 253, "tcg")
#: another lab name pointing at FLT's state dir
SHARER = h.Lab("fls", FLT.state, h.REPO / "var" / "fls-pool", 247, "tcg")


@dataclass(frozen=True)
class Row:
    fault: str
    outcome: str  #: "survived", "FAILED" or "skipped"
    leaked: str
    message: str


@dataclass(frozen=True)
class Case:
    name: str
    quick: bool
    run: Callable[[], Row]


def _row(fault: str, ok: bool, leaked: list[str], message: str) -> Row:
    return Row(fault, "survived" if ok and not leaked else "FAILED",
               ", ".join(leaked) or "none", message[:240])


def _down_clean(lab: h.Lab) -> list[str]:
    """`lab down`, then whatever of the lab is still there."""
    res = h.run_lab(lab.config, "down")
    left = h.leaks(lab.name, (lab.pool,))
    return left + (["lab down failed: " + res.line()] if res.rc or res.traceback else [])


# ---- quick -------------------------------------------------------------------------


def lock_busy() -> Row:
    """A second command while one holds the lab lock: waits, then names the holder; the
    lock of a SIGKILLed holder is free at once."""
    state = h.scratch("lock-")
    hold = ("import sys, time; from pathlib import Path; from lab.lablock import lab_lock\n"
            f"with lab_lock('flt', Path({str(state)!r}), 'up', print):\n"
            "    print('held', flush=True); time.sleep(120)")
    holder = subprocess.Popen(h.python_argv(hold), cwd=h.REPO, stdout=subprocess.PIPE)
    assert holder.stdout is not None
    holder.stdout.readline()
    second = ("import sys; from pathlib import Path; from lab.lablock import lab_lock\n"
              "from lab.errors import LabBusy\ntry:\n"
              f"    with lab_lock('flt', Path({str(state)!r}), 'down', print, wait_s=2):\n"
              "        print('got it')\n"
              "except LabBusy as exc:\n    print(exc.summary); sys.exit(3)")
    busy = h.run_until(h.python_argv(second), lambda _o: False, 60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    t0 = time.monotonic()
    after = h.run_until(h.python_argv(second), lambda _o: False, 60)
    took = time.monotonic() - t0
    ok = (f"pid {holder.pid}" in busy.output and "waiting for" in busy.output
          and busy.rc != 0 and "got it" in after.output and took < 10)
    shutil.rmtree(state)
    return _row("lab lock held by another command (then its holder SIGKILLed)", ok, [],
                busy.line(" holds ") + f" | after kill: lock taken in {took:.1f}s")


def kvm_probe_killed() -> Row:
    """SIGKILL `lab up` while its KVM probe QEMU runs; the probe must die with it."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Row("SIGKILL during the KVM probe", "skipped", "-", "no usable /dev/kvm here")
    FLT.write()
    (FLT.state / "accel.json").unlink(missing_ok=True)
    shared = RUN_DIR / "accel.json"  # the host's answer too, or `lab up` does not probe
    kept = shared.read_text() if shared.exists() else None
    shared.unlink(missing_ok=True)
    try:
        run = h.run_until(h.lab_argv(FLT.config, "up"),
                          lambda out: "probing KVM" in out and bool(
                              h.processes("lab.probe=1", str(FLT.state))), 300)
    finally:
        if kept is not None and not shared.exists():  # the next lab need not probe again
            write_text_atomic(shared, kept)
    orphans = h.wait_gone(h.probe_qemus, 5)
    cache = FLT.state / "accel.json"
    ok = run.killed and not orphans and not cache.exists()
    return _row("SIGKILL during the KVM probe", ok, [f"probe qemu pid {p}" for p in orphans],
                f"killed={run.killed}; probe QEMU gone with its parent; no cache written")


def garbage_accel_cache() -> Row:
    """A half-written acceleration cache: ignored with a note, probed again, rewritten."""
    FLT.write()
    image = FLT.state / "images" / "linux-micro"
    if not (image / "vmlinuz").exists():
        return Row("half-written acceleration cache", "skipped", "-", "no image built yet")
    cache = h.scratch("accel-") / "accel.json"
    cache.write_text('{"key": "6.1|/usr/bin/qemu-system-x86_64|17', encoding="utf-8")
    code = ("from pathlib import Path; from lab import accel; from lab.config import "
            "Acceleration\n"
            f"print(accel.resolve(Acceleration.AUTO, Path({str(cache)!r}), "
            f"Path({str(image / 'vmlinuz')!r}), Path({str(image / 'initrd.img')!r}), print))")
    run = h.run_until(h.python_argv(code), lambda _o: False, 120)
    from lab.accel import parse_cache

    rewritten = parse_cache(cache.read_text()) is not None
    ok = run.rc == 0 and not run.traceback and "ignoring" in run.output and rewritten
    shutil.rmtree(cache.parent)
    return _row("half-written acceleration cache", ok, [], run.line("ignoring"))


def shared_state_dir() -> Row:
    """A second config (another lab name) pointing at FLT's state dir: one-line refusal."""
    FLT.write()
    h.run_lab(FLT.config, "status")
    from lab import identity

    if identity.read(FLT.state) is None:
        identity.claim(FLT.name, FLT.config, FLT.state)
    SHARER.write()
    run = h.run_lab(SHARER.config, "down")
    ok = run.rc != 0 and not run.traceback and "cannot share a state dir" in run.output
    return _row("two configs sharing one state_dir", ok, h.leaks(SHARER.name),
                run.line("state_dir"))


def pool_dir_with_user_file() -> Row:
    """pool_path is the user's existing directory: refused; the user's file survives up
    and down; nothing of the lab is left."""
    USERDIR.write()
    USERDIR.pool.mkdir(parents=True, exist_ok=True)
    precious = USERDIR.pool / "thesis.txt"
    precious.write_text("the user's file\n")
    up = h.run_lab(USERDIR.config, "up")
    down = h.run_lab(USERDIR.config, "down")
    ok = (up.rc != 0 and not up.traceback and not down.traceback
          and precious.read_text() == "the user's file\n")
    left = h.leaks(USERDIR.name)
    msg = up.line("pool_path")
    precious.unlink()
    return _row("pool_path is an existing directory with a user file", ok, left, msg)


def empty_pool_dir_preexisting() -> Row:
    """pool_path exists (empty, not the lab's): refused before anything is created, and
    neither adopted nor deleted."""
    USERDIR.write()
    USERDIR.pool.mkdir(parents=True, exist_ok=True)
    for entry in USERDIR.pool.iterdir():
        entry.unlink()
    up = h.run_lab(USERDIR.config, "up")
    down = h.run_lab(USERDIR.config, "down")
    ok = up.rc != 0 and not up.traceback and not down.traceback and USERDIR.pool.is_dir()
    left = h.leaks(USERDIR.name)
    USERDIR.pool.rmdir()  # the suite made this "user" directory: it goes, the lab never did
    return _row("pool_path is an existing empty directory", ok, left, up.line("pool_path"))


def sandbox_unrecorded_daemons() -> Row:
    """Stand-in for a `lab up` killed between starting the sandbox daemons and recording
    them (the shared sandbox itself is never touched): real processes named libvirtd and
    virtlogd, in a private namespace, known only by their pid files, are adopted, then
    stopped with their namespace by `Sandbox.stop`."""
    from lab import netns
    from lab.sandbox import Sandbox

    run_dir = h.scratch("sandbox-")
    box = Sandbox(run_dir=run_dir, netns_name="fltsbx")
    netns.create(box.netns)
    started = []
    for name in ("libvirtd", "virtlogd"):
        exe = run_dir / name
        shutil.copy("/bin/sleep", exe)
        proc = subprocess.Popen(["ip", "netns", "exec", box.netns, str(exe), "300"])
        started.append(proc)
        (run_dir / f"{name}.pid").write_text(f"{proc.pid}\n")
    time.sleep(0.5)
    adopted = box.state()
    lines = box.stop()
    for proc in started:
        proc.wait(timeout=30)
    left = [f"pid {p.pid}" for p in started if p.returncode is None]
    left += [f"netns {box.netns}"] if netns.exists(box.netns) else []
    ok = adopted is not None and {adopted.libvirtd_pid, adopted.virtlogd_pid} == {
        p.pid for p in started}
    shutil.rmtree(run_dir)
    return _row("unrecorded sandbox daemons (stand-in netns)", ok, left,
                f"adopted from pid files; {'; '.join(lines)}")


# ---- full (boot a VM) ----------------------------------------------------------------


def _pool_has(lab: h.Lab, prefix: str, suffix: str) -> bool:
    return lab.pool.is_dir() and any(
        p.name.startswith(prefix) and p.name.endswith(suffix) for p in lab.pool.iterdir())


def golden_upload_killed() -> Row:
    """SIGKILL `lab up` while it streams the golden image into its volume."""
    FLT.write()
    pre = _down_clean(FLT)
    killed = h.run_until(h.lab_argv(FLT.config, "up"),
                         lambda _o: _pool_has(FLT, "golden-", ".qcow2"), 600)
    up = h.run_lab(FLT.config, "up")
    ok = killed.killed and up.rc == 0 and "partial upload" in up.output
    left = _down_clean(FLT)
    return _row("SIGKILL during the golden image upload", ok and not pre, left,
                up.line("partial upload"))


def overlay_created_killed() -> Row:
    """SIGKILL `lab up` right after the VM's disk volume appears (before its domain)."""
    FLT.write()
    pre = _down_clean(FLT)
    killed = h.run_until(h.lab_argv(FLT.config, "up"),
                         lambda _o: _pool_has(FLT, "f1.qcow2", ""), 600)
    up = h.run_lab(FLT.config, "up")
    ok = killed.killed and up.rc == 0 and not pre
    left = _down_clean(FLT)
    ok = ok and "had no domain" in up.output
    return _row("SIGKILL during VM disk creation", ok, left, up.line("had no domain"))


def concurrent_up() -> Row:
    """Two `lab up` at once: the second waits for the first, then finds the lab up."""
    FLT.write()
    pre = _down_clean(FLT)
    first = h.start_lab(FLT.config, "up")
    time.sleep(0.3)
    second = h.start_lab(FLT.config, "up")
    a, b = h.finish(first), h.finish(second)
    waited = [r for r in (a, b) if "is busy: waiting for" in r.output]
    doms = [o for o in h.libvirt_objects(FLT.name) if o.startswith("domain")]
    ok = not pre and a.rc == 0 and b.rc == 0 and len(waited) == 1 and len(doms) == 1
    return _row("two concurrent `lab up`", ok, [], (waited[0] if waited else b).line(
        "is busy"))


def same_name_other_config() -> Row:
    """With FLT up, a second config with the same lab name: its up refuses, its down
    touches nothing of FLT (run this right after concurrent_up: FLT is up)."""
    TWIN.write()
    before = h.libvirt_objects(FLT.name)
    up = h.run_lab(TWIN.config, "up")
    down = h.run_lab(TWIN.config, "down")
    after = h.libvirt_objects(FLT.name)
    ok = (bool(before) and before == after and up.rc != 0 and down.rc == 0
          and not up.traceback and "not touched" in down.output)
    lost = [o for o in before if o not in after]
    return _row("same lab name, another config: up and down", ok,
                [f"destroyed {o}" for o in lost],
                f"{up.line('belongs to another')} | {down.line('not touched')}")


def pool_without_directory() -> Row:
    """A pool defined without its directory: `lab down` and `lab up` both get past it."""
    FLT.write()
    pre = _down_clean(FLT)
    define = ["virsh", "-q", "-c", "qemu:///system", "pool-define-as", "flt-pool", "dir",
              "--target", str(FLT.pool)]
    subprocess.run(define, check=True, capture_output=True)
    down = h.run_lab(FLT.config, "down")
    gone = "pool flt-pool" not in h.libvirt_objects(FLT.name)
    subprocess.run(define, check=True, capture_output=True)
    up = h.run_lab(FLT.config, "up")
    ok = not pre and down.rc == 0 and gone and up.rc == 0
    left = _down_clean(FLT)
    return _row("pool defined without its directory", ok, left,
                down.line("definition removed"))


CASES = (
    Case("lock-busy", True, lock_busy),
    Case("kvm-probe-killed", True, kvm_probe_killed),
    Case("garbage-accel-cache", True, garbage_accel_cache),
    Case("shared-state-dir", True, shared_state_dir),
    Case("pool-dir-user-file", True, pool_dir_with_user_file),
    Case("pool-dir-empty", True, empty_pool_dir_preexisting),
    Case("sandbox-unrecorded", True, sandbox_unrecorded_daemons),
    Case("golden-upload-killed", False, golden_upload_killed),
    Case("overlay-killed", False, overlay_created_killed),
    Case("pool-without-dir", False, pool_without_directory),
    Case("concurrent-up", False, concurrent_up),
    Case("same-name-config", False, same_name_other_config),
)
