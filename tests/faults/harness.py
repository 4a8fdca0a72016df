"""The fault suite's tools: private lab configs, `lab` runs killed at a named moment,
and leak checks (libvirt objects by lab metadata, processes, paths).

Everything here acts on the suite's own labs (names ``flt``/``flp``/``fls``, state
under var/flt*), never on another lab: processes are stopped only by the pids this
suite started.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = Path("/tmp/driver-lab-faults")
LAB_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Lab:
    """One private lab of the suite."""

    name: str
    state: Path
    pool: Path
    subnet_octet: int  #: management 192.168.N.0/24, tests N+1 and N+2
    acceleration: str = "auto"

    @property
    def config(self) -> Path:
        return WORK / f"{self.name}-{self.state.name}.toml"

    def write(self) -> Path:
        n = self.subnet_octet
        WORK.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'[lab]\nname = "{self.name}"\nuri = "qemu:///system"\n'
            f'acceleration = "{self.acceleration}"\nstate_dir = "{self.state}"\n'
            f'pool_path = "{self.pool}"\n\n[image]\nkind = "linux-micro"\n\n'
            f'[network]\nmanagement = "192.168.{n}.0/24"\n'
            f'test = ["192.168.{n + 1}.0/24", "192.168.{n + 2}.0/24"]\n\n'
            f'[vms]\nnames = ["f1"]\ntest_nics = ["virtio", "vmxnet3"]\n')
        self.seed()
        return self.config

    def seed(self) -> None:
        """Hard-link the main lab's package cache (no download for a fresh state dir)."""
        src, dst = REPO / "var" / "cache", self.state / "cache"
        if src.is_dir() and not dst.exists():
            self.state.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src, dst, copy_function=os.link)


@dataclass(frozen=True)
class Run:
    """A finished (or killed) `lab` command."""

    rc: int
    output: str
    killed: bool

    def line(self, *needles: str) -> str:
        """The first output line containing any needle (else the last non-empty line)."""
        lines = [ln.strip() for ln in self.output.splitlines() if ln.strip()]
        for ln in lines:
            if any(n in ln for n in needles):
                return ln
        return lines[-1] if lines else "(no output)"

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.output


def lab_argv(config: Path, *args: str) -> list[str]:
    return [str(REPO / ".venv" / "bin" / "python"), "-m", "lab", "--config", str(config), *args]


def run_lab(config: Path, *args: str, timeout: float = LAB_TIMEOUT_S) -> Run:
    return run_until(lab_argv(config, *args), lambda _out: False, timeout)


def run_until(argv: list[str], kill_when: Callable[[str], bool],
              timeout: float = LAB_TIMEOUT_S) -> Run:
    """Run ``argv``; SIGKILL it (by its pid) as soon as ``kill_when(output so far)``."""
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(
        iter(lambda: proc.stdout.readline().decode(errors="replace"), "")),  # type: ignore[union-attr]
        daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    killed = False
    while proc.poll() is None:
        if not killed and kill_when("".join(chunks)):
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
        if time.monotonic() > deadline:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            chunks.append(f"\n(fault suite: killed after the {timeout:.0f}s deadline)\n")
            break
        time.sleep(0.01)
    reader.join(timeout=10)
    return Run(rc=proc.wait(), output="".join(chunks), killed=killed)


def start_lab(config: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(lab_argv(config, *args), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def finish(proc: subprocess.Popen[bytes], timeout: float = LAB_TIMEOUT_S) -> Run:
    out, _ = proc.communicate(timeout=timeout)
    return Run(rc=proc.returncode, output=out.decode(errors="replace"), killed=False)


# ---- leak checks -------------------------------------------------------------------


def libvirt_objects(lab: str) -> list[str]:
    """Domains and networks carrying lab ``lab``'s metadata, and its pool."""
    from lab import naming
    from lab.hypervisor import Hypervisor
    from lab.sandbox import libvirtd_answers

    if not libvirtd_answers():  # no libvirtd runs (no lab is up): none can hold an object
        return []
    with Hypervisor("qemu:///system") as hv:
        found = [f"domain {d.name()}" for d, _ in hv.owned_domains(lab)]
        found += [f"network {n.name()}" for n, _ in hv.owned_networks(lab)]
        if hv.pool(naming.pool_name(lab)) is not None:
            found.append(f"pool {naming.pool_name(lab)}")
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def processes(*needles: str) -> list[int]:
    """Pids whose command line contains every needle."""
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
            and all(n in _cmdline(int(p.name)) for n in needles)]


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def probe_qemus() -> list[int]:
    """KVM probe QEMUs whose lab process is gone (orphans: a live `lab up`'s probe is fine)."""
    return [pid for pid in processes("lab.probe=1") if "qemu" in _cmdline(pid).split(" ")[0]
            and "python" not in _cmdline(_ppid(pid))]


def lab_qemus(lab: str) -> list[int]:
    return [pid for pid in processes(f"guest={lab}-") if "qemu" in _cmdline(pid).split(" ")[0]]


def leaks(lab: str, paths: tuple[Path, ...] = ()) -> list[str]:
    found = libvirt_objects(lab)
    found += [f"qemu pid {p}" for p in lab_qemus(lab)]
    found += [f"probe qemu pid {p}" for p in probe_qemus()]
    found += [f"path {p}" for p in paths if p.exists()]
    return found


def wait_gone(check: Callable[[], list[int]], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def python_argv(code: str) -> list[str]:
    return [str(REPO / ".venv" / "bin" / "python"), "-c", code]


def scratch(prefix: str) -> Path:
    """A fresh directory under the suite's work dir."""
    WORK.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=WORK))


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
