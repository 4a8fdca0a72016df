"""Boot the Debian cloud kernel under QEMU with a hand-built initramfs that runs
the Linux twins smoke scenarios (drivers/linux/smoke-init.sh).

No lab, no libvirt, no host network: QEMU gets ``-nic none`` and two virtio
NICs without any backend; all traffic stays inside the guest (lo, veth, dummy).
The only host-side channel besides the serial console is a QMP unix socket,
used to hot-unplug a test NIC.
"""

from __future__ import annotations

import gzip
import json
import os
import queue
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lab import l2probe, netns

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "var" / "drivers" / "linux"
CACHE = REPO / "var" / "cache" / "linux-twins"
INIT_SCRIPT = REPO / "drivers" / "linux" / "smoke-init.sh"
#: The L2 echo request the host probe (lab/l2probe.py) builds, sent unchanged by
#: `l2probe <if> --frame` in the guest (it only fills in the MACs): the Linux twin's
#: answer to it must satisfy the host probe's parser.
HOST_PROBE_SEQ = 0x2B1DCAFE
HOST_PROBE_PAYLOAD = bytes(range(7, 7 + 40))
QEMU = "qemu-system-x86_64"
BASE_MODULES = (
    "net/core/failover", "drivers/net/net_failover", "drivers/virtio/virtio",
    "drivers/virtio/virtio_ring", "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci_modern_dev", "drivers/virtio/virtio_pci",
    "drivers/net/virtio_net", "drivers/net/dummy", "drivers/net/veth",
)
#: MACs of the two QEMU test NICs (no backend); tnic1 is the one hot-unplugged.
TEST_NICS = (("tnic0", "52:54:00:00:00:11"), ("tnic1", "52:54:00:00:00:12"))


class SmokeSetupError(RuntimeError):
    """The smoke harness (not the drivers) could not be prepared."""


def run(cmd: list[str], *, cwd: Path = REPO, timeout: float = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SmokeSetupError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                              f"{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def kernel_abi() -> str:
    return run(["bash", "drivers/linux/kernel-abi.sh"]).strip()


def kernel_root(abi: str) -> Path:
    """The extracted linux-image-<abi> package (downloaded once into var/cache)."""
    root = CACHE / f"linux-image-{abi}"
    if (root / "boot" / f"vmlinuz-{abi}").exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    dl = CACHE / "download"
    shutil.rmtree(dl, ignore_errors=True)
    dl.mkdir()
    dl.chmod(0o777)  # apt-get download drops privileges to _apt
    run(netns.on_host_network(["apt-get", "download", "-q", f"linux-image-{abi}"]), cwd=dl)
    debs = sorted(dl.glob(f"linux-image-{abi}_*.deb"))
    if not debs:
        raise SmokeSetupError(f"apt-get download produced no linux-image-{abi} .deb")
    tmp = CACHE / f".extract-{abi}"
    shutil.rmtree(tmp, ignore_errors=True)
    run(["dpkg-deb", "-x", str(debs[-1]), str(tmp)])
    tmp.rename(root)
    shutil.rmtree(dl, ignore_errors=True)
    return root


# ---- initramfs (cpio newc written directly: no root needed for /dev/console) ----


class Cpio:
    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._ino = 1
        self._names: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
               ) -> None:
        if name in self._names:
            return
        self._names.add(name)
        fields = [self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(name) + 1, 0]
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        blob = header + name.encode() + b"\0"
        blob += b"\0" * (-len(blob) % 4) + data + b"\0" * (-len(data) % 4)
        self._chunks.append(blob)
        self._ino += 1

    def dir(self, name: str) -> None:
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            self._entry("/".join(parts[:i]), stat.S_IFDIR | 0o755)

    def _parent(self, name: str) -> None:
        if "/" in name:
            self.dir(name.rsplit("/", 1)[0])

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._parent(name)
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._parent(name)
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def bytes(self) -> bytes:
        trailer = Cpio()
        trailer._entry("TRAILER!!!", 0)
        return b"".join(self._chunks) + trailer._chunks[0]


def _add_binary_with_libs(cpio: Cpio, path: str) -> None:
    real = os.path.realpath(path)
    cpio.file(path.lstrip("/"), Path(real).read_bytes(), 0o755)
    for line in run(["ldd", real]).splitlines():
        parts = line.split()
        lib = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if lib.startswith("/"):
            cpio.file(lib.lstrip("/"), Path(os.path.realpath(lib)).read_bytes(), 0o755)


def build_initramfs(abi: str, root: Path) -> Path:
    cpio = Cpio()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp",
              "modules", "lab"):
        cpio.dir(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3)
    busybox = Path("/bin/busybox")
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    for applet in run([str(busybox), "--list"]).split():
        if applet not in ("busybox", "ip"):  # iproute2's ip: veth/dummy link types
            cpio.symlink(f"bin/{applet}", "busybox")
    _add_binary_with_libs(cpio, "/usr/sbin/ip" if Path("/usr/sbin/ip").exists() else "/bin/ip")
    kdir = root / "lib" / "modules" / abi / "kernel"
    for mod in BASE_MODULES:
        name = mod.rsplit("/", 1)[1]
        cpio.file(f"modules/{name}.ko", (kdir / f"{mod}.ko").read_bytes())
    for ko in ("kecho.ko", "labtdi.ko"):
        cpio.file(f"lab/{ko}", (OUT / ko).read_bytes())
    cpio.file("bin/l2probe", (OUT / "l2probe").read_bytes(), 0o755)
    frame = l2probe.build_request("ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", HOST_PROBE_SEQ,
                                  HOST_PROBE_PAYLOAD)
    cpio.file("lab/probe-frame.bin", frame)
    cpio.file("init", INIT_SCRIPT.read_bytes(), 0o755)
    out = CACHE / "smoke-initrd.cpio.gz"
    out.write_bytes(gzip.compress(cpio.bytes(), compresslevel=1))
    return out


@dataclass(frozen=True)
class GuestImage:
    abi: str
    kernel: Path
    initrd: Path


def prepare_image() -> GuestImage:
    run(["make", "-s", "drivers-linux"])
    abi = kernel_abi()
    built_for = (OUT / "kernel-abi").read_text().strip()
    if built_for != abi:
        raise SmokeSetupError(f"modules built for {built_for}, guest kernel is {abi}")
    root = kernel_root(abi)
    return GuestImage(abi, root / "boot" / f"vmlinuz-{abi}", build_initramfs(abi, root))


# ---- QEMU run --------------------------------------------------------------


@dataclass
class GuestRun:
    """What one boot printed on its serial console."""

    scenario: str
    lines: list[str] = field(default_factory=list)
    ended: str = "running"  # poweroff | panic | deadline
    seconds: float = 0.0

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def results(self, key: str) -> list[list[str]]:
        """The values of every ``@@LAB <key> ...`` line (kernel text before the marker on
        the same console line is skipped, as in :meth:`block`)."""
        out = []
        for line in self.lines:
            parts = line[line.find("@@LAB"):].split() if "@@LAB" in line else []
            if len(parts) >= 2 and parts[0] == "@@LAB" and parts[1] == key:
                out.append(parts[2:])
        return out

    def result(self, key: str, *first: str) -> list[str]:
        """The single ``@@LAB <key> <first...> ...`` line's remaining values."""
        hits = [v[len(first):] for v in self.results(key) if tuple(v[: len(first)]) == first]
        assert len(hits) == 1, f"expected one '@@LAB {key} {' '.join(first)}', got {hits}\n" \
            + self.tail()
        return hits[0]

    def block(self, name: str) -> list[str]:
        """The lines between ``@@BEGIN name`` and ``@@END name``. A marker may share its
        console line with kernel output (printk and the init's echo interleave on the
        serial port), so a line holding the marker counts."""
        begin = [i for i, line in enumerate(self.lines) if f"@@BEGIN {name}" in line]
        end = [i for i, line in enumerate(self.lines) if f"@@END {name}" in line]
        after = [i for i in end if begin and i > begin[0]]
        if not begin or not after:
            raise AssertionError(f"no block {name!r} on the console\n{self.tail()}")
        return self.lines[begin[0] + 1 : after[0]]

    def tail(self, n: int = 60) -> str:
        return f"--- last {n} console lines of {self.scenario} ({self.ended}) ---\n" + \
            "\n".join(self.lines[-n:])


def _qmp(sock_path: Path, command: dict[str, object], timeout: float = 10) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        f = s.makefile("rwb")
        json.loads(f.readline())  # greeting
        for cmd in ({"execute": "qmp_capabilities"}, command):
            f.write(json.dumps(cmd).encode() + b"\n")
            f.flush()
            while True:
                reply = json.loads(f.readline())
                if "error" in reply:
                    raise SmokeSetupError(f"QMP {cmd} failed: {reply['error']}")
                if "return" in reply:
                    break


def _reader(stream: object, lines: queue.Queue[str | None]) -> None:
    assert hasattr(stream, "readline")
    for raw in iter(stream.readline, b""):
        lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
    lines.put(None)


def boot(image: GuestImage, scenario: str, *, deadline: float = 60,
         extra_append: str = "") -> GuestRun:
    """Boot one scenario; kill QEMU (our own PID only) at the deadline."""
    CACHE.mkdir(parents=True, exist_ok=True)
    qmp_path = CACHE / f"qmp-{os.getpid()}-{scenario}.sock"
    qmp_path.unlink(missing_ok=True)
    append = (f"console=ttyS0 quiet loglevel=4 panic=-1 oops=panic "
              f"lab.scenario={scenario} {extra_append}").strip()
    cmd = [QEMU, "-accel", "tcg", "-m", "512", "-smp", "2", "-nographic", "-no-reboot",
           "-nic", "none", "-kernel", str(image.kernel), "-initrd", str(image.initrd),
           "-append", append, "-qmp", f"unix:{qmp_path},server=on,wait=off"]
    for dev_id, mac in TEST_NICS:
        cmd += ["-device", f"virtio-net-pci,id={dev_id},mac={mac}"]
    result = GuestRun(scenario)
    actions: dict[str, Callable[[list[str]], None]] = {
        "unplug-request": lambda v: _qmp(qmp_path, {"execute": "device_del",
                                                    "arguments": {"id": v[0]}}),
    }
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True)
    reader.start()
    until = start + deadline
    try:
        for line in _lines_until(lines, until):
            result.lines.append(line)
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "@@LAB" and parts[1] in actions:
                actions[parts[1]](parts[2:])
        # The console closed (QEMU exiting) or the deadline passed.
        try:
            proc.wait(timeout=max(0.1, min(10.0, until - time.monotonic())))
        except subprocess.TimeoutExpired:
            result.ended = "deadline"
    finally:
        if proc.poll() is None:
            proc.kill()  # only the QEMU this function started, by its PID
            result.ended = "deadline"
            proc.wait(timeout=10)
        reader.join(timeout=5)
        qmp_path.unlink(missing_ok=True)
    result.seconds = time.monotonic() - start
    if result.ended != "deadline":
        result.ended = "panic" if "Kernel panic - not syncing" in result.text else "poweroff"
    return result


def _lines_until(lines: queue.Queue[str | None], until: float) -> Iterator[str]:
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            return
        if line is None:
            return
        yield line
