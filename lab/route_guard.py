"""Host-side traffic stays inside the lab: refuse to probe or load anything routed elsewhere.

Guest subnets are private ranges that exist only behind the lab's bridges (inside
the lab's network namespace when it runs in a sandbox). A wrong address in a
config, a typo on the command line, or a process that is not in the namespace
(after a host reboot the namespace is gone) would send the lab's probes, load or
SSH sessions out through the host's default route to whatever answers there.
Before it sends, every host-side sender proves, with the kernel's own route
lookup (``ip route get``) in the calling thread's namespace, that the packet
leaves through the lab bridge of the target's network; else it raises
:class:`~lab.errors.OutsideLab` with one line.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lab import naming, netns
from lab.errors import LabFailure, OutsideLab
from lab.hosttools import run_tool

if TYPE_CHECKING:  # annotations only: the host agent's zipapp bundles this module
    from lab.inventory import Inventory
    from lab.plan import Nic

_HINT = ("run through `lab ...` or the pytest plugin, which enter the lab's namespace; "
         "targets must be lab guests (see `lab status`)")


@dataclass(frozen=True)
class LabNetwork:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    bridge: str


def lab_networks(inv: Inventory) -> list[LabNetwork]:
    """Every network of the lab as the inventory records it (subnet and host bridge)."""
    seen: dict[str, LabNetwork] = {}
    for vm in inv.vms:
        for nic in vm.nics:
            net = ipaddress.ip_network(f"{nic.address}/{nic.prefix}", strict=False)
            seen.setdefault(str(net), LabNetwork(net, nic.bridge))
    return list(seen.values())


def route_device(address: str, source: str | None = None) -> str | None:
    """The interface the kernel sends ``address`` through from this thread's namespace."""
    cmd = ["ip", "-o", "route", "get", address, *(["from", source] if source else [])]
    try:
        out = run_tool(cmd, f"looking up the route to {address}", timeout=10)
    except LabFailure:
        return None  # no route at all (or a source that is not local here)
    words = out.split()
    return words[words.index("dev") + 1] if "dev" in words else None


def require_route(address: str, bridge: str, what: str, source: str | None = None) -> None:
    """Refuse unless packets to ``address`` leave through the lab bridge ``bridge`` here."""
    if not netns.has_interface(bridge):
        raise OutsideLab(f"{what}: the lab bridge {bridge} is not in this network namespace; "
                         f"refusing to send to {address}", hint=_HINT)
    dev = route_device(address, source)
    if dev != bridge:
        raise OutsideLab(f"{what}: {address} is routed via {dev or 'nothing'}, not the lab "
                         f"bridge {bridge}; refusing to send outside the lab", hint=_HINT)


def require_gateway_route(address: str, what: str) -> None:
    """Refuse unless the SSH gateway ``address`` (a remote hypervisor host, whose guests
    are reached through it) is loopback or on a link of this thread's namespace: the
    kernel routes it directly (no next hop) through an interface other than the one of
    this namespace's default route. The lab's namespace has no default route; the host's
    namespace would send it out to the world."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise OutsideLab(f"{what}: gateway {address!r} is not an IP address",
                         hint="name the host's sshd by the address the lab reaches it at") \
            from None
    if ip.is_loopback:
        return
    words = _route_words(address)
    dev = words[words.index("dev") + 1] if "dev" in words else None
    if dev is None or "via" in words:
        via = f"via {words[words.index('via') + 1]}" if "via" in words else "nothing"
        raise OutsideLab(f"{what}: gateway {address} is routed {via}, not on a link of this "
                         "network namespace; refusing to send outside the lab", hint=_HINT)
    if dev in _default_devices(ip.version):
        raise OutsideLab(f"{what}: gateway {address} is routed via {dev}, this namespace's "
                         "way out; refusing to send outside the lab", hint=_HINT)


def _default_devices(version: int) -> set[str]:
    """The interfaces of this namespace's default routes (none in the lab's namespace)."""
    out = run_tool(["ip", f"-{version}", "-o", "route", "show", "default"],
                   "looking up the default route", timeout=10)
    return {line.split()[line.split().index("dev") + 1] for line in out.splitlines()
            if "dev" in line.split()}


def _route_words(address: str, source: str | None = None) -> list[str]:
    """``ip route get address`` split into words (empty: no route at all)."""
    cmd = ["ip", "-o", "route", "get", address, *(["from", source] if source else [])]
    try:
        return run_tool(cmd, f"looking up the route to {address}", timeout=10).split()
    except LabFailure:
        return []


# ---- on a hypervisor host, inside the host agent (issue 12) ---------------------------

_HOST_HINT = ("the host agent sends only through the lab's bridges on its host; "
              "targets must be lab guests of that host (see `lab status`)")


def require_host_target(address: str, what: str, lab: str | None = None,
                        source: str | None = None) -> None:
    """Run by the host agent on its host: refuse unless ``address`` is reached directly
    (no next hop) through a Linux bridge of this thread's namespace -- one of lab
    ``lab``'s bridges when the controller named the lab -- or is an address of such a
    bridge itself. Loopback never leaves the host (as for `lab load` here)."""
    try:
        if ipaddress.ip_address(address).is_loopback:
            return
    except ValueError:
        raise OutsideLab(f"{what}: {address!r} is not an IP address of a lab network",
                         hint=_HOST_HINT) from None
    words = _route_words(address, source)
    if "via" in words:
        raise OutsideLab(f"{what}: {address} is routed via {words[words.index('via') + 1]} "
                         "on this host, not through a lab bridge; refusing to send outside "
                         "the lab", hint=_HOST_HINT)
    if words[:1] == ["local"]:
        dev = _address_holder(address)
    else:
        dev = words[words.index("dev") + 1] if "dev" in words else None
    if dev is None or not _is_lab_bridge(dev, lab):
        raise OutsideLab(f"{what}: {address} is routed via {dev or 'nothing'} on this host, "
                         f"not {_lab_bridges(lab)}; refusing to send outside the lab",
                         hint=_HOST_HINT)


def require_host_bridge(bridge: str, what: str, lab: str | None = None) -> None:
    """Run by the host agent before an L2 probe: ``bridge``, when it exists in this
    thread's namespace, is a lab bridge (a missing one is the probe's own error)."""
    if netns.has_interface(bridge) and not _is_lab_bridge(bridge, lab):
        raise OutsideLab(f"{what}: {bridge} is not {_lab_bridges(lab)}; refusing to send "
                         "frames outside the lab", hint=_HOST_HINT)


def _lab_bridges(lab: str | None) -> str:
    if lab is None:
        return "a bridge of this host"
    return f"a bridge of lab {lab} ({naming.mgmt_bridge(lab)}, {naming.test_bridge(lab, 0)}...)"


def _is_lab_bridge(dev: str, lab: str | None) -> bool:
    """``dev`` is a Linux bridge here, named as lab ``lab`` names its bridges (if given)."""
    if lab is not None:
        prefix = naming.test_bridge(lab, 0)[:-1]
        if dev != naming.mgmt_bridge(lab) and not (
                dev.startswith(prefix) and dev[len(prefix):].isdigit()):
            return False
    out = run_tool(["ip", "-o", "link", "show", "type", "bridge"],
                   "listing the bridges", timeout=10)
    return dev in {line.split()[1].rstrip(":").split("@")[0] for line in out.splitlines()
                   if len(line.split()) > 1}


def _address_holder(address: str) -> str | None:
    """The interface that has ``address`` (one of this namespace's own)."""
    out = run_tool(["ip", "-o", "addr", "show", "to", address],
                   f"looking up the interface of {address}", timeout=10)
    words = out.split()
    return words[1] if len(words) > 1 else None


def require_nic_route(nic: Nic, what: str) -> None:
    """A scenario's probe or echo toward ``nic`` stays on that NIC's lab bridge."""
    require_route(nic.address, nic.bridge, what)


def require_lab_target(inv: Inventory, address: str, what: str,
                       source: str | None = None) -> None:
    """``address`` is on one of ``inv``'s networks, this thread is in the lab's namespace
    (if it has one) and the route to it goes through that network's bridge."""
    if inv.netns and not netns.current_is(inv.netns):
        raise OutsideLab(f"{what}: this process is not in the lab's network namespace "
                         f"{inv.netns}; refusing to send to {address}", hint=_HINT)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise OutsideLab(f"{what}: {address!r} is not an IP address of a lab network",
                         hint=_HINT) from None
    for net in lab_networks(inv):
        if ip in net.network:
            require_route(address, net.bridge, what, source)
            return
    nets = ", ".join(str(n.network) for n in lab_networks(inv))
    raise OutsideLab(f"{what}: {address} is on none of lab {inv.lab}'s networks ({nets})",
                     hint=_HINT)


def require_gateway_target(inv: Inventory, address: str, gateway_address: str,
                           what: str) -> None:
    """A guest behind an SSH gateway: ``address`` is on one of ``inv``'s networks (they
    live on the gateway's host, so no route here), this thread is in the lab's namespace
    (if it has one) and the gateway is reached inside it (:func:`require_gateway_route`)."""
    if inv.netns and not netns.current_is(inv.netns):
        raise OutsideLab(f"{what}: this process is not in the lab's network namespace "
                         f"{inv.netns}; refusing to send to gateway {gateway_address}",
                         hint=_HINT)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise OutsideLab(f"{what}: {address!r} is not an IP address of a lab network",
                         hint=_HINT) from None
    if not any(ip in net.network for net in lab_networks(inv)):
        nets = ", ".join(str(n.network) for n in lab_networks(inv))
        raise OutsideLab(f"{what}: {address} is on none of lab {inv.lab}'s networks ({nets})",
                         hint=_HINT)
    require_gateway_route(gateway_address, what)


def require_load_targets(config: str | None, targets: list[tuple[str, str | None]]) -> None:
    """`lab load`: loopback targets never leave this host; any other target must be a lab
    address reached inside the lab (this process enters the lab's namespace first)."""
    remote = [(host, source) for host, source in targets if not _is_loopback(host)]
    if not remote:
        return
    from lab.config import load_config  # the load engine itself needs no lab
    from lab.host import enter_existing
    from lab.inventory import read
    from lab.paths import StatePaths

    cfg = load_config(config)
    inv = read(StatePaths(cfg.state_dir).inventory)
    enter_existing(cfg)
    for host, source in remote:
        require_lab_target(inv, host, f"lab load {host}", source)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
