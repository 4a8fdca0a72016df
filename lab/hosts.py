"""The lab's hypervisor hosts beyond the local one ([[hosts]], issue 12).

:func:`targets` resolves each configured host to what provisioning needs: its libvirt
URI, its pool directory and the gateway to its guests. A ``namespace`` host is made
here on this machine (:mod:`lab.nshost`) when the lab comes up and stopped when it
goes down; a ``remote`` host is the user's machine, reached with the URI and the key
files the config names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from lab import netns
from lab.config import HostKind, HostSection, LabConfig
from lab.gateway import Gateway
from lab.nshost import HostSpec, NamespaceHost, write_ssh_wrapper
from lab.sandbox import NETNS, RUN_DIR


@dataclass(frozen=True)
class HostTarget:
    """One hypervisor host of the lab, resolved."""

    name: str
    kind: str
    uri: str
    pool_path: str
    gateway: Gateway
    #: where QEMU writes a VM's console log on that host (the controller reads it
    #: through libvirt's console stream, never from this path)
    console_dir: str = "/var/log/libvirt/qemu"


def namespace_host(section: HostSection) -> NamespaceHost:
    """The lab's namespace host for ``section``, wired to the sandbox's namespace (shared
    by every lab: each host gets its own /30 of 192.168.200.0/24, chosen by its name)."""
    slot = int(hashlib.sha256(section.name.encode()).hexdigest(), 16) % 64
    return NamespaceHost(HostSpec(name=section.name, netns=f"dlh-{section.name}"[:15],
                                  controller_netns=NETNS, subnet=f"192.168.200.{4 * slot}/30",
                                  run_dir=RUN_DIR / "hosts" / section.name))


def targets(config: LabConfig, say: Callable[[str], None], start: bool = True
            ) -> list[HostTarget]:
    """Every [[hosts]] entry resolved; namespace hosts are started first (``start``)."""
    found: list[HostTarget] = []
    for section in config.hosts:
        pool = section.pool_path or f"/var/lib/libvirt/images/{config.lab.name}"
        if section.kind is HostKind.NAMESPACE:
            host = namespace_host(section)
            if start and not host.running():
                say(f"starting namespace host {section.name} (own network namespace "
                    f"{host.spec.netns}, libvirtd and sshd at {host.spec.addr})")
                host.start()
            elif start and host.relink():
                say(f"namespace host {section.name}: {RELINKED}")
            gateway = Gateway(section.name, host.spec.addr, 22, "root",
                              str(host.ssh.client_key), str(host.ssh.known_hosts))
            found.append(HostTarget(section.name, "namespace", host.uri("ssh"), pool, gateway))
            continue
        parts = urlsplit(section.uri)
        base = config.base_dir
        gateway = Gateway(section.name, section.ssh_address or parts.hostname or "",
                          section.ssh_port, section.ssh_user or parts.username or "root",
                          str(base / section.ssh_key), str(base / section.ssh_known_hosts))
        found.append(HostTarget(section.name, "remote", pinned_uri(config, section, gateway),
                                pool, gateway))
    return found


def stop_namespace_hosts(config: LabConfig, say: Callable[[str], None]) -> None:
    """Stop the namespace hosts the lab made (after its objects there are removed)."""
    for section in config.hosts:
        if section.kind is HostKind.NAMESPACE:
            host = namespace_host(section)
            if host.state() is not None:
                for line in host.stop():
                    say(f"namespace host {section.name}: stopped {line}")


#: said when a running namespace host's veth pair is made again (NamespaceHost.relink)
RELINKED = "its link to the sandbox was gone (the sandbox was started again since); made again"


def relinked_namespace_host(config: LabConfig, name: str, say: Callable[[str], None]) -> bool:
    """Namespace host ``name`` of the lab linked to the sandbox again if it lost its link
    (:meth:`NamespaceHost.relink`); False when it cannot be: the sandbox's namespace is
    gone, and the host is reached only once it is stopped and started again."""
    for section in config.hosts:
        if section.name == name and section.kind is HostKind.NAMESPACE:
            host = namespace_host(section)
            if not netns.exists(host.spec.controller_netns):
                return False
            if host.relink():
                say(RELINKED)
    return True


def namespace_host_running(config: LabConfig, name: str) -> bool:
    return any(namespace_host(s).running() for s in config.hosts if s.name == name)


def pinned_uri(config: LabConfig, section: HostSection, gateway: Gateway) -> str:
    """``section``'s URI with the libvirt hop pinned too: for the ssh transport (which
    ignores libvirt's known_hosts parameter) ``command=`` runs ssh with only the lab's
    key and known_hosts, through a wrapper in the lab's state dir; libssh transports get
    ``known_hosts`` and ``keyfile`` themselves."""
    parts = urlsplit(section.uri)
    transport = parts.scheme.partition("+")[2]
    params = dict(parse_qsl(parts.query))
    params.setdefault("keyfile", gateway.key_file)
    if transport == "ssh":
        folder = config.state_dir / "hosts" / section.name
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_ssh_wrapper(folder / "ssh", folder / "ssh_config", Path(gateway.known_hosts),
                          Path(gateway.key_file))
        params.update({"no_tty": "1", "no_verify": "0", "command": str(folder / "ssh")})
    else:
        params.setdefault("known_hosts", gateway.known_hosts)
        params.setdefault("known_hosts_verify", "normal")
    return urlunsplit(parts._replace(query=urlencode(params, safe="/")))
