"""Guest connections never honour the user's (or the system's) SSH or fabric configuration.

A ``ProxyCommand`` in ``~/.ssh/config`` or a ``gateway`` in ``~/.fabric.yaml`` would
run an arbitrary command (as root, for a sandboxed lab) and route the session
through it. The test writes both into a real HOME, points the lab's Guest at a
closed loopback port and really tries to connect: the connection must fail on
its own, and neither proxy command may have run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from lab.commands import interactive_ssh_argv
from lab.errors import GuestUnreachable
from lab.guest import Guest, GuestAddress

#: Any well-formed ed25519 public key: the connection never gets as far as checking it.
HOST_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def _closed_port_22() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 22), timeout=1):
            return False
    except OSError:
        return True


def test_user_ssh_and_fabric_config_are_ignored(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    if not _closed_port_22():
        pytest.skip("something listens on 127.0.0.1:22; the test needs a closed port")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    ssh_marker = tmp_path / "ssh-proxycommand-ran"
    fabric_marker = tmp_path / "fabric-gateway-ran"
    (home / ".ssh" / "config").write_text(
        f"Host *\n    ProxyCommand touch {ssh_marker}\n    Port 2222\n")
    (home / ".fabric.yaml").write_text(f"gateway: touch {fabric_marker}\n")
    monkeypatch.setenv("HOME", str(home))
    key = tmp_path / "id_ed25519"
    key.write_text("unused: key authentication is never reached\n")
    addr = GuestAddress(name="probe", host="127.0.0.1", subnet="127.0.0.0/8", bridge="lo",
                        key_file=key,
                        host_key="ssh-ed25519 " + HOST_KEY)
    guest = Guest(addr, connect_timeout=3)
    with pytest.raises(GuestUnreachable) as info:
        guest.run("true", timeout=5)
    guest.close()
    assert not ssh_marker.exists(), "~/.ssh/config ProxyCommand was run"
    assert not fabric_marker.exists(), "~/.fabric.yaml gateway was run"
    assert "127.0.0.1:22" in str(info.value)


def ssh_options(ssh: str, argv: list[str]) -> dict[str, str]:
    """The options OpenSSH would really use for ``argv`` (``ssh -G`` connects nowhere)."""
    res = subprocess.run([ssh, "-G", *argv[1:]], capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL, check=True)
    return dict(line.split(" ", 1) for line in res.stdout.splitlines() if " " in line)


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
def test_interactive_ssh_reads_no_ssh_config(tmp_path: Path) -> None:
    # `lab ssh VM` execs OpenSSH with -F /dev/null: the only configuration file read
    # is the empty one (OpenSSH skips ~/.ssh/config and /etc/ssh/ssh_config with -F;
    # OpenSSH finds ~ through the password database, so a fake HOME cannot show it).
    hostile = tmp_path / "hostile_config"
    hostile.write_text("Host *\n    ProxyCommand touch /nonexistent/marker\n"
                       "    HostName 10.66.66.66\n    Port 2222\n")
    addr = GuestAddress(name="probe", host="192.168.213.11", subnet="192.168.213.0/24",
                        bridge="dlab-m", key_file=tmp_path / "id",
                        host_key="ssh-ed25519 " + HOST_KEY)
    ssh = shutil.which("ssh")
    assert ssh is not None
    argv = interactive_ssh_argv(ssh, addr, tmp_path / "known_hosts")
    assert argv[1:3] == ["-F", os.devnull]
    options = ssh_options(ssh, argv)
    assert "proxycommand" not in options and options.get("proxyjump", "none") == "none"
    assert (options["hostname"], options["port"], options["user"]) == (
        "192.168.213.11", "22", "root")
    assert options["userknownhostsfile"] == str(tmp_path / "known_hosts")
    assert options["globalknownhostsfile"] == os.devnull
    assert options["stricthostkeychecking"] in ("true", "yes")
    # Control: the file -F names is what OpenSSH reads (hostile settings do show up).
    control = ssh_options(ssh, [ssh, "-F", str(hostile), *argv[3:]])
    assert control["hostname"] == "10.66.66.66" and control["port"] == "2222"
