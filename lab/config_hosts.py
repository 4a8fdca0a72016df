"""Validation of ``[[hosts]]``: more hypervisor hosts and the VMs each runs (issue 12).

Without the array the lab has one host, ``local`` ([lab] uri), as always. Each entry
names its VMs from ``[vms] names``; a VM runs on exactly one host. A ``remote`` host
is another machine: its libvirt URI (an SSH transport) and its sshd, the gateway to its
guests, with a key and a known_hosts file the user gives (the lab never reads
~/.ssh). A ``namespace`` host is made by the lab on this machine (lab/nshost.py).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from lab import config_checks as checks
from lab.errors import ConfigError

if TYPE_CHECKING:
    from lab.config import HostSection, LabConfig

LOCAL = "local"
_HOST_NAME_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,13}[a-z0-9])?$")
#: URI transports that reach another machine and carry its guests' gateway (its sshd)
REMOTE_TRANSPORTS = ("ssh", "libssh", "libssh2")
MAX_HOSTS = 16
#: an interpreter as one argv word: a command name or an absolute path, no arguments
_PYTHON_RE = re.compile(r"^(?:/[A-Za-z0-9._+-]+)+$|^[A-Za-z0-9._+-]+$")


def validate(where: str, config: LabConfig) -> None:
    hosts = config.hosts
    checks.check_count(where, "hosts", len(hosts), 0, MAX_HOSTS, "one libvirt connection each")
    names: set[str] = set()
    placed: dict[str, str] = {}
    for i, host in enumerate(hosts):
        key = f"hosts[{i}]"
        _check_name(where, key, host.name, names)
        names.add(host.name)
        for vm in host.vms:
            if vm not in config.vms.names:
                raise ConfigError(where, f"{key}.vms", f"names VM {vm!r}, which is not in "
                                  "[vms] names", "list VMs of [vms] names only")
            if vm in placed:
                raise ConfigError(where, f"{key}.vms", f"places VM {vm!r} on {host.name}, "
                                  f"but {placed[vm]} runs it already",
                                  "put every VM on one host")
            placed[vm] = host.name
        if not host.vms:
            raise ConfigError(where, f"{key}.vms", "is empty",
                              "list the VMs this host runs, or remove the [[hosts]] entry")
    for i, host in enumerate(hosts):
        key = f"hosts[{i}]"
        if host.agent_python and not _PYTHON_RE.match(host.agent_python):
            raise ConfigError(where, f"{key}.agent_python", f"{host.agent_python!r} is not a "
                              "command name or an absolute path",
                              "give e.g. \"python3.11\" or \"/usr/bin/python3\" (letters, "
                              "digits and ._+-/ only, no spaces or arguments)")
        if host.pool_path:
            checks.check_pool_path(where, f"{key}.pool_path", host.pool_path, [])
        if host.kind.value == "namespace":
            _check_namespace(where, key, host, config)
        else:
            _check_remote(where, key, host, config.base_dir)


def _check_name(where: str, key: str, name: str, seen: set[str]) -> None:
    if not _HOST_NAME_RE.match(name) or name == LOCAL:
        raise ConfigError(where, f"{key}.name", f"{name!r} is not a valid host name",
                          "use 1-15 lowercase letters, digits or '-', starting with a letter "
                          f"(not {LOCAL!r}: that is the host of [lab] uri)")
    if name in seen:
        raise ConfigError(where, f"{key}.name", f"names host {name!r} twice",
                          "give every host its own name")


def _check_namespace(where: str, key: str, host: HostSection, config: LabConfig) -> None:
    if host.uri:
        raise ConfigError(where, f"{key}.uri", "is set for a namespace host",
                          "leave it out: the lab makes that host and knows its URI")
    if not checks.uri_is_local(config.lab.uri):
        raise ConfigError(where, f"{key}.kind", "namespace hosts need a local [lab] uri",
                          "use uri = \"qemu:///system\" (the lab's own sandbox)")
    others = [h for h in config.hosts if h.kind.value == "namespace" and h is not host]
    if others:
        raise ConfigError(where, f"{key}.kind", "a lab has at most one namespace host",
                          "use one [[hosts]] entry with kind = \"namespace\"")


def _check_remote(where: str, key: str, host: HostSection, base: Path) -> None:
    if not host.uri:
        raise ConfigError(where, f"{key}.uri", "is empty",
                          "give the host's libvirt URI, e.g. \"qemu+ssh://root@kvm2/system\"")
    checks.check_uri(where, f"{key}.uri", host.uri)
    scheme = urlsplit(host.uri).scheme.partition("+")[2]
    if scheme not in REMOTE_TRANSPORTS:
        raise ConfigError(where, f"{key}.uri", f"{host.uri!r} does not reach another machine "
                          "over SSH", "use qemu+ssh://user@host/system (its sshd is also "
                          "the gateway to its guests)")
    checks.check_range(where, f"{key}.ssh_port", host.ssh_port, 1, 65535)
    address = host.ssh_address or (urlsplit(host.uri).hostname or "")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ConfigError(where, f"{key}.ssh_address", f"{address!r} is not an IP address",
                          "give the host's sshd address as an IP (the lab checks the route "
                          "to its guests' gateway by address and resolves no names)") from None
    for field in ("ssh_key", "ssh_known_hosts"):
        value = getattr(host, field)
        if not value:
            raise ConfigError(where, f"{key}.{field}", "is empty",
                              "give the lab's own file for the gateway (never ~/.ssh)")
        if not (base / value).is_file():
            raise ConfigError(where, f"{key}.{field}", f"{value!r} is not a file",
                              "create it, or fix the path (relative to the config file)")
