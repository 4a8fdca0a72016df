"""Guests behind an SSH gateway (lab/gateway.py): the route rule, the refusals before any
byte is sent, and `lab ssh`'s OpenSSH hop (real route lookups, real namespaces, real ssh -G).

The route rule for a gateway: loopback, or on a link of this namespace (routed with no
next hop, through an interface that is not this namespace's way out). A private
namespace with a veth link stands in for the lab's; the default route added to it
makes that same link "the way out".
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import gateway as gateways
from lab import netns, route_guard
from lab.commands import interactive_ssh_argv
from lab.errors import GatewayKeyRefused, GatewayUnreachable, OutsideLab
from lab.gateway import Gateway
from lab.guest import GuestAddress
from lab.inventory import Inventory, VmEntry
from lab.plan import Nic

NS = "dlgwunit"
#: any well-formed ed25519 public key (nothing here gets as far as checking it)
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a network namespace)")


@pytest.fixture
def lab_ns() -> Iterator[str]:
    """A namespace with one link, 10.251.9.1/24 on a veth (its peer in there too), and no
    default route."""
    netns.delete(NS)
    netns.create(NS)
    try:
        netns.ip("-n", NS, "link", "add", "dlgw-link", "type", "veth", "peer", "name",
                 "dlgw-peer")
        netns.ip("-n", NS, "addr", "add", "10.251.9.1/24", "dev", "dlgw-link")
        for dev in ("dlgw-link", "dlgw-peer"):
            netns.ip("-n", NS, "link", "set", dev, "up")
        yield NS
    finally:
        netns.delete(NS)


def test_a_loopback_gateway_passes_and_a_name_is_refused() -> None:
    route_guard.require_gateway_route("127.0.0.1", "ssh")
    route_guard.require_gateway_route("::1", "ssh")
    with pytest.raises(OutsideLab, match="not an IP address"):
        route_guard.require_gateway_route("host2.example.com", "ssh")


def test_a_gateway_reached_through_the_hosts_way_out_is_refused() -> None:
    # whatever this machine's network: 192.0.2.77 goes via a router or via the interface
    # of the default route, or has no route at all
    with pytest.raises(OutsideLab, match="refusing to send outside the lab"):
        route_guard.require_gateway_route("192.0.2.77", "ssh")


@needs_root
def test_a_gateway_on_a_link_of_the_labs_namespace_passes(lab_ns: str) -> None:
    with netns.inside(lab_ns):
        route_guard.require_gateway_route("10.251.9.7", "ssh")
        with pytest.raises(OutsideLab, match="routed nothing"):
            route_guard.require_gateway_route("10.9.9.9", "ssh")  # no route at all


@needs_root
def test_a_link_that_is_the_namespaces_way_out_is_refused(lab_ns: str) -> None:
    netns.ip("-n", lab_ns, "route", "add", "default", "via", "10.251.9.254")
    with netns.inside(lab_ns):
        with pytest.raises(OutsideLab, match="this namespace's way out"):
            route_guard.require_gateway_route("10.251.9.7", "ssh")
        with pytest.raises(OutsideLab, match=r"routed via 10\.251\.9\.254"):
            route_guard.require_gateway_route("10.9.9.9", "ssh")


def _inventory(ns: str | None) -> Inventory:
    nics = (Nic(alias="ua-mgmt", role="management", mac="52:54:00:01:01:00", model="virtio",
                network="t-mgmt", bridge="t-br", address="192.168.200.65", prefix=26),)
    vm = VmEntry(name="vm1", domain="t-vm1", snapshot="clean", console_log="", nics=nics)
    return Inventory(lab="t", run="r", uri="qemu:///system", netns=ns, acceleration="tcg",
                     key_file="k", host_key=HOST_KEY, known_hosts="kh",
                     management_subnet="192.168.200.64/26", vms=(vm,))


def test_lab_ssh_to_a_gateway_guest_checks_the_guest_address_and_namespace() -> None:
    # the guest's bridge is on the other host: no route here is needed for it
    route_guard.require_gateway_target(_inventory(None), "192.168.200.65", "127.0.0.1", "ssh")
    with pytest.raises(OutsideLab, match="none of lab t's networks"):
        route_guard.require_gateway_target(_inventory(None), "10.1.1.1", "127.0.0.1", "ssh")
    with pytest.raises(OutsideLab, match="not in the lab's network namespace"):
        route_guard.require_gateway_target(_inventory("t-no-such-netns"), "192.168.200.65",
                                           "127.0.0.1", "ssh")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_gateway_without_a_pinned_key_is_refused_before_connecting(tmp_path: Path) -> None:
    with socket.socket() as listener:  # would accept: it is never even connected to
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0)
        port = int(listener.getsockname()[1])
        known = tmp_path / "known_hosts"
        known.write_text(f"[127.0.0.2]:{port} {HOST_KEY}\n")  # another host's key only
        gw = Gateway("h2", "127.0.0.1", port, "root", str(tmp_path / "id"), str(known))
        with pytest.raises(GatewayKeyRefused, match="no host key for"):
            gateways.open_channel(gw, "192.168.200.65", 22, 3)
        with pytest.raises(BlockingIOError):
            listener.accept()
    missing = Gateway("h2", "127.0.0.1", port, "root", "id", str(tmp_path / "none"))
    with pytest.raises(GatewayUnreachable, match="cannot read its known_hosts"):
        gateways.open_channel(missing, "192.168.200.65", 22, 3)


def test_a_gateway_that_does_not_listen_is_unreachable(tmp_path: Path) -> None:
    port = _closed_port()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {HOST_KEY}\n")
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                   check=True, timeout=30)
    gw = Gateway("h2", "127.0.0.1", port, "root", str(key), str(known))
    with pytest.raises(GatewayUnreachable, match=rf"gateway h2 \(127.0.0.1:{port}\): cannot "
                                                 "connect"):
        gateways.open_channel(gw, "192.168.200.65", 22, 3)


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
def test_lab_ssh_goes_through_an_isolated_pinned_gateway_hop(tmp_path: Path) -> None:
    gw = Gateway("h2", "192.168.200.2", 2222, "root", str(tmp_path / "gw key%h"),
                 str(tmp_path / "gw_known_hosts"))
    addr = GuestAddress(name="g", host="192.168.200.65", subnet="192.168.200.64/26",
                        bridge="t-br", key_file=tmp_path / "id", host_key=HOST_KEY, gateway=gw)
    ssh = shutil.which("ssh")
    assert ssh is not None
    argv = interactive_ssh_argv(ssh, addr, tmp_path / "known_hosts")
    res = subprocess.run([ssh, "-G", *argv[1:]], capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL, check=True)
    options = dict(line.split(" ", 1) for line in res.stdout.splitlines() if " " in line)
    assert (options["hostname"], options["port"]) == ("192.168.200.65", "22")
    assert options["userknownhostsfile"] == str(tmp_path / "known_hosts")
    # the hop, as the shell will run it once ssh expanded its tokens (%% -> %, %h:%p)
    hop = shlex.split(options["proxycommand"].replace("%h:%p", "192.168.200.65:22")
                      .replace("%%", "%"))
    assert hop[:3] == [ssh, "-F", os.devnull]
    assert hop[-3:] == ["-W", "192.168.200.65:22", "root@192.168.200.2"]
    assert hop[hop.index("-i") + 1] == str(tmp_path / "gw key%%h")  # the hop expands again
    assert hop[hop.index("-p") + 1] == "2222"
    opts = [hop[i + 1] for i, word in enumerate(hop) if word == "-o"]
    for want in (f"UserKnownHostsFile={tmp_path / 'gw_known_hosts'}",
                 f"GlobalKnownHostsFile={os.devnull}", "StrictHostKeyChecking=yes",
                 "IdentitiesOnly=yes", "IdentityAgent=none", "ProxyCommand=none",
                 "BatchMode=yes"):
        assert want in opts, (want, opts)
