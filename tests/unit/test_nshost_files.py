"""The namespace host's SSH material and URIs (lab/nshost.py), checked by the real tools:
`sshd -t` accepts the server config, `ssh -G` shows the client pins the lab's key files."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from lab.errors import LabFailure
from lab.nshost import SSHD, HostSpec, NamespaceHost, prepare_ssh


def _spec(tmp_path: Path) -> HostSpec:
    return HostSpec(name="host2", controller_netns="dlctl2", subnet="192.168.200.0/30",
                    run_dir=tmp_path / "host2")


def test_addresses_and_veth_names() -> None:
    spec = HostSpec(name="a-very-long-host-name")
    assert (spec.controller_addr, spec.addr, spec.prefix) == ("192.168.200.1", "192.168.200.2", 30)
    assert all(len(name) <= 15 for name in spec.veth)  # Linux IFNAMSIZ
    assert spec.veth[0] != spec.veth[1]
    with pytest.raises(LabFailure, match="no room"):
        _ = HostSpec(subnet="192.168.200.4/32").addr


@pytest.mark.skipif(not SSHD.exists(), reason="openssh-server is not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="a private mount namespace needs root")
def test_sshd_accepts_its_config_and_ssh_pins_the_lab_files(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    files = prepare_ssh(spec)
    # sshd -t wants its privilege separation dir: a fresh /run in a private mount namespace
    check = f"mount -t tmpfs tmpfs /run && mkdir /run/sshd && {SSHD} -t -f {files.sshd_config}"
    res = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", check],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    effective = subprocess.run([str(files.ssh_command), "-G", spec.addr], check=True,
                               capture_output=True, text=True, timeout=30).stdout.splitlines()
    assert f"userknownhostsfile {files.known_hosts}" in effective
    assert "stricthostkeychecking true" in effective
    assert f"identityfile {files.client_key}" in effective
    assert files.known_hosts.read_text().startswith(f"{spec.addr} ssh-ed25519 ")
    assert files.client_key.stat().st_mode & 0o077 == 0


def test_uris_name_the_lab_key_and_pin_the_host_key(tmp_path: Path) -> None:
    host = NamespaceHost(_spec(tmp_path))
    ssh = urlsplit(host.uri("ssh"))
    assert (ssh.scheme, ssh.netloc, ssh.path) == ("qemu+ssh", "root@192.168.200.2", "/system")
    query = parse_qs(ssh.query)
    assert query["keyfile"] == [str(host.ssh.client_key)]
    assert query["command"] == [str(host.ssh.ssh_command)]  # the pinning ssh wrapper
    assert query["no_verify"] == ["0"]
    libssh = parse_qs(urlsplit(host.uri("libssh")).query)
    assert libssh["known_hosts"] == [str(host.ssh.known_hosts)]
    assert libssh["known_hosts_verify"] == ["normal"]
    with pytest.raises(LabFailure, match="unknown transport"):
        host.uri("tls")
