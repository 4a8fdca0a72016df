"""The disk-full faults of issue 15: ENOSPC from a small tmpfs in a private mount namespace.

A :class:`FullDisk` mounts a tmpfs of a given size in a mount namespace of its own (a
sleeping holder process this suite starts; nobody else sees the mount) and fills it if
asked. A `lab` command either runs inside that namespace (nsenter) or, when it may
start or stop the shared sandbox (whose daemons must never inherit a private mount
namespace), stays in the host's and reaches the full tmpfs by a symlink through
``/proc/<holder>/root``. Every case here is quick: none boots a VM except
``progress-log-full-up``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
from pathlib import Path
from types import TracebackType

import harness as h
from cases import Case, Row, _row

#: The suite's disk-full lab (1 VM; its own state dir, pool and subnets 230-232).
FDK = h.Lab("fdk", h.REPO / "var" / "fdk", h.REPO / "var" / "fdk-pool", 230)
TMPFS_NAME = "fdk-enospc"  #: the tmpfs's source name (the leak check looks for it)
PROGRESS_LOST = "cannot write the progress log"
LEASE_LOST = "cannot write the lease log"
ENOSPC_TEXT = os.strerror(28)  # "No space left on device"


class FullDisk:
    """A tmpfs of ``size`` on ``mount_on``, only in a private mount namespace held by a
    sleeping process; ``fill`` leaves it with no free block."""

    def __init__(self, mount_on: Path, size: str, fill: bool) -> None:
        self.mount_on = mount_on
        self.size = size
        self.fill = fill
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FullDisk:
        self.mount_on.mkdir(parents=True, exist_ok=True)
        on = shlex.quote(str(self.mount_on))
        fill = f"dd if=/dev/zero of={on}/.fill bs=64k 2>/dev/null; " if self.fill else ""
        script = (f"mount -t tmpfs -o size={self.size},mode=0700 {TMPFS_NAME} {on} && "
                  f"{fill}echo ready && exec sleep 900")
        self.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "--", "sh", "-c", script],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":  # sh echoes or exits: no hang
            self.proc.wait(timeout=10)
            raise RuntimeError(f"could not mount a {self.size} tmpfs on {self.mount_on}")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def outside(self) -> Path:
        """The tmpfs as the host's namespace reaches it (through the holder's root)."""
        return Path(f"/proc/{self.pid}/root") / self.mount_on.relative_to("/")

    def inside(self, argv: list[str]) -> list[str]:
        """``argv`` run in the holder's mount namespace."""
        return ["nsenter", "-t", str(self.pid), "-m", "--", *argv]

    def resize(self, size: str) -> None:
        subprocess.run(self.inside(["mount", "-o", f"remount,size={size}",
                                    str(self.mount_on)]), check=True, timeout=30)


def _mount_leaks(disk: FullDisk) -> list[str]:
    """The holder still alive, or the tmpfs visible in the host's namespace."""
    left = [f"holder pid {disk.pid}"] if disk.proc and disk.proc.poll() is None else []
    if TMPFS_NAME in Path("/proc/self/mountinfo").read_text():
        left.append(f"tmpfs {TMPFS_NAME} in the host's mount namespace")
    return left


def _warnings(out: str, needle: str) -> list[str]:
    return [ln for ln in out.splitlines() if needle in ln]


class _LogOnFullDisk:
    """FDK's progress log replaced by a symlink into a full tmpfs (restored after)."""

    def __init__(self, disk: FullDisk) -> None:
        self.disk = disk
        self.log = FDK.state / "logs" / "lab.log"
        self.kept = self.log.with_name("lab.log.before-fault")

    def __enter__(self) -> Path:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        if self.log.exists() and not self.log.is_symlink():
            self.log.rename(self.kept)
        self.log.unlink(missing_ok=True)
        self.log.symlink_to(self.disk.outside / "lab.log")
        return self.log

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.log.unlink(missing_ok=True)
        if self.kept.exists():
            self.kept.rename(self.log)


def _progress_ok(run: h.Run, log: Path) -> tuple[bool, str]:
    """rc 0, no traceback, exactly one warning line naming the log and the reason."""
    said = _warnings(run.output, PROGRESS_LOST)
    ok = (run.rc == 0 and not run.traceback and len(said) == 1 and str(log) in said[0]
          and ENOSPC_TEXT in said[0])
    return ok, said[0] if said else run.line()


# ---- quick -------------------------------------------------------------------------


def progress_log_full_down() -> Row:
    """`lab down` while its progress log's disk is full: goes on to the end, says once."""
    FDK.write()
    with FullDisk(h.scratch("enospc-"), "64k", fill=True) as disk, \
            _LogOnFullDisk(disk) as log:
        down = h.run_lab(FDK.config, "down")
        ok, said = _progress_ok(down, log)
        ok = ok and "lab fdk is down" in down.output
    left = _mount_leaks(disk) + h.leaks(FDK.name, (FDK.pool,))
    shutil.rmtree(disk.mount_on, ignore_errors=True)
    return _row("progress log on a full disk: `lab down`", ok, left,
                f"{said} | {down.line('is down')}")


def lease_log_full() -> Row:
    """A lease taken and given back while its log's disk is full (a real tmpfs, leases
    dir on it): acquire works, the lock is free again at once for another process."""
    mount_on = h.scratch("enospc-")
    lock_dir = mount_on / "leases"
    holder = ("import sys; from pathlib import Path; from lab.leases import Lease\n"
              f"lease = Lease(Path({str(lock_dir)!r}), ['f1'], 'gw0:test_a', 0)\n"
              "print('acquired', lease.acquire(5), flush=True)\n"
              "lease.release(); print('released', flush=True)\n"
              "lease.acquire(5); lease.release(); print('done', flush=True)\n"
              "sys.stdin.readline()")  # stays alive: a pinned lock would still be held
    other = ("from pathlib import Path; from lab.leases import Lease\n"
             f"lease = Lease(Path({str(lock_dir)!r}), ['f1'], 'gw1:test_b', 0)\n"
             "print('other got', lease.acquire(3), flush=True); lease.release()")
    with FullDisk(mount_on, "64k", fill=True) as disk:
        alive = subprocess.Popen(disk.inside(h.python_argv(holder)), cwd=h.REPO,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
        assert alive.stdout is not None and alive.stdin is not None
        lines: list[str] = []
        while not lines or lines[-1] not in ("done\n", ""):  # EOF if it died
            lines.append(alive.stdout.readline().decode(errors="replace"))
        second = h.run_until(disk.inside(h.python_argv(other)), lambda _o: False, 60)
        alive.stdin.close()
        alive.wait(timeout=30)
    out = "".join(lines)
    said = _warnings(out, LEASE_LOST)
    ok = ("acquired f1" in out and "released" in out and "done" in out and alive.returncode == 0
          and "Traceback" not in out and len(said) == 1 and ENOSPC_TEXT in said[0]
          and "other got f1" in second.output and not second.traceback)
    left = _mount_leaks(disk)
    shutil.rmtree(mount_on, ignore_errors=True)
    return _row("lease log on a full disk: acquire, release, lease again", ok, left,
                (said[0] if said else h.Run(alive.returncode, out, False).line())
                + " | " + second.line("other got"))


def _image_build(disk: FullDisk) -> h.Run:
    return h.run_until(disk.inside(h.lab_argv(FDK.config, "images")), lambda _o: False, 300)


def _half_built(disk: FullDisk) -> list[str]:
    """What is left in the image folder (seen through the holder) after a failed build."""
    out = disk.outside / "linux-micro"
    return sorted(p.name for p in out.iterdir()) if out.is_dir() else []


#: tmpfs sizes that fill up at each stage of the micro image build (measured): copying a
#: library (OSError), copying the module tree (a shutil.Error listing ~1000 ENOSPC), in
#: mke2fs, in qemu-img convert (its output is compressed since builder 5: 225m and 235m
#: both fail there, 245m builds)
SIZES = ("6m", "12m", "160m", "230m")


def image_build_full() -> Row:
    """The micro image build on a disk too small for it (tmpfs over FDK's images folder,
    filling up at each stage of :data:`SIZES`): one line naming the folder and the fix,
    nothing half-built left; each later run builds again, and with room it builds."""
    FDK.write()
    images = FDK.state / "images"
    runs: list[h.Run] = []
    left_after: list[list[str]] = []
    with FullDisk(images, "6m", fill=False) as disk:
        for size in SIZES:
            disk.resize(size)
            runs.append(_image_build(disk))
            left_after.append(_half_built(disk))
        disk.resize("400m")
        room = _image_build(disk)
    folder = str(images / "linux-micro")
    ok = all(r.rc != 0 and not r.traceback and "disk is full" in r.output
             and folder in r.line("disk is full") and "fix: free space" in r.output
             and "building micro guest image" in r.output for r in runs)
    ok = ok and not any(left_after) and room.rc == 0 and "building micro guest" in room.output
    left = _mount_leaks(disk) + [f"half-built {n}" for names in left_after for n in names]
    return _row("full disk during the micro image build", ok, left,
                f"{runs[0].line('disk is full')} | with room: {room.line('ready')}")


# ---- full (boots a VM) ---------------------------------------------------------------


def progress_log_full_up() -> Row:
    """`lab up` then `lab down` while the progress log's disk is full: both complete."""
    FDK.write()
    with FullDisk(h.scratch("enospc-"), "64k", fill=True) as disk, \
            _LogOnFullDisk(disk) as log:
        up = h.run_lab(FDK.config, "up")
        up_ok, up_said = _progress_ok(up, log)
        down = h.run_lab(FDK.config, "down")
        down_ok, _ = _progress_ok(down, log)
    ok = up_ok and down_ok and "inventory:" in up.output and "lab fdk is down" in down.output
    left = _mount_leaks(disk) + h.leaks(FDK.name, (FDK.pool,))
    shutil.rmtree(disk.mount_on, ignore_errors=True)
    return _row("progress log on a full disk: `lab up` + `lab down`", ok, left,
                f"{up_said} | {up.line('inventory:')}")


DISK_CASES = (
    Case("progress-log-full-down", True, progress_log_full_down),
    Case("lease-log-full", True, lease_log_full),
    Case("image-build-full", True, image_build_full),
    Case("progress-log-full-up", False, progress_log_full_up),
)
