"""The OpenSSH client command an agent runs through (lab.agent_pipes.openssh_argv):
the lab's own key and pinned known_hosts only, nothing from the user's or the system's
SSH configuration, no prompt, no agent or X11 forwarding, keepalives set."""

from __future__ import annotations

import itertools
import shutil

import pytest

from lab import gateway
from lab.agent_pipes import ALIVE_COUNT, ALIVE_INTERVAL_S, openssh_argv
from lab.gateway import Gateway


def _options(argv: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for flag, value in itertools.pairwise(argv):
        if flag == "-o":
            key, _, val = value.partition("=")
            found[key] = val
    return found


def test_the_command_names_only_the_labs_key_and_pinned_host_file() -> None:
    argv = openssh_argv(address="198.51.100.7", port=2222, user="lab", key_file="/k/id",
                        known_hosts="/k/known_hosts", connect_timeout_s=7.4)
    assert argv[0] == "ssh"
    assert argv[argv.index("-F") + 1] == "/dev/null"  # no ~/.ssh/config, no /etc/ssh/ssh_config
    assert argv[argv.index("-i") + 1] == "/k/id"
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[argv.index("-l") + 1] == "lab"
    assert {"-T", "-x", "-a"} <= set(argv)  # no tty, no X11, no agent forwarding
    assert argv[-2:] == ["--", "198.51.100.7"]  # the address is never read as an option
    options = _options(argv)
    assert options["UserKnownHostsFile"] == "/k/known_hosts"
    assert options["GlobalKnownHostsFile"] == "/dev/null"
    assert options["StrictHostKeyChecking"] == "yes"  # never trust on first use
    assert options["UpdateHostKeys"] == "no"  # never writes the pinned file
    assert options["BatchMode"] == "yes"  # never prompts
    assert options["IdentitiesOnly"] == "yes" and options["IdentityAgent"] == "none"
    assert options["ConnectTimeout"] == "7"
    assert options["ServerAliveInterval"] == str(ALIVE_INTERVAL_S)
    assert options["ServerAliveCountMax"] == str(ALIVE_COUNT)


def test_an_address_that_looks_like_an_option_stays_the_destination() -> None:
    argv = openssh_argv(address="-oProxyCommand=touch /tmp/x", port=22, user="root",
                        key_file="/k/id", known_hosts="/k/kh", connect_timeout_s=0.2)
    assert argv[-1] == "-oProxyCommand=touch /tmp/x" and argv[-2] == "--"
    assert _options(argv)["ConnectTimeout"] == "1"  # at least a second


def test_a_gateway_gives_the_same_pinned_files(monkeypatch: pytest.MonkeyPatch) -> None:
    gw = Gateway("h2", "192.0.2.9", 22, "root", "/run/k/id_ed25519", "/run/k/known_hosts")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert gateway.openssh(gw) is None  # no ssh client: paramiko channels instead
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    argv = gateway.openssh(gw)
    assert argv is not None
    options = _options(argv)
    assert options["UserKnownHostsFile"] == gw.known_hosts
    assert argv[argv.index("-i") + 1] == gw.key_file and argv[-1] == gw.address
