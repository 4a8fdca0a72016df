"""SSH access to a lab guest: a fabric Connection with the lab's key and a pinned host key.

:class:`Guest` is the lab's :class:`~lab.guests.base.Shell`: it runs command
strings in the guest's login shell (whatever the guest kind's shell is) and
knows nothing about the guest OS. The guest's host key is known before the guest
boots, so the connection rejects any other key instead of trusting it on first
use. Connections are lazy and closing is idempotent; every read has a deadline.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import paramiko
from fabric import Config, Connection

from lab import netns
from lab.errors import CommandFailed, CommandTimeout, GuestUnreachable, LabFailure
from lab.guests.base import CommandResult
from lab.inventory import Inventory, VmEntry
from lab.wait import wait_for

CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class GuestAddress:
    """How to reach one guest: its management address and the bridge in front of it."""

    name: str
    host: str
    subnet: str  # the management subnet, e.g. 192.168.213.0/24
    bridge: str  # host bridge of the management network
    key_file: Path
    host_key: str  # "ssh-ed25519 AAAA..."
    user: str = "root"

    @classmethod
    def of(cls, inv: Inventory, vm: VmEntry) -> GuestAddress:
        """The management address of an inventory VM."""
        return cls(name=vm.name, host=vm.mgmt.address, subnet=inv.management_subnet,
                   bridge=vm.mgmt.bridge, key_file=Path(inv.key_file), host_key=inv.host_key,
                   user=inv.login_user)


def check_route(addr: GuestAddress) -> None:
    """Refuse to send anything unless the guest sits behind a lab bridge right here.

    Guest subnets are private ranges that must only ever be reached inside the
    lab's own network namespace; without the bridge, packets would follow the
    host's default route instead.
    """
    if ipaddress.ip_address(addr.host) not in ipaddress.ip_network(addr.subnet):
        raise LabFailure(f"{addr.name}: {addr.host} is outside the lab subnet {addr.subnet}")
    if not netns.has_interface(addr.bridge):
        raise LabFailure(
            f"{addr.name}: the lab bridge {addr.bridge} is not in this network namespace; "
            f"refusing to connect to {addr.host}",
            hint="run through `lab ...` or the pytest plugin, which enter the lab's namespace")


def _drain(chan: paramiko.Channel, deadline: float) -> tuple[str, str] | None:
    """Read a channel until its command exits; None when ``deadline`` passes first."""
    out: list[bytes] = []
    err: list[bytes] = []
    while not (chan.exit_status_ready() and not chan.recv_ready()
               and not chan.recv_stderr_ready()):
        if time.monotonic() > deadline:
            return None
        got = False
        if chan.recv_ready():
            out.append(chan.recv(65536))
            got = True
        if chan.recv_stderr_ready():
            err.append(chan.recv_stderr(65536))
            got = True
        if not got:
            chan.status_event.wait(0.05)
    return (b"".join(out).decode(errors="replace"), b"".join(err).decode(errors="replace"))


class SshCommand:
    """A command running on its own SSH channel (a RunningCommand)."""

    def __init__(self, guest: Guest, command: str, chan: paramiko.Channel) -> None:
        self.guest = guest
        self.command = command
        self.chan = chan

    def finished(self) -> bool:
        try:
            return bool(self.chan.exit_status_ready())
        except (OSError, EOFError, paramiko.SSHException):
            return False

    def wait(self, timeout: float) -> CommandResult:
        try:
            got = _drain(self.chan, time.monotonic() + timeout)
            if got is None:
                raise CommandTimeout(self.guest.name, self.command, timeout)
            code = self.chan.recv_exit_status()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.guest.close()
            raise GuestUnreachable(f"{self.guest.name}: ssh {self.command!r} failed: "
                                   f"{exc or type(exc).__name__}") from exc
        self.close()
        return CommandResult(self.command, code, *got)

    def close(self) -> None:
        self.chan.close()


def isolated_config() -> Config:
    """A fabric configuration that reads no file: no ``~/.ssh/config``, no
    ``/etc/ssh/ssh_config``, no ``~/.fabric.yaml``. A user's ProxyCommand, ProxyJump,
    gateway, HostName or Port must never apply to a guest connection (it would run
    a command, as root for a sandboxed lab, and carry the session elsewhere)."""
    return Config(lazy=True, ssh_config=paramiko.SSHConfig())


class Guest:
    """One guest over SSH (context manager; ``close`` may be called any number of times)."""

    def __init__(self, addr: GuestAddress, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.addr = addr
        self.connect_timeout = connect_timeout
        self._conn: Connection | None = None

    @property
    def name(self) -> str:
        return self.addr.name

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> Connection:
        check_route(self.addr)
        conn = Connection(
            self.addr.host, user=self.addr.user, port=22, config=isolated_config(),
            gateway=False, connect_timeout=self.connect_timeout,
            connect_kwargs={"key_filename": str(self.addr.key_file),
                            "look_for_keys": False, "allow_agent": False,
                            "banner_timeout": self.connect_timeout,
                            "auth_timeout": self.connect_timeout})
        client = conn.client
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        kind, blob = self.addr.host_key.split()[:2]
        client.get_host_keys().add(self.addr.host, kind,
                                   paramiko.PKey.from_type_string(kind, base64.b64decode(blob)))
        try:
            conn.open()
        except (OSError, paramiko.SSHException) as exc:
            raise GuestUnreachable(f"{self.name}: cannot connect to {self.addr.host}:22: "
                                   f"{exc}") from exc
        # A guest that crashed or hangs must not block a channel open forever
        # (paramiko waits an hour by default); keepalives notice a dead peer.
        conn.transport.channel_timeout = self.connect_timeout
        conn.transport.set_keepalive(5)
        return conn

    def start(self, command: str) -> SshCommand:
        """Start ``command`` on its own channel and return at once."""
        try:
            chan = self.connection.transport.open_session(timeout=self.connect_timeout)
            chan.settimeout(1.0)
            chan.exec_command(command)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            raise GuestUnreachable(f"{self.name}: ssh {command!r} failed: "
                                   f"{exc or type(exc).__name__}") from exc
        return SshCommand(self, command, chan)

    def run(self, command: str, timeout: float = 60.0, check: bool = True) -> CommandResult:
        """Run ``command`` in the guest's shell; ``check`` makes a non-zero exit CommandFailed.

        The deadline is hard: every read on the SSH channel times out, so a guest
        that crashed or hangs mid-command cannot block the caller. Past it the
        connection is dropped and CommandTimeout says which command it was.
        """
        running = self.start(command)
        try:
            result = running.wait(timeout)
        except CommandTimeout:
            running.close()
            self.close()
            raise
        if check and not result.ok:
            raise CommandFailed(self.name, command, result.exit_code, result.stderr)
        return result

    def put(self, local: Path, remote: str) -> None:
        """Copy a file into the guest (SFTP)."""
        try:
            self.connection.put(str(local), remote)
        except (OSError, paramiko.SSHException) as exc:
            raise GuestUnreachable(f"{self.name}: copying {local} to {remote} failed: "
                                   f"{exc}") from exc

    def get(self, remote: str, local: Path) -> None:
        """Copy a file out of the guest (SFTP)."""
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
            self.connection.get(remote, str(local))
        except (OSError, paramiko.SSHException) as exc:
            raise GuestUnreachable(f"{self.name}: copying {remote} to {local} failed: "
                                   f"{exc}") from exc

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def ssh_port_open(host: str, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, 22), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_ssh(addr: GuestAddress, timeout: float, alive: Callable[[Guest], bool],
                 last_seen: Callable[[], str | None] | None = None,
                 fatal: Callable[[], str | None] | None = None,
                 progress: Callable[[str], None] | None = None) -> float:
    """Wait until the guest's SSH answers (``alive`` says so); returns the seconds it took.

    ``fatal`` reports a boot that can no longer succeed (e.g. the root disk cannot
    be mounted): the wait then ends at once with that message instead of a timeout.
    """
    check_route(addr)
    start = time.monotonic()
    reported = [start]

    def probe() -> bool | None:
        now = time.monotonic()
        if progress is not None and now - reported[0] >= 10:
            reported[0] = now
            seen = last_seen() if last_seen is not None else None
            progress(f"still booting after {now - start:.0f}s" + (f" ({seen})" if seen else ""))
        if fatal is not None and (reason := fatal()):
            raise LabFailure(f"{addr.name} cannot boot: {reason}",
                             hint="see its serial console log")
        if not ssh_port_open(addr.host):
            return None
        with Guest(addr, connect_timeout=5) as guest:
            return True if alive(guest) else None

    wait_for(f"{addr.name} to answer SSH on {addr.host}:22", probe, timeout, interval=0.5,
             last_seen=last_seen)
    return time.monotonic() - start
