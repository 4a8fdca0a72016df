"""Echo servers for the load engine tests (fixtures re-exported by conftest.py):
socat (a real third-party echo server from Debian) and a deliberately faulty one
that flips, drops, resets or stalls on cue. All on loopback, on ephemeral ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

DEADLINE = 5.0


def wait_listening(host: str, port: int, deadline: float = DEADLINE) -> None:
    """Poll until ``host:port`` accepts a connection, or fail the test at the deadline."""
    end = time.monotonic() + deadline
    while True:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > end:
                pytest.fail(f"echo server {host}:{port} did not listen within {deadline}s")
            time.sleep(0.02)


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Socat:
    host: str
    port: int
    proc: subprocess.Popen[bytes]


def start_socat(host: str) -> Socat:
    if shutil.which("socat") is None:
        pytest.fail("socat is not installed: run scripts/setup.sh (bench/apt-packages.txt)")
    port = free_port(host)
    proc = subprocess.Popen(
        ["socat", f"TCP4-LISTEN:{port},bind={host},reuseaddr,fork,backlog=128", "EXEC:cat"],
        start_new_session=True,  # its per-connection children share our new group
        stdout=subprocess.DEVNULL,
    )
    wait_listening(host, port)
    return Socat(host, port, proc)


def stop_socat(server: Socat) -> None:
    # The group we created at start (socat and its forked children), by its id.
    os.killpg(server.proc.pid, signal.SIGTERM)
    server.proc.wait(DEADLINE)


@pytest.fixture(scope="session")
def socat_echo() -> Iterator[Socat]:
    server = start_socat("127.0.0.1")
    yield server
    stop_socat(server)


@pytest.fixture(scope="session")
def socat_echo2() -> Iterator[Socat]:
    """A second target on another loopback address (a second 'NIC')."""
    server = start_socat("127.0.0.2")
    yield server
    stop_socat(server)


@dataclass
class Fault:
    """What the faulty server does to the connections it accepts."""

    kind: str = "none"
    """none | flip (invert one byte) | close (FIN) | reset (RST) | stall (stop echoing)
    | drop (lose one byte) | swap (swap two ``span``-byte chunks) | dup (echo a
    ``span``-byte chunk twice) -- the last three hold data until the whole region came."""
    at: int = 0
    """Stream offset where the fault happens."""
    conns: frozenset[int] | None = None
    """Accept-order indices of the connections to hurt (None: all)."""
    span: int = 4096
    """Chunk size of swap and dup."""
    delay: float = 0.0
    """Healthy but slow: sleep this long before each echo (in ``piece``-byte writes)."""
    piece: int = 65536


def mangle(kind: str, region: bytes, span: int) -> bytes:
    """The bytes echoed for ``region`` (the ``2 * span`` bytes from the fault offset)."""
    if kind == "drop":
        return region[1:]
    if kind == "swap":
        return region[span : 2 * span] + region[:span] + region[2 * span :]
    if kind == "dup":
        return region[:span] + region
    raise ValueError(kind)


HOLDING = ("drop", "swap", "dup")


@dataclass
class FaultyEchoServer:
    fault: Fault
    host: str = "127.0.0.1"
    peers: list[tuple[str, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> FaultyEchoServer:
        self.sock = socket.socket()
        self.sock.bind((self.host, 0))
        self.sock.listen(128)
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self._spawn(self._accept_loop)
        return self

    def _spawn(self, fn: object, *args: object) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)  # type: ignore[arg-type]
        t.start()
        self._threads.append(t)

    def _accept_loop(self) -> None:
        index = 0
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.peers.append(peer)
            hurt = self.fault.conns is None or index in self.fault.conns
            self._spawn(self._serve, conn, self.fault if hurt else Fault())
            index += 1

    def _serve(self, conn: socket.socket, fault: Fault) -> None:
        conn.settimeout(0.05)
        offset = 0
        echoing = True
        held: bytearray | None = None
        pending = fault.kind in HOLDING
        with conn:
            while not self._stop.is_set():
                try:
                    data = bytearray(conn.recv(65536))
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                if not echoing:
                    continue  # stalled / half-closed: swallow
                end = offset + len(data)
                try:
                    if pending:
                        held, data = self._hold(held, offset, data, fault)
                        pending = held is not None or end <= fault.at
                    if fault.delay:
                        self._slow_echo(conn, data, fault)
                    elif fault.kind not in HOLDING and fault.kind != "none" \
                            and offset <= fault.at < end:
                        cut = fault.at - offset
                        if fault.kind == "flip":
                            data[cut] ^= 0xFF
                        else:
                            conn.sendall(data[:cut])
                            echoing = False
                            self._hurt(conn, fault.kind)
                            if fault.kind == "reset":
                                return
                            continue
                        conn.sendall(data)
                    else:
                        conn.sendall(data)
                except OSError:
                    return  # the client gave up on this connection
                offset = end

    @staticmethod
    def _hold(held: bytearray | None, offset: int, data: bytearray, fault: Fault
              ) -> tuple[bytearray | None, bytearray]:
        """Hold the bytes from ``fault.at`` until ``2 * span`` came, then release them
        mangled. Returns the new held buffer (None once released) and what to echo now."""
        end = offset + len(data)
        if held is None and not offset <= fault.at < end:
            return None, data
        if held is None:
            cut = fault.at - offset
            out, held = data[:cut], bytearray(data[cut:])
        else:
            out = bytearray()
            held += data
        if len(held) < 2 * fault.span:
            return held, out
        out += mangle(fault.kind, bytes(held), fault.span)
        return None, out

    @staticmethod
    def _slow_echo(conn: socket.socket, data: bytearray, fault: Fault) -> None:
        for i in range(0, len(data), fault.piece):
            time.sleep(fault.delay)
            conn.sendall(data[i : i + fault.piece])

    def _hurt(self, conn: socket.socket, kind: str) -> None:
        if kind == "close":
            conn.shutdown(socket.SHUT_WR)
        elif kind == "reset":
            time.sleep(0.2)  # let the client read what was echoed before the RST
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # stall: keep the connection open, echo nothing more

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()
        for t in self._threads:
            t.join(DEADLINE)


@pytest.fixture
def faulty() -> Iterator[list[FaultyEchoServer]]:
    """Start servers with ``faulty.append(FaultyEchoServer(Fault(...)).start())``."""
    servers: list[FaultyEchoServer] = []
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port that is bound but not listening: connects get RST (refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])
