"""One libvirt connection per hypervisor host of the lab, for the pytest workers.

The local host is the lab's own connection (the sandbox's libvirtd, healed by
:func:`lab.host.reconnect`); every other host ([[hosts]], ``Inventory.hosts``) gets its
own :class:`~lab.hypervisor.Hypervisor`, opened on first use. A host that cannot be
reached is remembered as down for :data:`RETRY_S` seconds: its VMs are not leased
meanwhile, so the rest of the suite goes on (issue 12).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lab import gateway
from lab import host as host_mod
from lab.config import LabConfig
from lab.errors import LabFailure
from lab.hostagent import Instruments, LocalInstruments, RemoteInstruments
from lab.hypervisor import Hypervisor
from lab.inventory import Inventory, VmEntry

RETRY_S = 60.0


def on_hosts(vms: tuple[VmEntry, ...], wanted: str, lab: str) -> tuple[VmEntry, ...]:
    """The VMs of the hosts ``wanted`` names (comma-separated, as pytest's ``--lab-hosts``
    takes them); a name lab ``lab`` has no VM on is one LabFailure naming its hosts."""
    known = sorted({vm.host for vm in vms})
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise LabFailure(f"--lab-hosts {wanted!r}: lab {lab} has no VM on host "
                         f"{', '.join(unknown) or '(none named)'}; its hosts: {', '.join(known)}",
                         hint="name hosts from the HOST column of `lab status`")
    return tuple(vm for vm in vms if vm.host in names)


class HostConnections:
    """The lab's hypervisor connections by host name ("local" and [[hosts]] names)."""

    def __init__(self, config: LabConfig, inv: Inventory, local: Hypervisor) -> None:
        self.config = config
        self.inv = inv
        self._conns: dict[str, Hypervisor] = {"local": local}
        self._down: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._local_instruments = LocalInstruments()
        self._instruments: dict[str, RemoteInstruments] = {}

    def for_vm(self, vm: VmEntry, say: Callable[[str], None]) -> Hypervisor:
        """The connection to ``vm``'s host, usable (reconnected if it was lost)."""
        if vm.host == "local":
            hv = self._conns["local"]
            host_mod.reconnect(self.config, hv, say)
            return hv
        with self._lock:
            if vm.host not in self._conns:
                self._conns[vm.host] = Hypervisor(self.inv.uri_of(vm), str(self.config.path))
            hv = self._conns[vm.host]
        if not hv.alive():
            hv.close()
            say(f"host {vm.host}: reconnecting to {hv.uri}")
        try:
            hv.check()
        except LabFailure as exc:
            with self._lock:
                self._down[vm.host] = (time.monotonic(), exc.summary)
            raise
        return hv

    def instruments_for(self, vm: VmEntry) -> Instruments:
        """The host-side instruments of ``vm``'s host: in-process for the local host,
        else that host's agent over its gateway (one per host, reopened if it died): each
        agent through the OpenSSH client when it is installed, else in a channel of the
        gateway's own connection."""
        if vm.host == "local" or vm.gateway is None:
            return self._local_instruments
        with self._lock:
            inst = self._instruments.get(vm.host)
            if inst is None or not inst.transport.is_active():
                if inst is not None:
                    inst.close()
                python = next((h.python for h in self.config.hosts if h.name == vm.host),
                              "python3")
                inst = RemoteInstruments(vm.host, gateway.transport(vm.gateway),
                                         lab=self.config.lab.name, python=python,
                                         ssh=gateway.openssh(vm.gateway))
                self._instruments[vm.host] = inst
            return inst

    def leasable(self, vms: tuple[VmEntry, ...]) -> list[str]:
        """Names of the VMs whose host is not known to be down (retried after RETRY_S)."""
        now = time.monotonic()
        with self._lock:
            down = {h for h, (t, _why) in self._down.items() if now - t < RETRY_S}
        return [vm.name for vm in vms if vm.host not in down]

    def down_hosts(self) -> dict[str, str]:
        with self._lock:
            return {h: why for h, (_t, why) in self._down.items()}

    def close(self) -> None:
        for inst in self._instruments.values():
            inst.close()
        for name, hv in list(self._conns.items()):
            if name != "local":
                hv.close()
