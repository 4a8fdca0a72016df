"""The micro guest's agent (images/linux-micro/lab-agent.c), built as the image
builder builds it and run for real on a pty standing in for its virtio-serial port."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.guests.micro_image import build_agent


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The host end of a pty whose other end the agent serves."""
    binary = tmp_path_factory.mktemp("agent") / "lab-agent"
    build_agent(binary)
    master, slave = pty.openpty()
    tty.setraw(slave)
    proc = subprocess.Popen([str(binary), os.ttyname(slave)], stderr=subprocess.PIPE)
    try:
        yield master
    finally:
        proc.kill()
        proc.wait(timeout=10)
        os.close(master)
        os.close(slave)


def ask(fd: int, request: bytes, deadline: float = 10.0) -> bytes:
    """Send ``request``; the agent's reply line (raw bytes, delimiter included)."""
    os.write(fd, request)
    got = b""
    end = time.monotonic() + deadline
    while not got.endswith(b"\n"):
        left = end - time.monotonic()
        assert left > 0, f"no reply to {request!r} within {deadline}s (got {got!r})"
        if select.select([fd], [], [], left)[0]:
            got += os.read(fd, 4096)
    return got


def test_guest_sync_echoes_the_id(port: int) -> None:
    reply = ask(port, b'{"execute":"guest-sync", "arguments":{"id":1733130000123}}\n')
    assert json.loads(reply) == {"return": 1733130000123}


def test_guest_sync_delimited_prefixes_the_sentinel(port: int) -> None:
    reply = ask(port, b'{"execute":"guest-sync-delimited","arguments":{"id":7}}')
    assert reply[:1] == b"\xff" and json.loads(reply[1:]) == {"return": 7}


def test_guest_ping_without_newline_and_split_writes(port: int) -> None:
    os.write(port, b'{"execute":')
    assert json.loads(ask(port, b'"guest-ping"}')) == {"return": {}}


def test_unknown_command_is_an_error_and_the_stream_stays_in_sync(port: int) -> None:
    reply = json.loads(ask(port, b'junk {"execute":"guest-exec","arguments":{"x":"}"}}\n'))
    assert reply["error"]["class"] == "CommandNotFound"
    assert json.loads(ask(port, b'{"execute":"guest-ping"}\n')) == {"return": {}}


def test_the_agent_source_is_in_the_image_recipe() -> None:
    recipe = Path(__file__).resolve().parents[2] / "images" / "linux-micro"
    assert (recipe / "lab-agent.c").exists()
    assert "::respawn:/sbin/lab-agent" in (recipe / "rootfs" / "etc" / "inittab").read_text()


_GOOD_IDENTITY = {"hostname": "vm2", "net": "52:54:00:ab:02:01=192.168.214.12/24",
                  "hostkey": "00" * 83, "seed": "5a" * 32, "epoch": 1000000000}


@pytest.mark.parametrize(("change", "why"), [
    ({"hostname": "VM2; reboot"}, "bad hostname"),
    ({"hostname": ""}, "bad hostname"),
    ({"net": "52:54:00:ab:02:01=1.2.3.4/24;rm -rf /"}, "bad net"),
    ({"seed": "5a" * 31}, "bad seed"),
    ({"seed": "zz" * 32}, "bad seed"),
    ({"hostkey": "abc"}, "bad hostkey"),
    ({"epoch": 0}, "bad epoch"),
])
def test_lab_identity_refuses_bad_arguments_before_changing_anything(
        port: int, change: dict[str, object], why: str) -> None:
    """Every argument is checked before the first change (this runs on the host: a
    refused request must leave its hostname and clock alone)."""
    import socket
    before = socket.gethostname()
    request = {"execute": "lab-identity", "arguments": {**_GOOD_IDENTITY, **change}}
    reply = json.loads(ask(port, json.dumps(request).encode() + b"\n"))
    assert reply["error"]["class"] == "GenericError"
    assert why in reply["error"]["desc"]
    assert socket.gethostname() == before
    assert time.time() > 1000000000 + 3600  # the clock was not set to the epoch (2001)
