"""The lab's own libvirtd + virtlogd, inside a network namespace the lab creates.

Used when no libvirtd answers on a local URI and the user is root (CI containers,
machines without systemd). One sandbox serves every lab on the host; the last
`lab down` that leaves it empty stops it. Guests' bridges, dnsmasq and QEMU all live in that
namespace, and so does the lab's host-side code (see :func:`lab.netns.enter`), so
guest traffic never leaves it. `lab down` stops exactly these daemons (by PID)
and removes the namespace.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lab import netns, no_thp
from lab.caps_cpu import QEMU_CAPS_CACHE, probing_cpu, release_when_serving
from lab.errors import LabFailure
from lab.wait import wait_for

LIBVIRT_SOCKET = Path("/run/libvirt/libvirt-sock")
DAEMON_START_TIMEOUT = 60.0
DAEMON_STOP_TIMEOUT = 20.0

#: Appended to the host's qemu.conf, seen only by the sandbox daemons (bind mount
#: in their private mount namespace). QEMU runs as root: on hosts where /dev/kvm
#: is root-only, libvirt otherwise sees KVM "enabled when probing but not usable"
#: and re-probes QEMU's capabilities on every domain start (a minute each time).
SANDBOX_QEMU_CONF = """
# --- driver-lab sandbox ---
user = "root"
group = "root"
remember_owner = 0
# Consoles and QEMU's own log are written by libvirt/QEMU directly, not through virtlogd:
# a virtlogd that dies then costs no running VM its console log (issue 15).
stdio_handler = "file"
"""


@dataclass(frozen=True)
class SandboxState:
    """What the lab started, as recorded in ``<state>/sandbox/state.json``."""

    netns: str
    libvirtd_pid: int
    virtlogd_pid: int


#: The sandbox is a host-wide resource: one libvirtd serves every lab on the host
#: (its socket path is fixed), so its record lives in /run, not in a lab's state dir.
RUN_DIR = Path("/run/driver-lab")
NETNS = "driverlab"


def libvirtd_answers(path: Path = LIBVIRT_SOCKET) -> bool:
    """Whether a libvirtd listens on the local system socket."""
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


class Sandbox:
    """Start, find and stop the lab's sandboxed libvirt daemons."""

    def __init__(self, run_dir: Path = RUN_DIR, netns_name: str = NETNS) -> None:
        self.netns = netns_name
        self.dir = run_dir
        self.state_file = self.dir / "sandbox.json"

    def state(self) -> SandboxState | None:
        """The recorded daemons, else the lab's own daemons found by their pid files
        (a `lab up` killed between starting them and recording them): adopted and recorded."""
        recorded = parse_state(self.state_file.read_text(errors="replace")) \
            if self.state_file.exists() else None
        return recorded if recorded is not None else self._adopt()

    def _adopt(self) -> SandboxState | None:
        pids = [_pid_in_file(self.dir / f"{name}.pid") for name in ("libvirtd", "virtlogd")]
        for name, pid in zip(("libvirtd", "virtlogd"), pids, strict=True):
            if pid is None or not _alive_in(pid, self.netns) or _comm(pid) != name:
                return None
        assert pids[0] is not None and pids[1] is not None
        state = SandboxState(netns=self.netns, libvirtd_pid=pids[0], virtlogd_pid=pids[1])
        self._record(state)
        return state

    def _record(self, state: SandboxState) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2))
        os.replace(tmp, self.state_file)

    def stray_daemons(self) -> list[int]:
        """libvirtd/virtlogd in our namespace that nobody recorded (never the QEMUs: a new
        libvirtd reattaches to running guests)."""
        return [pid for pid in netns.pids(self.netns)
                if _comm(pid) in ("libvirtd", "virtlogd") and not _gone(pid)]

    def running(self) -> bool:
        """True when our recorded daemons are alive inside our namespace."""
        st = self.state()
        return st is not None and all(
            _alive_in(pid, self.netns) for pid in (st.libvirtd_pid, st.virtlogd_pid))

    def start(self) -> SandboxState:
        """Create the namespace and start virtlogd + libvirtd in it."""
        if os.geteuid() != 0:
            raise LabFailure("no libvirtd answers and the lab's sandbox needs root",
                             hint="start libvirtd yourself, or run `sudo make lab-up`")
        if libvirtd_answers():
            raise LabFailure(f"a libvirtd already answers on {LIBVIRT_SOCKET}",
                             hint="set [lab] sandbox = \"never\" to use it")
        self.dir.mkdir(parents=True, exist_ok=True)
        netns.create(self.netns)
        for pid in self.stray_daemons():  # half-started by a killed `lab up`, not answering
            _terminate(pid)
        return self._launch(("virtlogd", "libvirtd"))

    def heal(self) -> list[str]:
        """Restart whichever recorded daemon died, in the namespace that is still there.

        The running QEMUs, networks and dnsmasq are kept: a new libvirtd reattaches to
        its running guests (their status is under /run/libvirt), and the guests do not
        depend on virtlogd (``stdio_handler = "file"``). Returns one line per restart.
        """
        st = self.state()
        if st is None or not netns.exists(self.netns):
            raise LabFailure("the lab's sandbox has no record to heal",
                             hint="run `lab down`, then `lab up`")
        dead = self.dead_daemons()
        if not dead:
            return []
        new = self._launch(tuple(dead), keep=st)
        return [f"{name} (pid {getattr(st, name + '_pid')}) was gone: restarted as pid "
                f"{getattr(new, name + '_pid')}" for name in dead]

    def dead_daemons(self) -> list[str]:
        """The recorded daemons that are gone (virtlogd first: it starts first)."""
        st = self.state()
        if st is None:
            return []
        return [name for name, pid in (("virtlogd", st.virtlogd_pid),
                                       ("libvirtd", st.libvirtd_pid))
                if not _alive_in(pid, self.netns) or _comm(pid) != name]

    def _launch(self, names: tuple[str, ...], keep: SandboxState | None = None
                ) -> SandboxState:
        """Start ``names`` (virtlogd before libvirtd) in the namespace; record the pids."""
        pids = {name: self.dir / f"{name}.pid" for name in ("libvirtd", "virtlogd")}
        for name in names:
            pids[name].unlink(missing_ok=True)
        script = ["set -e", *self._mounts()]
        # libvirtd on the CPU that probed QEMU's cached capabilities (lab.caps_cpu)
        cpu = probing_cpu(QEMU_CAPS_CACHE) if "libvirtd" in names else None
        pin = {"libvirtd": f"taskset -c {cpu} "} if cpu is not None else {}
        pin["libvirtd"] = pin.get("libvirtd", "") + no_thp.prefix()  # QEMU: no THP
        script += [f"{pin.get(name, '')}{name} -d -p {_q(pids[name])}" for name in names]
        try:
            subprocess.run(["ip", "netns", "exec", self.netns, "sh", "-c", "\n".join(script)],
                           check=True, capture_output=True, text=True, timeout=60)
        except subprocess.CalledProcessError as exc:
            raise LabFailure(f"starting {' and '.join(names)} in namespace {self.netns} "
                             f"failed: {exc.stderr.strip()}",
                             hint="see /var/log/libvirt/libvirtd.log") from None
        except subprocess.TimeoutExpired:
            raise LabFailure(f"starting {' and '.join(names)} in namespace {self.netns} "
                             "did not return within 60s",
                             hint="see /var/log/libvirt/libvirtd.log") from None
        if "libvirtd" in names:
            wait_for("libvirtd to answer on its socket",
                     lambda: True if libvirtd_answers() else None, DAEMON_START_TIMEOUT)
            if cpu is not None:
                release_when_serving("qemu:///system", _read_pid(pids["libvirtd"]),
                                     "the sandbox libvirtd", DAEMON_START_TIMEOUT)

        def pid_of(name: str, old: int | None) -> int:
            return _read_pid(pids[name]) if name in names or old is None else old

        state = SandboxState(
            netns=self.netns,
            libvirtd_pid=pid_of("libvirtd", keep.libvirtd_pid if keep else None),
            virtlogd_pid=pid_of("virtlogd", keep.virtlogd_pid if keep else None))
        self._record(state)
        return state

    def _mounts(self) -> list[str]:
        """Shell lines that give the daemons the sandbox's qemu.conf and no autostart nets
        (bind mounts in the private mount namespace of `ip netns exec`)."""
        lines: list[str] = []
        qemu_conf = Path("/etc/libvirt/qemu.conf")
        if qemu_conf.exists():
            private = self.dir / "qemu.conf"
            private.write_text(qemu_conf.read_text() + SANDBOX_QEMU_CONF)
            lines.append(f"mount --bind {_q(private)} {_q(qemu_conf)}")
        autostart = Path("/etc/libvirt/qemu/networks/autostart")
        if autostart.is_dir():
            # The host's autostart networks (Debian's NAT "default") stay out of the sandbox.
            empty = self.dir / "empty-autostart"
            empty.mkdir(exist_ok=True)
            lines.append(f"mount --bind {_q(empty)} {_q(autostart)}")
        return lines

    def stop(self) -> list[str]:
        """Stop the daemons and every straggler in our namespace; remove it.

        Returns one line per process stopped. Only processes inside the lab's own
        namespace are touched: the lab created it, so all of them are the lab's.
        """
        stopped: list[str] = []
        st = self.state()
        if st is not None:
            for name, pid in (("libvirtd", st.libvirtd_pid), ("virtlogd", st.virtlogd_pid)):
                if _alive_in(pid, self.netns):
                    _terminate(pid)
                    stopped.append(f"{name} (pid {pid})")
        stopped += stop_stragglers(self.netns, DAEMON_CHILDREN, _self_and_ancestors())
        netns.delete(self.netns)
        self.state_file.unlink(missing_ok=True)
        return stopped


def stop_stragglers(ns: str, ours: frozenset[str], spare: set[int]) -> list[str]:
    """Stop the processes left in namespace ``ns`` whose name is in ``ours`` (what the
    lab's daemons start); name the others, which are left running. One line each."""
    lines: list[str] = []
    others: dict[int, str] = {}
    for pid in netns.pids(ns):
        if pid in spare or _gone(pid):
            continue
        comm = _comm(pid)
        if comm in ours:
            _terminate(pid)
            lines.append(f"{comm} (pid {pid}, left in the namespace)")
        else:
            others[pid] = comm
    # a login shell of a session the stopped sshd served ends with it: only what is
    # still there after a moment is somebody else's
    for pid in wait_gone(list(others), OTHERS_GRACE_S):
        lines.append(f"nothing: {others[pid]} (pid {pid}) is not the lab's, left running")
    return lines


#: How long stop_stragglers lets other processes end after the lab's have stopped.
OTHERS_GRACE_S = 2.0


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """The pids still alive after ``timeout`` (an exiting process may take a moment)."""
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if not _gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if not _gone(p)]
    return alive


#: Processes the sandbox daemons start; only these are stopped when left behind.
DAEMON_CHILDREN = frozenset({"libvirtd", "virtlogd", "dnsmasq", "qemu-system-x86",
                             "libvirt_leasesh", "rpc-worker"})


def parse_state(text: str) -> SandboxState | None:
    """``sandbox.json``'s content; None when half-written or garbage (the pid files decide)."""
    try:
        data = json.loads(text)
        return SandboxState(netns=str(data["netns"]), libvirtd_pid=int(data["libvirtd_pid"]),
                            virtlogd_pid=int(data["virtlogd_pid"]))
    except (ValueError, KeyError, TypeError):
        return None


def _pid_in_file(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _q(path: Path) -> str:
    """``path`` as one word of the start script (paths come from the state dir)."""
    return shlex.quote(str(path))


def _self_and_ancestors() -> set[int]:
    pids = set()
    pid = os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return pids


def _read_pid(path: Path) -> int:
    text = wait_for(f"pid file {path}", lambda: path.read_text().strip() or None
                    if path.exists() else None, 10)
    return int(text)


def _alive_in(pid: int, ns: str) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(netns.NETNS_DIR / ns).st_ino
    except OSError:
        return False


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _gone(pid: int) -> bool:
    """Exited (or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _terminate(pid: int) -> None:
    """SIGTERM, wait up to DAEMON_STOP_TIMEOUT, then SIGKILL."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + DAEMON_STOP_TIMEOUT
    while time.monotonic() < deadline:
        if _gone(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
