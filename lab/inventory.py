"""The inventory: what `lab up` made, as JSON other tools (and the pytest plugin) read.

Written atomically (temporary file + rename), so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lab.errors import LabFailure
from lab.gateway import Gateway
from lab.plan import Nic, VmSpec

SNAPSHOT_NAME = "clean"


@dataclass(frozen=True)
class VmEntry:
    name: str
    domain: str
    snapshot: str
    console_log: str
    nics: tuple[Nic, ...]
    #: this VM's own pinned SSH host key (lab.vmkeys); "" = the lab-wide ``host_key``
    host_key: str = ""
    #: the hypervisor host that runs it (``Inventory.hosts``; "local": ``Inventory.uri``)
    host: str = "local"
    #: its host's sshd, through which the controller reaches it (None: directly)
    gateway: Gateway | None = None

    @property
    def mgmt(self) -> Nic:
        return next(n for n in self.nics if n.role == "management")

    @property
    def test_nics(self) -> tuple[Nic, ...]:
        return tuple(n for n in self.nics if n.role == "test")


@dataclass(frozen=True)
class HostEntry:
    """One hypervisor host of a multi-host lab (the local host is ``Inventory.uri``)."""

    name: str
    uri: str
    kind: str  #: "remote" or "namespace" (config.HostKind)


@dataclass(frozen=True)
class Inventory:
    lab: str
    run: str
    uri: str
    netns: str | None
    acceleration: str
    key_file: str
    host_key: str
    known_hosts: str
    management_subnet: str
    vms: tuple[VmEntry, ...]
    guest_kind: str = "linux-micro"  #: the config's [image] kind (lab.guests registry)
    login_user: str = "root"  #: SSH login user of the guests
    #: more hypervisor hosts ([[hosts]]); empty: every VM runs on ``uri``
    hosts: tuple[HostEntry, ...] = ()

    def uri_of(self, vm: VmEntry) -> str:
        """The libvirt URI of the host that runs ``vm``."""
        for host in self.hosts:
            if host.name == vm.host:
                return host.uri
        return self.uri

    def vm(self, name: str) -> VmEntry:
        for vm in self.vms:
            if vm.name == name:
                return vm
        known = ", ".join(v.name for v in self.vms)
        raise LabFailure(f"no VM named {name!r} in this lab", hint=f"known VMs: {known}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def vm_entry(vm: VmSpec, console_log: str) -> VmEntry:
    return VmEntry(name=vm.name, domain=vm.domain, snapshot=SNAPSHOT_NAME,
                   console_log=console_log, nics=vm.nics)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write(path: Path, inventory: Inventory) -> None:
    write_text_atomic(path, json.dumps(inventory.to_json(), indent=2) + "\n")


def read(path: Path) -> Inventory:
    if not path.exists():
        raise LabFailure(f"{path} does not exist: the lab is not up",
                         hint="run `make lab-up` first")
    try:
        data = json.loads(path.read_text())
        vms = tuple(_vm_from_json(v) for v in data.pop("vms"))
        hosts = tuple(HostEntry(**h) for h in data.pop("hosts", []))
        return Inventory(**data, vms=vms, hosts=hosts)
    except (ValueError, TypeError, KeyError, AttributeError, OSError) as exc:
        raise LabFailure(f"{path} is not a valid inventory ({exc})",
                         hint="run `make lab-up` to rewrite it") from None


def _vm_from_json(v: dict[str, Any]) -> VmEntry:
    gateway = v.get("gateway")
    return VmEntry(**{**v, "nics": tuple(Nic(**n) for n in v["nics"]),
                      "gateway": Gateway(**gateway) if gateway else None})


def known_hosts_text(inventory_vms: tuple[VmEntry, ...], host_key: str) -> str:
    """known_hosts lines pinning each guest's host key (its own, else the lab-wide one)
    to its management address."""
    return "".join(f"{vm.mgmt.address} {vm.host_key or host_key}\n" for vm in inventory_vms)
