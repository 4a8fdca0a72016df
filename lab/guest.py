"""SSH access to a lab guest: a fabric Connection with the lab's key and a pinned host key.

:class:`Guest` is the lab's :class:`~lab.guests.base.Shell`: it runs command
strings in the guest's login shell (whatever the guest kind's shell is) and
knows nothing about the guest OS. The guest's host key is known before the guest
boots, so the connection rejects any other key instead of trusting it on first
use. Connections are lazy and closing is idempotent; every read has a deadline.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import paramiko
from fabric import Config, Connection

from lab import gateway as gateways
from lab import netns, route_guard, vmkeys
from lab.errors import (
    CommandFailed,
    CommandTimeout,
    GatewayUnreachable,
    GuestUnreachable,
    HostKeyRefused,
    LabError,
    LabFailure,
)
from lab.gateway import Gateway
from lab.guests.base import CommandResult
from lab.inventory import Inventory, VmEntry
from lab.wait import CRASH_POLL, crash_error, crash_event, wait_for

# paramiko's transport thread logs every failed banner read (a guest still booting,
# a transport the deadline watchdog closed) with a traceback; the lab reports those
# failures itself, one line each, so paramiko's own log stays silent.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False

CONNECT_TIMEOUT = 10.0
#: Default deadline of one SFTP copy (put/get), connection included.
TRANSFER_TIMEOUT = 120.0
#: The watchdog fires this long after a command's own deadline, so that a command
#: that merely ran long still ends as the loop's CommandTimeout.
WATCHDOG_GRACE = 1.0
SSH_ERRORS = (OSError, EOFError, paramiko.SSHException)
T = TypeVar("T")


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
    port: int = 22  #: the guests' SSH port (only tests use another)
    #: the SSH gateway of the remote hypervisor host the guest runs on; None: this host
    gateway: Gateway | None = None
    #: the golden image's shared host key when ``host_key`` is the VM's own (lab.vmkeys):
    #: never accepted, only named when the guest presents it (its own key never arrived)
    shared_host_key: str | None = None

    @classmethod
    def of(cls, inv: Inventory, vm: VmEntry) -> GuestAddress:
        """The management address of an inventory VM."""
        return cls(name=vm.name, host=vm.mgmt.address, subnet=inv.management_subnet,
                   bridge=vm.mgmt.bridge, key_file=Path(inv.key_file),
                   host_key=vm.host_key or inv.host_key,
                   user=inv.login_user, gateway=vm.gateway,
                   shared_host_key=inv.host_key if vm.host_key else None)


def _refusal(addr: GuestAddress, presented: paramiko.PKey) -> HostKeyRefused:
    """The one-line refusal of a host key other than the pinned one (lab.vmkeys)."""
    try:
        vmkeys.check_host_key(addr.name, f"{presented.get_name()} {presented.get_base64()}",
                              addr.host_key, addr.shared_host_key)
    except HostKeyRefused as exc:
        return exc
    return HostKeyRefused(f"{addr.name}: SSH host key refused (paramiko)")


def check_route(addr: GuestAddress) -> None:
    """Refuse to send anything unless the guest sits behind a lab bridge right here.

    Guest subnets are private ranges that must only ever be reached inside the
    lab's own network namespace; without the bridge, packets would follow the
    host's default route instead.
    """
    if ipaddress.ip_address(addr.host) not in ipaddress.ip_network(addr.subnet):
        raise LabFailure(f"{addr.name}: {addr.host} is outside the lab subnet {addr.subnet}")
    if addr.gateway is not None:  # its bridge and route are on the gateway's host
        route_guard.require_gateway_route(addr.gateway.address, f"ssh to {addr.name}")
        return
    if not netns.has_interface(addr.bridge):
        raise LabFailure(
            f"{addr.name}: the lab bridge {addr.bridge} is not in this network namespace; "
            f"refusing to connect to {addr.host}",
            hint="run through `lab ...` or the pytest plugin, which enter the lab's namespace")
    route_guard.require_route(addr.host, addr.bridge, f"ssh to {addr.name}")


class Watchdog:
    """Severs a guest's SSH transport at a deadline, or at once when the guest crashed.

    paramiko blocks without a deadline in places (waiting for the answer to an
    exec or subsystem request, SFTP reads, a send into a full window to a peer
    that stopped reading); closing the transport from this thread wakes every one
    of them with an error. ``fired`` then says why: "deadline" or "crash" (the
    enclosing :func:`lab.wait.crash_watch` event, e.g. libvirt's crashed event).
    """

    def __init__(self, guest: Guest, seconds: float, abort: threading.Event | None) -> None:
        self.guest = guest
        self.seconds = seconds
        self.abort = abort
        self.fired: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True,
                                        name=f"ssh-watchdog-{guest.name}")

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join(5.0)

    def _watch(self) -> None:
        end = time.monotonic() + self.seconds
        while not self._done.is_set():
            if self.abort is not None and self.abort.is_set():
                self.fired = "crash"
                break
            left = end - time.monotonic()
            if left <= 0:
                self.fired = "deadline"
                break
            self._done.wait(min(left, CRASH_POLL) if self.abort is not None else left)
        if self.fired is not None:
            self.guest.sever()


def _drain(chan: paramiko.Channel, deadline: float,
           abort: threading.Event | None = None) -> tuple[str, str] | None:
    """Read a channel until its command exits; None when ``deadline`` passes first."""
    out: list[bytes] = []
    err: list[bytes] = []
    while not (chan.exit_status_ready() and not chan.recv_ready()
               and not chan.recv_stderr_ready()):
        if time.monotonic() > deadline:
            return None
        if abort is not None and abort.is_set():
            raise crash_error("a guest command to finish", abort)
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
            got = _drain(self.chan, time.monotonic() + timeout, crash_event())
            if got is None:
                raise CommandTimeout(self.guest.name, self.command, timeout)
            code = self.chan.recv_exit_status()
        except LabError:
            self.guest.close()
            raise
        except SSH_ERRORS as exc:
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
        #: the TCP socket (or gateway channel) under _conn, for sever
        self._sock: socket.socket | gateways.ChannelSocket | None = None
        self._deadline: float | None = None  # monotonic; set by guarded()
        #: set when the guest presented a host key other than the pinned one
        self.host_key_refused: HostKeyRefused | None = None

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

    def _connect_budget(self) -> float:
        """Each connection stage's timeout: the connect timeout, cut to what is left of the
        current operation's deadline (a connect must not outlive the command it is for).
        It ends a little before that deadline, so a guest that does not answer the
        connection at all is reported as such (GuestUnreachable), not as a command timeout."""
        if self._deadline is None:
            return self.connect_timeout
        left = self._deadline - time.monotonic() - WATCHDOG_GRACE / 2
        return min(self.connect_timeout, max(left, 0.1))

    def _tcp(self, timeout: float) -> socket.socket | gateways.ChannelSocket:
        """The TCP connection, made here (this thread's namespace) so sever() can cut it
        while the SSH handshake is still running; through the guest's gateway, a
        direct-tcpip channel of the gateway's shared transport instead."""
        sock: socket.socket | gateways.ChannelSocket
        try:
            if self.addr.gateway is not None:
                sock = gateways.ChannelSocket(gateways.open_channel(
                    self.addr.gateway, self.addr.host, self.addr.port, timeout))
            else:
                sock = socket.create_connection((self.addr.host, self.addr.port),
                                                timeout=timeout)
                # small packets each waited for: never held for an earlier one's ACK
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except GuestUnreachable as exc:
            raise type(exc)(f"{self.name}: {exc.summary}", hint=exc.hint) from exc
        except OSError as exc:
            raise GuestUnreachable(f"{self.name}: cannot connect to "
                                   f"{self.addr.host}:{self.addr.port}: {exc}") from exc
        self._sock = sock
        return sock

    def _open(self) -> Connection:
        check_route(self.addr)
        budget = self._connect_budget()
        conn = Connection(
            self.addr.host, user=self.addr.user, port=self.addr.port, config=isolated_config(),
            gateway=False, connect_timeout=budget,
            connect_kwargs={"key_filename": str(self.addr.key_file),
                            "look_for_keys": False, "allow_agent": False,
                            "banner_timeout": budget, "auth_timeout": budget,
                            "sock": self._tcp(budget)})
        client = conn.client
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        kind, blob = self.addr.host_key.split()[:2]
        pinned = (self.addr.host if self.addr.port == 22
                  else f"[{self.addr.host}]:{self.addr.port}")  # how paramiko looks it up
        client.get_host_keys().add(pinned, kind,
                                   paramiko.PKey.from_type_string(kind, base64.b64decode(blob)))
        try:
            conn.open()
        except paramiko.BadHostKeyException as exc:
            self.close()
            self.host_key_refused = _refusal(self.addr, exc.key)
            raise self.host_key_refused from exc
        except (OSError, paramiko.SSHException) as exc:
            self.close()
            raise GuestUnreachable(f"{self.name}: cannot connect to "
                                   f"{self.addr.host}:{self.addr.port}: {exc}") from exc
        # A guest that crashed or hangs must not block a channel open forever
        # (paramiko waits an hour by default); keepalives notice a dead peer.
        conn.transport.channel_timeout = self.connect_timeout
        conn.transport.set_keepalive(5)
        return conn

    def guarded(self, seconds: float, action: Callable[[], T],
                on_deadline: Callable[[], LabError], what: str) -> T:
        """``action()`` under a :class:`Watchdog`: past ``seconds`` (or once the guest
        crashed) the transport is severed and ``on_deadline()`` (or DriverCrash) raised."""
        outer = self._deadline
        mine = time.monotonic() + seconds
        self._deadline = mine if outer is None else min(outer, mine)
        with Watchdog(self, seconds, crash_event()) as dog:
            try:
                result = action()
            except (*SSH_ERRORS, LabError) as exc:
                if dog.fired is None:
                    raise
                self.close()
                raise self._fired(dog, what, on_deadline) from exc
            finally:
                self._deadline = outer
        if dog.fired is not None:  # severed: a channel closed under it looks like "exit -1"
            self.close()
            raise self._fired(dog, what, on_deadline)
        return result

    @staticmethod
    def _fired(dog: Watchdog, what: str, on_deadline: Callable[[], LabError]) -> LabError:
        return crash_error(what, dog.abort) if dog.fired == "crash" else on_deadline()

    def start(self, command: str) -> SshCommand:
        """Start ``command`` on its own channel and return at once (within the connect
        timeout, even when the guest stops answering in the middle of the exec request)."""
        outer = self._deadline  # the deadline of the run() this start is part of

        def begin() -> paramiko.Channel:
            try:
                chan: paramiko.Channel = self.connection.transport.open_session(
                    timeout=self._open_budget(outer))
                chan.settimeout(1.0)
                chan.exec_command(command)
            except SSH_ERRORS as exc:
                raise GuestUnreachable(f"{self.name}: ssh {command!r} failed: "
                                       f"{exc or type(exc).__name__}") from exc
            return chan

        try:
            chan = self.guarded(
                3 * self.connect_timeout, begin, what=f"ssh {command!r} to start",
                on_deadline=lambda: GuestUnreachable(
                    f"{self.name}: ssh {command!r} did not start within "
                    f"{3 * self.connect_timeout:.0f}s (the guest stopped answering)"))
        except LabError:
            self.close()
            raise
        return SshCommand(self, command, chan)

    def _open_budget(self, outer: float | None) -> float:
        """The channel open's timeout: the connect timeout, unless it would end at about
        the enclosing command's deadline (within half the watchdog grace): then just past
        it, so the watchdog decides (CommandTimeout) instead of a race with paramiko's own
        "Timeout opening channel" (GuestUnreachable)."""
        if outer is None:
            return self.connect_timeout
        left = outer - time.monotonic()
        if self.connect_timeout > left - WATCHDOG_GRACE / 2:
            return max(self.connect_timeout, left + WATCHDOG_GRACE / 2)
        return self.connect_timeout

    def run(self, command: str, timeout: float = 60.0, check: bool = True) -> CommandResult:
        """Run ``command`` in the guest's shell; ``check`` makes a non-zero exit CommandFailed.

        The deadline is hard: every read on the SSH channel times out, so a guest
        that crashed or hangs mid-command cannot block the caller. Past it the
        connection is dropped and CommandTimeout says which command it was.
        """
        def attempt() -> CommandResult:
            running = self.start(command)
            try:
                return running.wait(timeout)
            except CommandTimeout:
                running.close()
                self.close()
                raise

        result = self.guarded(timeout + WATCHDOG_GRACE, attempt, what=f"ssh {command!r}",
                              on_deadline=lambda: CommandTimeout(self.name, command, timeout))
        if check and not result.ok:
            raise CommandFailed(self.name, command, result.exit_code, result.stderr)
        return result

    def put(self, local: Path, remote: str, timeout: float = TRANSFER_TIMEOUT) -> None:
        """Copy a file into the guest (SFTP), within ``timeout`` seconds."""
        self._copy(f"copying {local} to {remote}", timeout,
                   lambda: self.connection.put(str(local), remote))

    def get(self, remote: str, local: Path, timeout: float = TRANSFER_TIMEOUT) -> None:
        """Copy a file out of the guest (SFTP), within ``timeout`` seconds."""
        local.parent.mkdir(parents=True, exist_ok=True)
        self._copy(f"copying {remote} to {local}", timeout,
                   lambda: self.connection.get(remote, str(local)))

    def _copy(self, what: str, timeout: float, action: Callable[[], object]) -> None:
        def attempt() -> None:
            try:
                action()
            except SSH_ERRORS as exc:
                raise GuestUnreachable(f"{self.name}: {what} failed: "
                                       f"{exc or type(exc).__name__}") from exc

        try:
            self.guarded(timeout, attempt, what=what, on_deadline=lambda: GuestUnreachable(
                f"{self.name}: {what} did not finish within {timeout:.0f}s "
                "(the guest stopped answering)"))
        except GuestUnreachable:
            self.close()  # an SFTP session cut midway is not reused
            raise

    def sever(self) -> None:
        """Cut the SSH transport now, from any thread: every blocked read, write and
        request on it fails at once. The owner thread then :meth:`close`s."""
        conn, sock = self._conn, self._sock
        if isinstance(sock, gateways.ChannelSocket):  # through a gateway: EOF and CLOSE
            sock.close()
        elif sock is not None:  # wakes paramiko's reader with a clean EOF (handshake too)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        transport = conn.client.get_transport() if conn is not None else None
        if transport is not None:
            transport.close()

    def close(self) -> None:
        self.sever()  # a clean EOF for paramiko's reader first: no "Bad file descriptor"
        sock, self._sock = self._sock, None
        if self._conn is None and sock is not None:  # the handshake failed: fabric never owned it
            sock.close()
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def ssh_port_open(host: str, timeout: float = 1.0, port: int = 22) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _port_open(addr: GuestAddress) -> bool:
    """The guest's SSH port takes connections (through its gateway, if it has one)."""
    if addr.gateway is None:
        return ssh_port_open(addr.host, timeout=0.5, port=addr.port)
    try:
        gateways.open_channel(addr.gateway, addr.host, addr.port, 2.0).close()
    except GatewayUnreachable:
        raise  # the gateway itself (down, key refused): no guest behind it boots into view
    except GuestUnreachable:
        return False
    return True


def wait_for_ssh(addr: GuestAddress, timeout: float, alive: Callable[[Guest], bool],
                 last_seen: Callable[[], str | None] | None = None,
                 fatal: Callable[[], str | None] | None = None,
                 progress: Callable[[str], None] | None = None) -> float:
    """Wait until the guest's SSH answers (``alive`` says so); returns the seconds it took.

    ``fatal`` reports a boot that can no longer succeed (e.g. the root disk cannot
    be mounted): the wait then ends at once with that message instead of a timeout.
    """
    guest, took = ssh_ready(addr, timeout, alive, last_seen, fatal, progress)
    guest.close()
    return took


def ssh_ready(addr: GuestAddress, timeout: float, alive: Callable[[Guest], bool],
              last_seen: Callable[[], str | None] | None = None,
              fatal: Callable[[], str | None] | None = None,
              progress: Callable[[str], None] | None = None) -> tuple[Guest, float]:
    """:func:`wait_for_ssh` that keeps the connection which answered (the caller closes
    it): the next commands need no second SSH handshake (a slow one in a TCG guest)."""
    check_route(addr)
    start = time.monotonic()
    reported = [start]
    refused: list[HostKeyRefused] = []  # the last host key refusal (alive() swallows it)

    def seen_last() -> str | None:
        seen = last_seen() if last_seen is not None else None
        if refused:
            return refused[-1].summary + (f"; {seen}" if seen else "")
        return seen

    def probe() -> Guest | None:
        now = time.monotonic()
        if progress is not None and now - reported[0] >= 10:
            reported[0] = now
            seen = last_seen() if last_seen is not None else None
            progress(f"still booting after {now - start:.0f}s" + (f" ({seen})" if seen else ""))
        if fatal is not None and (reason := fatal()):
            raise LabFailure(f"{addr.name} cannot boot: {reason}",
                             hint="see its serial console log")
        if not _port_open(addr):
            return None
        guest = Guest(addr, connect_timeout=5)
        try:
            if alive(guest):
                return guest
        except BaseException:
            guest.close()
            raise
        if guest.host_key_refused is not None:
            refused[:] = [guest.host_key_refused]
        guest.close()
        return None

    # a cheap port probe, often: a VM restored from the template answers within a second
    guest = wait_for(f"{addr.name} to answer SSH on {addr.host}:22", probe, timeout,
                     interval=0.1, max_interval=0.5, last_seen=seen_last)
    return guest, time.monotonic() - start
