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
from lab.plan import LabPlan, VmSpec

INVENTORY_NAME = "inventory.json"
SNAPSHOT_NAME = "clean"


@dataclass(frozen=True)
class NicEntry:
    alias: str
    role: str
    mac: str
    model: str
    network: str
    bridge: str
    address: str
    prefix: int


@dataclass(frozen=True)
class VmEntry:
    name: str
    domain: str
    snapshot: str
    console_log: str
    nics: tuple[NicEntry, ...]

    @property
    def mgmt(self) -> NicEntry:
        return next(n for n in self.nics if n.role == "management")

    @property
    def test_nics(self) -> tuple[NicEntry, ...]:
        return tuple(n for n in self.nics if n.role == "test")


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

    def vm(self, name: str) -> VmEntry:
        for vm in self.vms:
            if vm.name == name:
                return vm
        known = ", ".join(v.name for v in self.vms)
        raise LabFailure(f"no VM named {name!r} in this lab", hint=f"known VMs: {known}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def vm_entry(plan: LabPlan, vm: VmSpec, console_log: str) -> VmEntry:
    bridges = {n.name: n.bridge for n in plan.networks}
    nics = tuple(NicEntry(alias=n.alias, role=n.role, mac=n.mac, model=n.model,
                          network=n.network, bridge=bridges[n.network], address=n.address,
                          prefix=int(n.ip.split("/")[1])) for n in vm.nics)
    return VmEntry(name=vm.name, domain=vm.domain, snapshot=SNAPSHOT_NAME,
                   console_log=console_log, nics=nics)


def write(path: Path, inventory: Inventory) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(inventory.to_json(), indent=2) + "\n")
    os.replace(tmp, path)


def read(path: Path) -> Inventory:
    if not path.exists():
        raise LabFailure(f"{path} does not exist: the lab is not up",
                         hint="run `make lab-up` first")
    try:
        data = json.loads(path.read_text())
        vms = tuple(VmEntry(**{**v, "nics": tuple(NicEntry(**n) for n in v["nics"])})
                    for v in data.pop("vms"))
        return Inventory(**data, vms=vms)
    except (ValueError, TypeError, KeyError) as exc:
        raise LabFailure(f"{path} is not a valid inventory ({exc})",
                         hint="run `make lab-up` to rewrite it") from None


def known_hosts_text(inventory_vms: tuple[VmEntry, ...], host_key: str) -> str:
    """known_hosts lines pinning the guests' host key to each management address."""
    return "".join(f"{vm.mgmt.address} {host_key}\n" for vm in inventory_vms)
