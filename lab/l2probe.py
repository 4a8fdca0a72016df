"""Host side of the labtdi L2 echo: one raw Ethernet probe per binding.

Wire format: ``drivers/common/labl2echo.h``, the one header the Windows labtdi.sys, the
Linux twin and the guest probe compile against. Frame: EtherType 0x88B5, then the
16-byte header (magic "LTDI", version 1, op, payload length, seq, responder ifindex; all
big endian), then the payload. The transport answers from the probed adapter with
op = reply, its ifindex and the payload echoed. The constants below mirror that header;
``tests/unit/test_l2echo_format.py`` compiles the header and checks every one of them and
a reply built by its C code. Sent from the lab bridge of the adapter's network, inside
the lab's network namespace (AF_PACKET needs root).
"""

from __future__ import annotations

import os
import secrets
import select
import socket
import struct
import time
from dataclasses import dataclass

from lab import netns
from lab.errors import LabFailure

ETHERTYPE = 0x88B5  # LAB_L2ECHO_ETHERTYPE
MAGIC = 0x4C544449  # LAB_L2ECHO_MAGIC ("LTDI")
VERSION = 1  # LAB_L2ECHO_VERSION
OP_REQUEST, OP_REPLY = 1, 2  # LAB_L2ECHO_OP_REQUEST, LAB_L2ECHO_OP_REPLY
ETH_HLEN = 14  # LAB_L2ECHO_ETH_HLEN
#: struct lab_l2echo_hdr: magic, version, op, payload_len, seq, ifindex (big endian)
HEADER = struct.Struct("!IBBHII")


@dataclass(frozen=True)
class ProbeReply:
    mac: str
    ifindex: int
    rtt_s: float


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def build_request(dst: str, src: str, seq: int, payload: bytes) -> bytes:
    header = HEADER.pack(MAGIC, VERSION, OP_REQUEST, len(payload), seq, 0)
    return _mac_bytes(dst) + _mac_bytes(src) + struct.pack("!H", ETHERTYPE) + header + payload


def parse_reply(frame: bytes, seq: int, payload: bytes) -> tuple[str, int] | None:
    """(sender MAC, responder ifindex) if ``frame`` answers probe ``seq``; else None."""
    if len(frame) < ETH_HLEN + HEADER.size or struct.unpack("!H", frame[12:14])[0] != ETHERTYPE:
        return None
    magic, version, op, length, rseq, ifindex = HEADER.unpack_from(frame, ETH_HLEN)
    body = frame[ETH_HLEN + HEADER.size:ETH_HLEN + HEADER.size + length]
    if (magic, version, op, rseq) != (MAGIC, VERSION, OP_REPLY, seq) or body != payload:
        return None
    return _mac_text(frame[6:12]), ifindex


def probe(bridge: str, dst_mac: str, timeout: float = 2.0) -> ProbeReply | None:
    """Send one probe to ``dst_mac`` through ``bridge``; the reply, or None on timeout."""
    if not netns.has_interface(bridge):
        raise LabFailure(f"bridge {bridge} is not in this network namespace",
                         hint="run inside the lab's namespace (the pytest plugin enters it)")
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE)) as sock:
        sock.bind((bridge, ETHERTYPE))
        src = _mac_text(sock.getsockname()[4][:6])
        seq = secrets.randbits(31)
        payload = os.urandom(32)
        t0 = time.monotonic()
        sock.send(build_request(dst_mac, src, seq, payload))
        deadline = t0 + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            got = parse_reply(sock.recv(2048), seq, payload)
            if got is not None and got[0] == dst_mac:
                return ProbeReply(mac=got[0], ifindex=got[1], rtt_s=time.monotonic() - t0)
    return None
