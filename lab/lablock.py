"""One lock per lab: `lab up`, `lab down`, `lab images` and `lab selftest` on one lab run
one at a time.

The lock is an flock(2) on ``<state>/lab.lock``: the kernel drops it when its holder
exits, SIGKILL included, so a dead holder never blocks anyone. The holder writes its
pid and command into the file; a command that finds the lock taken waits up to a
deadline, saying every few seconds whom it waits for, then fails naming the holder.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lab import identity
from lab.config import LabConfig
from lab.errors import LabBusy

#: How long a second command waits for the first (a 4-VM `lab up` under TCG takes minutes).
LOCK_WAIT_S = 900.0
SAY_EVERY_S = 15.0
POLL_S = 0.5


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a lab's lock, as written in the lock file."""

    pid: int
    command: str

    def describe(self) -> str:
        return f"`lab {self.command}` (pid {self.pid})" if self.pid else "another command"


def parse_holder(text: str) -> Holder:
    """The holder recorded in a lock file (pid 0 when unreadable or half-written)."""
    try:
        data = json.loads(text)
        return Holder(pid=int(data["pid"]), command=str(data["command"]))
    except (ValueError, KeyError, TypeError):
        return Holder(pid=0, command="?")


def lock_path(state_dir: Path) -> Path:
    return state_dir / "lab.lock"


def read_holder(state_dir: Path) -> Holder:
    try:
        return parse_holder(lock_path(state_dir).read_text(errors="replace"))
    except OSError:
        return Holder(pid=0, command="?")


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait(fd: int, lab: str, state_dir: Path, wait_s: float, say: Callable[[str], None]) -> None:
    deadline = time.monotonic() + wait_s
    next_say = time.monotonic()
    while not _try_lock(fd):
        now = time.monotonic()
        holder = read_holder(state_dir)
        if now >= deadline:
            raise LabBusy(f"lab {lab} is busy: {holder.describe()} holds {lock_path(state_dir)}",
                          hint="wait for it to finish (or stop that process), then retry")
        if now >= next_say:
            say(f"lab {lab} is busy: waiting for {holder.describe()} "
                f"({deadline - now:.0f}s left)")
            next_say = now + SAY_EVERY_S
        time.sleep(POLL_S)


@contextmanager
def lab_lock(lab: str, state_dir: Path, command: str, say: Callable[[str], None],
             wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold lab ``lab``'s lock for the block (waiting up to ``wait_s`` for it)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(state_dir), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        _wait(fd, lab, state_dir, wait_s, say)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command}).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


@contextmanager
def exclusive(config: LabConfig, command: str, say: Callable[[str], None]) -> Iterator[None]:
    """The lab's lock, then its claim on the state dir (refused if another config has it)."""
    with lab_lock(config.lab.name, config.state_dir, command, say):
        identity.claim(config.lab.name, config.path, config.state_dir)
        yield


# ---- the shared sandbox ------------------------------------------------------------
#
# One sandbox serves every lab, so its start and stop are host-wide: ``start.lock``
# (exclusive) serializes starting and stopping it, and every command that uses it holds
# ``users.lock`` shared until it exits; `lab down` stops the sandbox only if it can take
# ``users.lock`` exclusively at once (no other lab command is using it).

SANDBOX_WAIT_S = 300.0
_users_fd: dict[Path, int] = {}


def _flock_within(fd: int, op: int, what: str, seconds: float,
                  say: Callable[[str], None]) -> None:
    deadline = time.monotonic() + seconds
    next_say = time.monotonic() + 2
    while True:
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            now = time.monotonic()
            if now >= deadline:
                raise LabBusy(f"{what}: still busy after {seconds:.0f}s",
                              hint="another lab command is starting or stopping the "
                                   "sandbox; retry when it has finished") from None
            if now >= next_say:
                say(f"{what}: waiting ({deadline - now:.0f}s left)")
                next_say = now + SAY_EVERY_S
            time.sleep(POLL_S)


def use_sandbox(run_dir: Path, say: Callable[[str], None]) -> None:
    """Count this process as a sandbox user until it exits (shared lock, taken once)."""
    if run_dir in _users_fd:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / "users.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    _flock_within(fd, fcntl.LOCK_SH, "the sandbox is being stopped", SANDBOX_WAIT_S, say)
    _users_fd[run_dir] = fd


@contextmanager
def sandbox_changes(run_dir: Path, say: Callable[[str], None]) -> Iterator[None]:
    """Exclusive right to start or stop the sandbox for the block."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / "start.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        _flock_within(fd, fcntl.LOCK_EX, "another command starts or stops the sandbox",
                      SANDBOX_WAIT_S, say)
        yield
    finally:
        os.close(fd)


def sole_sandbox_user(run_dir: Path) -> bool:
    """True when no other process uses the sandbox (this one keeps it exclusively then;
    call it only when done with the sandbox: a failed try drops this process's share)."""
    fd = _users_fd.get(run_dir)
    if fd is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / "users.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        _users_fd[run_dir] = fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
