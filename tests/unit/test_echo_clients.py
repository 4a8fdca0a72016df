"""Held echo clients (lab/echo_clients.py) against a real TCP server on loopback.

The server is this module's own: it records, per accepted connection, how the peer
ended it as the server's kernel saw it (recv() == b"" for a FIN, ECONNRESET for a
RST), which is not the client code's own idea of what it did.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from lab.echo_clients import HeldClients, carries_ip
from lab.errors import DriverFailure, DriverHang


class EndsServer:
    """Echoes on a loopback port; ``ends`` collects "fin" or "rst" per connection."""

    def __init__(self, echo: bool = True) -> None:
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.echo = echo
        self.ends: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        end = "fin"
        with conn:
            try:
                while data := conn.recv(4096):
                    if self.echo:
                        conn.sendall(data)
            except ConnectionResetError:
                end = "rst"
        with self._lock:
            self.ends.append(end)

    def wait_ends(self, count: int, timeout: float = 5.0) -> list[str]:
        stop = time.monotonic() + timeout
        while time.monotonic() < stop:
            with self._lock:
                if len(self.ends) >= count:
                    return sorted(self.ends)
            time.sleep(0.02)
        return sorted(self.ends)


@pytest.fixture
def server() -> Iterator[EndsServer]:
    srv = EndsServer()
    yield srv
    srv.srv.close()


def test_held_clients_echo_then_close_with_a_fin_and_a_reset_each_other(
        server: EndsServer) -> None:
    clients = HeldClients(["127.0.0.1"] * 4, server.port, "wskecho", timeout=5.0)
    assert len(set(clients.ports)) == 4
    for i in range(4):
        assert clients.round_trip(i, f"held {i}\n".encode(), stall_s=5.0) == "echoed"
    assert clients.close() == 4
    assert server.wait_ends(4) == ["fin", "fin", "rst", "rst"]
    assert clients.close() == 0  # closing twice closes nothing


def test_a_client_that_cannot_connect_is_a_driver_failure_and_closes_the_others(
        server: EndsServer) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: the kernel refuses
    with pytest.raises(DriverFailure, match=r"wskecho: client 1 of 1 could not connect"):
        HeldClients(["127.0.0.1"], dead_port, "wskecho", timeout=2.0)


def test_a_held_connection_that_stops_echoing_is_a_hang() -> None:
    srv = EndsServer(echo=False)
    try:
        clients = HeldClients(["127.0.0.1"], srv.port, "wskecho", timeout=5.0)
        t0 = time.monotonic()
        with pytest.raises(DriverHang, match="made no progress for 1s"):
            clients.round_trip(0, b"swallowed\n", stall_s=1.0)
        assert 1.0 <= time.monotonic() - t0 < 3.0
        clients.close()
    finally:
        srv.srv.close()


def test_carries_ip_when_the_kernel_refuses_the_closed_port() -> None:
    # (the negative case, an address that answers nothing, is in tests/lab/test_hostagent.py:
    # it needs a namespace of the lab's own, traffic may not leave this machine)
    assert carries_ip("127.0.0.1", timeout=2.0)
