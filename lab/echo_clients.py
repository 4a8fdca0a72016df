"""Echo connections the lab holds open across a scenario step, on the VM's own host.

An unload with live clients and a sleep with open connections need TCP connections to
the echo driver that stay open while the lab does something else (starts the unload,
suspends the guest), then get one more echo round trip or a close: orderly (FIN) for
even ones, abortive (RST) for odd ones, so a driver must release connections ended
both ways. They are opened where the VM's test NICs are reachable: in this process for
a local VM, in the host agent for a VM on another host (:mod:`lab.hostagent`), with
the same code. Pure (stdlib + lab.errors): it runs inside the agent's zipapp too.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Sequence
from typing import Literal

from lab.errors import DriverFailure, DriverHang

Outcome = Literal["echoed", "reset"]
OUTCOMES: tuple[Outcome, ...] = ("echoed", "reset")
#: a port nothing listens on in the guests: the guest kernel itself answers with a RST
CLOSED_PORT = 9


class HeldClients:
    """Connections to ``addresses[i]:port``, opened at once (a failure to connect is a
    driver failure of ``who``), held until :meth:`close`."""

    def __init__(self, addresses: Sequence[str], port: int, who: str,
                 timeout: float) -> None:
        self.who = who
        self.addresses = tuple(addresses)
        self.socks: list[socket.socket] = []
        try:
            for i, address in enumerate(self.addresses):
                try:
                    self.socks.append(socket.create_connection((address, port), timeout=timeout))
                except OSError as exc:
                    raise DriverFailure(f"{who}: client {i + 1} of {len(self.addresses)} could "
                                        f"not connect to {address}: {exc}") from exc
        except BaseException:
            self.close()
            raise

    @property
    def ports(self) -> tuple[int, ...]:
        """Each connection's local port (for the timeline)."""
        return tuple(s.getsockname()[1] for s in self.socks)

    def round_trip(self, index: int, payload: bytes, stall_s: float) -> Outcome:
        """One echo round trip on connection ``index`` (see :func:`round_trip`)."""
        return round_trip(self.socks[index], payload, stall_s, self.who)

    def close(self) -> int:
        """Close every connection, even ones with a FIN, odd ones with a RST (linger 0);
        how many were open."""
        socks, self.socks = self.socks, []
        for i, sock in enumerate(socks):
            if i % 2:
                with contextlib.suppress(OSError):  # already reset: closing is what is left
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        return len(socks)


def round_trip(sock: socket.socket, payload: bytes, stall_s: float,
               who: str = "echo driver") -> Outcome:
    """Send ``payload`` and read it back: "echoed" intact, "reset" on a clean reset or
    close; a wrong byte is a DriverFailure, no progress within ``stall_s`` a DriverHang."""
    sock.settimeout(stall_s)
    got = b""
    try:
        sock.sendall(payload)
        while len(got) < len(payload):
            chunk = sock.recv(len(payload) - len(got))
            if not chunk:
                break
            got += chunk
    except TimeoutError as exc:
        raise DriverHang(f"{who}: a held connection (port {_port(sock)}) made no progress for "
                         f"{stall_s:.0f}s (hung)") from exc
    except OSError:  # ECONNRESET, EPIPE: the connection was reset cleanly
        return "reset" if payload.startswith(got) else _corrupt(payload, got, who)
    if got == payload:
        return "echoed"
    return "reset" if payload.startswith(got) else _corrupt(payload, got, who)


def _port(sock: socket.socket) -> str:
    try:
        return str(sock.getsockname()[1])
    except OSError:
        return "?"


def _corrupt(sent: bytes, got: bytes, who: str) -> Outcome:
    offset = next(i for i, (a, b) in enumerate(zip(sent, got, strict=False)) if a != b)
    raise DriverFailure(f"{who}: corrupt byte on a held connection at offset {offset}: got "
                        f"0x{got[offset]:02x}, expected 0x{sent[offset]:02x}")


def carries_ip(address: str, timeout: float = 2.0) -> bool:
    """``address`` passes IP traffic at all (the guest's kernel resets a connection to a
    closed port): a check that involves no driver under test."""
    try:
        with socket.create_connection((address, CLOSED_PORT), timeout=timeout):
            return True
    except ConnectionRefusedError:
        return True
    except OSError:  # no route to host (ARP unanswered), timeout
        return False
