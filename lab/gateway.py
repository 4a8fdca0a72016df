"""Guests behind a remote hypervisor host: reached through that host's sshd.

A lab that spans several hosts (issue 12) keeps each host's guest networks isolated on
that host. The controller reaches a remote host's guests through an SSH *gateway*:
one SSH connection to the host's sshd (its host key pinned in a known_hosts file the
lab wrote; never the user's ~/.ssh), and one direct-tcpip channel per guest connection.
A guest on the local host has no gateway (``None``): it is reached directly from the
lab's network namespace, as before.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import shutil
import socket
import threading
import time
from dataclasses import dataclass

import paramiko

from lab import agent_pipes
from lab.errors import GatewayKeyRefused, GatewayUnreachable, GuestUnreachable

CONNECT_TIMEOUT = 10.0
#: seconds without traffic after which the gateway transport sends a keepalive request
KEEPALIVE_S = 5
#: data the gateway leaves unacknowledged this long (ms) ends its TCP connection: a dead
#: gateway is noticed within it (the keepalives above make sure something is in flight)
TCP_USER_TIMEOUT_MS = 15_000
SSH_ERRORS = (OSError, EOFError, paramiko.SSHException)
#: the RSA signature algorithms a pinned ``ssh-rsa`` known_hosts line stands for
RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")


@dataclass(frozen=True)
class Gateway:
    """The SSH jump host in front of one hypervisor host's guest networks."""

    #: the hypervisor host's name in the lab config ([[hosts]] name)
    name: str
    #: address (or DNS name) of the host's sshd, as the controller reaches it
    address: str
    port: int
    user: str
    #: private key the lab logs in with (0600; the lab's, not the user's)
    key_file: str
    #: known_hosts file pinning the host's SSH host key
    known_hosts: str

    @property
    def where(self) -> str:
        return f"gateway {self.name} ({self.address}:{self.port})"


class _Slot:
    """One gateway's transport in this process (per network namespace: the TCP socket
    belongs to the namespace of the thread that made it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.transport: paramiko.Transport | None = None


_slots: dict[tuple[Gateway, int], _Slot] = {}
_slots_lock = threading.Lock()


def _slot(gateway: Gateway) -> _Slot:
    key = (gateway, os.stat("/proc/thread-self/ns/net").st_ino)
    with _slots_lock:
        return _slots.setdefault(key, _Slot())


def transport(gateway: Gateway, timeout: float = CONNECT_TIMEOUT) -> paramiko.Transport:
    """The gateway's live, authenticated transport: opened on first use, and again once
    it died; threads share it. Connecting (or waiting for another thread's connect)
    ends within ``timeout`` seconds."""
    end = time.monotonic() + timeout
    slot = _slot(gateway)
    if not slot.lock.acquire(timeout=max(timeout, 0.1)):
        raise GatewayUnreachable(f"{gateway.where}: another thread's connect did not end "
                                 f"within {timeout:.0f}s", hint=_hint(gateway))
    try:
        current = slot.transport
        if current is not None and current.is_active():
            return current
        slot.transport = None
        if current is not None:
            current.close()
        slot.transport = _connect(gateway, end)
        return slot.transport
    finally:
        slot.lock.release()


def openssh(gateway: Gateway) -> list[str] | None:
    """The OpenSSH client command reaching ``gateway`` with the same key and pinned host
    key (:func:`lab.agent_pipes.openssh_argv`); None when ``ssh`` is not installed."""
    if shutil.which("ssh") is None:
        return None
    return agent_pipes.openssh_argv(address=gateway.address, port=gateway.port,
                                    user=gateway.user, key_file=gateway.key_file,
                                    known_hosts=gateway.known_hosts,
                                    connect_timeout_s=CONNECT_TIMEOUT)


def open_channel(gateway: Gateway, dest_host: str, dest_port: int,
                 timeout: float) -> paramiko.Channel:
    """A direct-tcpip channel through ``gateway`` to ``dest_host:dest_port`` (as the
    gateway host reaches it), within ``timeout`` seconds, connect included. A transport
    that died since its last use is reopened once."""
    end = time.monotonic() + timeout
    dest = f"{dest_host}:{dest_port}"
    for attempt in (1, 2):
        link = transport(gateway, _left(end))
        try:
            chan: paramiko.Channel = link.open_channel(
                "direct-tcpip", (dest_host, dest_port), ("127.0.0.1", 0), timeout=_left(end))
            return chan
        except paramiko.ChannelException as exc:  # the gateway could not connect there
            raise GuestUnreachable(f"{dest} through {gateway.where}: {exc.text}") from exc
        except SSH_ERRORS as exc:
            if link.is_active() or attempt == 2 or time.monotonic() >= end:
                raise GuestUnreachable(f"{dest} through {gateway.where}: "
                                       f"{exc or type(exc).__name__}") from exc
    raise AssertionError("unreachable")  # the loop returns or raises


class ChannelSocket:
    """A direct-tcpip channel as the socket under a guest's own SSH transport.

    Nothing may reach the gateway's sshd on this channel after its CLOSE: sshd answers
    that protocol error ("data packet referred to nonexistent channel") by dropping the
    whole gateway connection, every guest session behind it. paramiko sends a channel's
    data and its CLOSE outside the channel's own lock, so a send in flight in one thread
    (the guest transport's thread answering the guest's close of a command's channel)
    could follow the CLOSE another thread sent (the lab closing the guest connection):
    four guest sessions at once through one gateway lost it within seconds. So sends
    and the close are serialized here, and a send after the close fails as on a closed
    socket. Closing never raises and never half-closes (paramiko's ``shutdown`` sends
    EOF outside the channel's lock too). The guest transport's thread also closes its
    socket when it ends, possibly after the gateway's transport died: nothing to report
    then."""

    #: how long a close waits for a send in flight (each send is bounded by the
    #: channel's timeout, which the guest transport sets to a fraction of a second)
    CLOSE_WAIT_S = 5.0

    def __init__(self, chan: paramiko.Channel) -> None:
        self.chan = chan
        self._lock = threading.Lock()
        self._closing = False

    def send(self, data: bytes) -> int:
        with self._lock:
            if self._closing:
                raise OSError(errno.EBADF, "the gateway channel is closed")
            return int(self.chan.send(data))

    def recv(self, size: int) -> bytes:
        return bytes(self.chan.recv(size))

    def settimeout(self, timeout: float | None) -> None:
        self.chan.settimeout(timeout)

    def getpeername(self) -> object:
        return self.chan.getpeername()

    @property
    def _closed(self) -> bool:  # what paramiko's Transport.join checks
        return bool(self.chan.closed)

    def close(self) -> None:
        """EOF and CLOSE in order, after any send in flight; wakes the guest transport's
        reader."""
        got = self._lock.acquire(timeout=self.CLOSE_WAIT_S)
        try:
            self._closing = True
            with contextlib.suppress(*SSH_ERRORS):
                self.chan.close()
        finally:
            if got:
                self._lock.release()


def run_on_host(gateway: Gateway, argv: list[str], timeout: float) -> tuple[int, str]:
    """``argv`` (shell-quoted) run on the host over its gateway connection: its exit
    status and the end of its stderr. Raises GatewayUnreachable when the host cannot be
    reached or the command did not end within ``timeout`` (it may still be running)."""
    end = time.monotonic() + timeout
    link = transport(gateway, timeout)
    try:
        chan = link.open_session(timeout=_left(end))
    except SSH_ERRORS as exc:
        raise GatewayUnreachable(f"gateway {gateway.where}: opening a session failed: {exc}",
                                 hint=_hint(gateway)) from None
    expired = threading.Event()

    def expire() -> None:  # exec_command has no deadline itself
        expired.set()
        with contextlib.suppress(*SSH_ERRORS):  # the connection may be closing too
            chan.close()  # sets status_event too (paramiko): the flag tells it from an exit
    timer = threading.Timer(_left(end), expire)
    timer.start()
    with contextlib.closing(chan):
        try:
            chan.exec_command(shlex.join(argv))
            if not chan.status_event.wait(_left(end)) or expired.is_set():
                raise GatewayUnreachable(f"gateway {gateway.where}: {argv[0]} did not end "
                                         f"within {timeout:.0f}s", hint=_hint(gateway))
            status = chan.recv_exit_status()
            # sshd sends a command's output before its exit status: what there is is here
            err = chan.recv_stderr(4096) if chan.recv_stderr_ready() else b""
        except SSH_ERRORS as exc:
            raise GatewayUnreachable(f"gateway {gateway.where}: running {argv[0]} failed: "
                                     f"{exc}", hint=_hint(gateway)) from None
        finally:
            timer.cancel()
    return status, err.decode(errors="replace").strip()[-300:]


def close(gateway: Gateway | None = None) -> None:
    """Close ``gateway``'s transports (every gateway's when None), in every namespace."""
    with _slots_lock:
        keys = [key for key in _slots if gateway is None or key[0] == gateway]
        slots = [_slots.pop(key) for key in keys]
    for slot in slots:
        link, slot.transport = slot.transport, None
        if link is not None:
            link.close()


def _left(end: float) -> float:
    return max(end - time.monotonic(), 0.1)


def _hint(gateway: Gateway) -> str:
    return (f"check that {gateway.name}'s sshd runs and that the controller reaches "
            f"{gateway.address}:{gateway.port}")


def _connect(gateway: Gateway, end: float) -> paramiko.Transport:
    """TCP (in this thread's namespace), handshake, pinned host key, the lab's key."""
    from lab import route_guard  # here: route_guard reads inventories, which name gateways

    route_guard.require_gateway_route(gateway.address, f"ssh to {gateway.where}")
    pinned = _pinned(gateway)
    key = _client_key(gateway)
    try:
        sock = socket.create_connection((gateway.address, gateway.port), timeout=_left(end))
    except OSError as exc:
        raise GatewayUnreachable(f"{gateway.where}: cannot connect: {exc}",
                                 hint=_hint(gateway)) from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, TCP_USER_TIMEOUT_MS)
    # every guest packet is small and waited for: never held back for an earlier one's ACK
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    link = paramiko.Transport(sock)
    try:
        _handshake(link, gateway, pinned, end)
        _login(link, gateway, key)
        _nodelay_on_host(link, end)
    except BaseException:
        link.close()
        sock.close()
        raise
    link.set_keepalive(KEEPALIVE_S)
    return link


def _pinned(gateway: Gateway) -> dict[str, paramiko.PKey]:
    """The gateway's pinned host keys by type, from its known_hosts (nothing else)."""
    name = gateway.address if gateway.port == 22 else f"[{gateway.address}]:{gateway.port}"
    try:
        found = paramiko.HostKeys(gateway.known_hosts).lookup(name)
    except (OSError, paramiko.SSHException) as exc:
        raise GatewayUnreachable(f"{gateway.where}: cannot read its known_hosts "
                                 f"{gateway.known_hosts}: {exc}",
                                 hint="the lab writes it when it sets the host up") from exc
    if not found:
        raise GatewayKeyRefused(f"{gateway.where}: no host key for {name} in "
                                f"{gateway.known_hosts}; refusing to connect",
                                hint="pin the host's key there (never trust it on first use)")
    return {kind: found[kind] for kind in found}


def _client_key(gateway: Gateway) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(gateway.key_file)
    except (OSError, ValueError, paramiko.SSHException) as exc:
        raise GatewayUnreachable(f"{gateway.where}: cannot load the lab's key "
                                 f"{gateway.key_file}: {exc}",
                                 hint="the key must be an unencrypted private key") from exc


def _handshake(link: paramiko.Transport, gateway: Gateway, pinned: dict[str, paramiko.PKey],
               end: float) -> None:
    """Key exchange offering only the pinned key types; any other key is refused."""
    link.banner_timeout = link.handshake_timeout = link.auth_timeout = _left(end)
    wanted = {alg for kind in pinned for alg in (RSA_ALGORITHMS if kind == "ssh-rsa"
                                                 else (kind,))}
    options = link.get_security_options()
    options.key_types = [alg for alg in options.key_types if alg in wanted]
    done = threading.Event()
    link.start_client(event=done)
    while not done.wait(0.05) and link.is_active() and time.monotonic() < end:
        pass
    if not (done.is_set() and link.is_active()):
        why = link.get_exception() or "no answer in time"
        raise GatewayUnreachable(f"{gateway.where}: SSH handshake failed: {why}",
                                 hint=_hint(gateway))
    presented = link.get_remote_server_key()
    if pinned.get(presented.get_name()) != presented:
        raise GatewayKeyRefused(
            f"{gateway.where}: SSH host key refused: it presents {presented.get_name()} "
            f"{presented.fingerprint}, not the key pinned in {gateway.known_hosts}",
            hint="something else answers on its address, or its key was replaced: set the "
                 "host up again so the lab pins its new key")


def _nodelay_on_host(link: paramiko.Transport, end: float) -> None:
    """Have the host's sshd turn Nagle off on its end of the connection too.

    OpenSSH's sshd does that only when a session runs a command (session.c: do_exec ->
    ssh_packet_set_interactive -> set_nodelay); a connection that only forwards keeps
    Nagle, so each small packet of a guest's SSH waits for the ACK of the one before
    (a 40 ms delayed ACK, several times per guest command). One ``true`` sets it for the
    connection's life; sshd answers the exec request after that. A host that refuses
    commands still forwards (its side then keeps Nagle): nothing to report."""
    try:
        chan = link.open_session(timeout=_left(end))
    except SSH_ERRORS:
        return
    timer = threading.Timer(_left(end), chan.close)  # exec_command has no deadline itself
    timer.start()
    try:
        chan.exec_command("true")
    except SSH_ERRORS:
        pass
    finally:
        timer.cancel()
        with contextlib.suppress(*SSH_ERRORS):
            chan.close()


def _login(link: paramiko.Transport, gateway: Gateway, key: paramiko.PKey) -> None:
    try:
        link.auth_publickey(gateway.user, key)  # bounded by link.auth_timeout
    except SSH_ERRORS as exc:
        raise GatewayUnreachable(f"{gateway.where}: login as {gateway.user} with "
                                 f"{gateway.key_file} refused: {exc or type(exc).__name__}",
                                 hint=f"the lab's public key must be in {gateway.user}'s "
                                      "authorized_keys on the host") from exc
