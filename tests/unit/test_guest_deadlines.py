"""Every SSH/SFTP operation on a guest has a hard deadline, even when the guest stops answering.

A real dropbear on loopback stands in for the guest (its own mount namespace
gives it a private ``/root`` holding the lab's authorized key). "Stops
answering" is the real thing: SIGSTOP of every dropbear process, which is what a
panicked or hung guest looks like from the host (TCP still accepted by the
kernel, nothing answered). Each test checks the lab's Guest raises the right
error within its deadline plus a small margin.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab import keys
from lab.errors import CommandTimeout, DriverCrash, GuestUnreachable
from lab.guest import Guest, GuestAddress
from lab.wait import crash_watch
from tests import proctree

#: How late past its deadline an operation may end (watchdog grace + teardown).
MARGIN = 2.5

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("dropbear") is None or shutil.which("unshare") is None,
    reason="needs root (a private mount namespace for dropbear's /root), dropbear and unshare")


@dataclass
class FakeGuest:
    addr: GuestAddress
    proc: subprocess.Popen[bytes]
    home: Path

    def pids(self) -> list[int]:
        """The listener and every per-connection dropbear it forked (by parent pid)."""
        return proctree.tree(self.proc.pid)

    def signal(self, sig: signal.Signals) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):  # a connection that just ended
                os.kill(pid, sig)

    def freeze(self) -> None:
        self.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def guest_sshd(tmp_path: Path) -> Iterator[FakeGuest]:
    lab_keys = keys.ensure_keys(tmp_path / "keys")
    home = tmp_path / "root"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    (home / ".ssh" / "authorized_keys").write_text(lab_keys.client_public + "\n")
    os.chmod(home, 0o700)
    os.chmod(home / ".ssh" / "authorized_keys", 0o600)
    port = _free_port()
    script = ('mount --bind "$1" /root && exec dropbear -F -E -s -p "127.0.0.1:$2" -r "$3" '
              '-P "$4"')
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(home),
         str(port), str(lab_keys.host_key_dropbear), str(tmp_path / "dropbear.pid")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "dropbear.log", "wb"))  # noqa: SIM115 (closed with the process)
    addr = GuestAddress(name="fake", host="127.0.0.1", subnet="127.0.0.0/8", bridge="lo",
                        key_file=lab_keys.client_private, host_key=lab_keys.host_public,
                        port=port)
    guest = FakeGuest(addr, proc, home)
    try:
        deadline = time.monotonic() + 10
        while not _answers(port):
            assert time.monotonic() < deadline, (tmp_path / "dropbear.log").read_text()
            time.sleep(0.05)
        yield guest
    finally:  # every dropbear this fixture started (listener and sessions), by pid
        guest.signal(signal.SIGKILL)
        proc.wait(10)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_a_command_runs_and_the_host_key_is_pinned(guest_sshd: FakeGuest) -> None:
    with Guest(guest_sshd.addr, connect_timeout=3) as guest:
        assert guest.run("echo hello", timeout=10).stdout == "hello\n"


def test_a_command_in_flight_when_the_guest_stops_answering(guest_sshd: FakeGuest) -> None:
    with Guest(guest_sshd.addr, connect_timeout=3) as guest:
        guest.run("true", timeout=10)  # connected, session open
        threading.Timer(0.5, guest_sshd.freeze).start()
        t0 = time.monotonic()
        with pytest.raises(CommandTimeout):
            guest.run("sleep 30", timeout=3)
        assert time.monotonic() - t0 < 3 + MARGIN


def test_exec_request_to_a_frozen_guest_has_a_deadline(guest_sshd: FakeGuest) -> None:
    # The hang seen in the field: the guest dies between two commands, the next
    # exec request is never answered (paramiko waits for that answer forever).
    with Guest(guest_sshd.addr, connect_timeout=3) as guest:
        guest.run("true", timeout=10)
        guest_sshd.freeze()
        t0 = time.monotonic()
        with pytest.raises(CommandTimeout):
            guest.run("true", timeout=2)
        assert time.monotonic() - t0 < 2 + MARGIN


def test_sftp_put_to_a_guest_that_stops_answering(guest_sshd: FakeGuest,
                                                   tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        fh.truncate(256 << 20)  # sparse: cheap here, still 256 MiB on the wire
    remote = tmp_path / "uploaded.bin"

    def freeze_once_copying() -> None:
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if remote.exists() and remote.stat().st_size > 0:
                break
            time.sleep(0.005)
        guest_sshd.freeze()

    with Guest(guest_sshd.addr, connect_timeout=3) as guest:
        watcher = threading.Thread(target=freeze_once_copying)
        watcher.start()
        t0 = time.monotonic()
        with pytest.raises(GuestUnreachable, match="did not finish within 4s"):
            guest.put(big, str(remote), timeout=4)
        took = time.monotonic() - t0
        watcher.join()
    assert remote.stat().st_size < big.stat().st_size, "the copy finished before the freeze"
    assert took < 4 + MARGIN


def test_sftp_get_from_a_frozen_guest(guest_sshd: FakeGuest, tmp_path: Path) -> None:
    with Guest(guest_sshd.addr, connect_timeout=3) as guest:
        guest.run("true", timeout=10)
        guest_sshd.freeze()
        t0 = time.monotonic()
        with pytest.raises(GuestUnreachable):
            guest.get("/etc/hostname", tmp_path / "got", timeout=3)
        assert time.monotonic() - t0 < 3 + MARGIN


def test_the_crashed_event_aborts_a_command_at_once(guest_sshd: FakeGuest) -> None:
    crashed = threading.Event()

    def crash() -> None:  # as the libvirt lifecycle watcher does on the crashed event
        guest_sshd.freeze()
        crashed.set()

    with Guest(guest_sshd.addr, connect_timeout=3) as guest, crash_watch(crashed):
        guest.run("true", timeout=10)
        threading.Timer(0.5, crash).start()
        t0 = time.monotonic()
        with pytest.raises(DriverCrash):
            guest.run("sleep 60", timeout=60)
        assert time.monotonic() - t0 < 0.5 + 1.5


def test_a_guest_that_answers_again_gets_a_fresh_connection(guest_sshd: FakeGuest) -> None:
    with Guest(guest_sshd.addr, connect_timeout=3) as guest:
        guest.run("true", timeout=10)
        guest_sshd.freeze()
        with pytest.raises(CommandTimeout):
            guest.run("true", timeout=1)
        guest_sshd.thaw()
        assert guest.run("echo back", timeout=10).stdout == "back\n"


def test_connecting_to_a_frozen_guest_is_bounded_by_the_command_deadline(
        guest_sshd: FakeGuest) -> None:
    # TCP is still accepted by the kernel; the SSH banner never comes: a connection
    # failure (GuestUnreachable), within the command's deadline, not the connect timeout.
    guest_sshd.freeze()
    with Guest(guest_sshd.addr, connect_timeout=10) as guest:
        t0 = time.monotonic()
        with pytest.raises(GuestUnreachable, match="cannot connect"):
            guest.run("true", timeout=2)
        assert time.monotonic() - t0 < 2 + MARGIN
