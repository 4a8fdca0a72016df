"""Choosing KVM or software emulation (TCG), with a cached probe boot.

On some hosts /dev/kvm exists but a KVM guest hangs. `auto` therefore boots the
micro guest's kernel once with KVM and a command line that powers off as soon as
userspace runs; if it does not finish within the deadline, KVM does not really
work and the lab uses TCG. The answer is cached per host kernel, boot and QEMU binary, in
the lab's state dir and, for every other lab on this host, in /run/driver-lab.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.config import Acceleration
from lab.errors import LabFailure
from lab.inventory import write_text_atomic

PROBE_TIMEOUT = 20.0
PROBE_MARKER = "probe boot reached userspace"
QEMU = "qemu-system-x86_64"
PR_SET_PDEATHSIG = 1
#: loaded before any fork: the child between fork and exec must not dlopen
_LIBC = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class CachedChoice:
    """The acceleration cache file: the probe's answer for one host kernel + QEMU."""

    key: str
    choice: Acceleration
    reason: str


def parse_cache(text: str) -> CachedChoice | None:
    """The cache's content; None when it is half-written or not a cache at all."""
    try:
        data = json.loads(text)
        return CachedChoice(key=str(data["key"]), choice=Acceleration(data["choice"]),
                            reason=str(data["reason"]))
    except (ValueError, KeyError, TypeError):
        return None


def _die_with_parent() -> None:
    """In the probe QEMU before exec: SIGKILL it when the lab process dies (even by
    SIGKILL), so an interrupted `lab up` never leaves a spinning probe guest."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def domain_type(accel: Acceleration) -> str:
    """libvirt domain type for a resolved acceleration."""
    return "kvm" if accel is Acceleration.KVM else "qemu"


def probe_kvm(kernel: Path, initrd: Path, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """Boot ``kernel`` under KVM with ``lab.probe=1``; True when it reached userspace."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is absent or not accessible"
    qemu = shutil.which(QEMU)
    if qemu is None:
        raise LabFailure(f"{QEMU} is not installed", hint="run `make setup`")
    cmd = [qemu, "-accel", "kvm", "-M", "q35", "-m", "128", "-nodefaults", "-display", "none",
           "-no-reboot", "-serial", "stdio", "-kernel", str(kernel), "-initrd", str(initrd),
           "-append", "console=ttyS0 lab.probe=1 quiet panic=-1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=_die_with_parent)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # the probe QEMU is ours: stop it by its own handle
        proc.communicate(timeout=10)
        return False, f"a KVM guest did not reach userspace within {timeout:.0f}s (it hangs)"
    text = out.decode(errors="replace")
    if PROBE_MARKER in text:
        return True, "a KVM probe guest booted to userspace"
    return False, f"the KVM probe guest failed: {text.strip()[-300:]}"


def resolve(requested: Acceleration, cache_file: Path, kernel: Path, initrd: Path,
            say: Callable[[str], None], host_cache: Path | None = None) -> Acceleration:
    """Resolve ``auto`` (probing once, then from the cache); explicit values pass through.

    ``host_cache`` is the same answer shared by every lab on this host (under /run: gone
    at the next boot): a new lab reuses it instead of probing for another 20 s."""
    if requested is not Acceleration.AUTO:
        say(f"acceleration: {requested.value} (from lab.toml)")
        return requested
    key = _cache_key()
    cached = _read_cache(cache_file, key, say)
    if cached is not None:
        say(f"acceleration: {cached.choice.value} (auto, cached: {cached.reason})")
        return cached.choice
    shared = _read_cache(host_cache, key, say) if host_cache is not None else None
    if shared is not None:
        _write_cache(cache_file, shared)
        say(f"acceleration: {shared.choice.value} (auto, this host's answer in "
            f"{host_cache}: {shared.reason})")
        return shared.choice
    say(f"acceleration: probing KVM with a probe boot (deadline {PROBE_TIMEOUT:.0f}s)")
    ok, reason = probe_kvm(kernel, initrd)
    answer = CachedChoice(key, Acceleration.KVM if ok else Acceleration.TCG, reason)
    _write_cache(cache_file, answer)
    if host_cache is not None:
        try:  # best effort: a lab that cannot write /run probes again next time
            host_cache.parent.mkdir(parents=True, exist_ok=True)
            _write_cache(host_cache, answer)
        except OSError as exc:
            say(f"acceleration: not shared with other labs ({host_cache}: {exc.strerror})")
    say(f"acceleration: {answer.choice.value} (auto: {reason})")
    return answer.choice


def _read_cache(path: Path, key: str, say: Callable[[str], None]) -> CachedChoice | None:
    """The cached answer in ``path`` when it is for ``key``; None otherwise (said why
    when the file is there but unreadable)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    cached = parse_cache(text)
    if cached is None:
        say(f"acceleration: ignoring {path} (unreadable: half-written or not a cache); "
            "probing again")
        return None
    return cached if cached.key == key else None


def _write_cache(path: Path, answer: CachedChoice) -> None:
    write_text_atomic(path, json.dumps({"key": answer.key, "choice": answer.choice.value,
                                        "reason": answer.reason}))


def _cache_key() -> str:
    """The host kernel (its release and this boot: KVM's state may change at a reboot)
    and the QEMU binary."""
    qemu = shutil.which(QEMU) or ""
    stamp = os.stat(qemu).st_mtime if qemu else 0
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "?"
    return f"{platform.release()}|{boot}|{qemu}|{stamp}"
