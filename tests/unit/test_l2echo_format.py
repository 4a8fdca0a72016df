"""The host probe (lab/l2probe.py) speaks the one L2 echo wire format of
drivers/common/labl2echo.h: constants and offsets compiled from the header, and a reply
built by the header's own C code (the code the Windows and Linux responders run) is
accepted by ``parse_reply``; what the C code rejects, the probe never sends."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lab import l2probe

ROOT = Path(__file__).resolve().parents[2]
HEADER = ROOT / "drivers" / "common" / "labl2echo.h"
USERS = (
    ROOT / "drivers" / "labtdi" / "windows" / "labtdi.c",
    ROOT / "drivers" / "labtdi" / "linux" / "labtdi.c",
    ROOT / "drivers" / "linux" / "l2probe.c",
)
TIMEOUT_S = 60

# Prints the header's constants, then answers the request frame given in hex as a
# responder does: validate, swap MACs, make the reply header, keep the echoed payload.
RESPONDER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "labl2echo.h"

int main(int argc, char **argv)
{
    unsigned char f[2048], mac[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0x01};
    size_t n = 0, i;
    int payload;

    printf("ETHERTYPE=%d MAGIC=%u VERSION=%d OP_REQUEST=%d OP_REPLY=%d ETH_HLEN=%d HDR_LEN=%d\n",
           LAB_L2ECHO_ETHERTYPE, LAB_L2ECHO_MAGIC, LAB_L2ECHO_VERSION, LAB_L2ECHO_OP_REQUEST,
           LAB_L2ECHO_OP_REPLY, LAB_L2ECHO_ETH_HLEN, LAB_L2ECHO_HDR_LEN);
    printf("OFFSETS=%d,%d,%d,%d,%d,%d\n", LAB_L2ECHO_OFF_MAGIC, LAB_L2ECHO_OFF_VERSION,
           LAB_L2ECHO_OFF_OP, LAB_L2ECHO_OFF_PAYLOAD_LEN, LAB_L2ECHO_OFF_SEQ,
           LAB_L2ECHO_OFF_IFINDEX);
    if (argc != 3)
        return 2;
    for (const char *h = argv[1]; h[0] && h[1] && n < sizeof(f); h += 2)
        sscanf(h, "%2hhx", &f[n++]);
    payload = n < LAB_L2ECHO_ETH_HLEN ? -1
        : lab_l2echo_request_payload(f + LAB_L2ECHO_ETH_HLEN, (unsigned)n - LAB_L2ECHO_ETH_HLEN);
    if (payload < 0) {
        printf("REPLY=none\n");
        return 0;
    }
    memcpy(f, f + 6, 6);
    memcpy(f + 6, mac, 6);
    lab_l2echo_make_reply(f + LAB_L2ECHO_ETH_HLEN, (unsigned)payload, (unsigned)atoi(argv[2]));
    printf("REPLY=");
    for (i = 0; i < (size_t)(LAB_L2ECHO_ETH_HLEN + LAB_L2ECHO_HDR_LEN + payload); i++)
        printf("%02x", f[i]);
    printf("\n");
    return 0;
}
"""

RESPONDER_MAC = "52:54:00:ab:cd:01"
PROBER_MAC = "02:00:00:00:00:01"


@pytest.fixture(scope="module")
def responder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is not installed: the wire-format check compiles labl2echo.h")
    work = tmp_path_factory.mktemp("l2echo")
    (work / "responder.c").write_text(RESPONDER_C)
    exe = work / "responder"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", f"-I{HEADER.parent}",
                    "-o", str(exe), str(work / "responder.c")],
                   check=True, timeout=TIMEOUT_S, capture_output=True, text=True)
    return exe


def _answer(exe: Path, frame: bytes, ifindex: int) -> dict[str, str]:
    out = subprocess.run([str(exe), frame.hex(), str(ifindex)], check=True,
                         timeout=TIMEOUT_S, capture_output=True, text=True).stdout
    return dict(item.split("=", 1) for item in out.split())


def test_probe_constants_are_the_headers(responder: Path) -> None:
    got = _answer(responder, b"", 0)
    assert int(got["ETHERTYPE"]) == l2probe.ETHERTYPE
    assert int(got["MAGIC"]) == l2probe.MAGIC
    assert int(got["VERSION"]) == l2probe.VERSION
    assert (int(got["OP_REQUEST"]), int(got["OP_REPLY"])) == (l2probe.OP_REQUEST, l2probe.OP_REPLY)
    assert int(got["ETH_HLEN"]) == l2probe.ETH_HLEN
    assert int(got["HDR_LEN"]) == l2probe.HEADER.size
    # struct.Struct("!IBBHII") packs its fields at these offsets, without padding
    assert [int(v) for v in got["OFFSETS"].split(",")] == [0, 4, 5, 6, 8, 12]


def test_reply_built_by_the_header_code_is_accepted(responder: Path) -> None:
    payload = bytes(range(48))
    request = l2probe.build_request("ff:ff:ff:ff:ff:ff", PROBER_MAC, 0x1234567, payload)
    reply = bytes.fromhex(_answer(responder, request, 42)["REPLY"])
    assert reply[:6] == bytes.fromhex(PROBER_MAC.replace(":", ""))
    assert l2probe.parse_reply(reply, 0x1234567, payload) == (RESPONDER_MAC, 42)
    assert l2probe.parse_reply(reply, 0x1234568, payload) is None  # another probe's seq
    assert l2probe.parse_reply(reply, 0x1234567, payload[::-1]) is None  # corrupted payload


def test_padding_of_a_short_frame_is_not_echoed(responder: Path) -> None:
    payload = b"abc"
    request = l2probe.build_request("ff:ff:ff:ff:ff:ff", PROBER_MAC, 7, payload) + bytes(27)
    reply = bytes.fromhex(_answer(responder, request, 3)["REPLY"])
    assert len(reply) == l2probe.ETH_HLEN + l2probe.HEADER.size + len(payload)
    assert l2probe.parse_reply(reply, 7, payload) == (RESPONDER_MAC, 3)


@pytest.mark.parametrize(("offset", "value"), [
    pytest.param(14, 0x00, id="wrong-magic"),
    pytest.param(18, 0x02, id="wrong-version"),
    pytest.param(19, l2probe.OP_REPLY, id="a-reply-is-not-answered"),
])
def test_responder_ignores_what_is_not_a_request(responder: Path, offset: int, value: int) -> None:
    request = bytearray(l2probe.build_request("ff:ff:ff:ff:ff:ff", PROBER_MAC, 9, b"xyz"))
    request[offset] = value
    assert _answer(responder, bytes(request), 1)["REPLY"] == "none"


def test_every_responder_and_probe_includes_the_shared_header() -> None:
    for source in USERS:
        assert '#include "labl2echo.h"' in source.read_text(), source
    assert not (ROOT / "drivers" / "labtdi" / "linux" / "labtdi_proto.h").exists()
    assert "labl2echo.h" in (l2probe.__doc__ or "")
