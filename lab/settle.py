"""A new VM's NICs are settled before its clean snapshot: every NIC configured with its
lab address and, where the guest kind can tell, with carrier.

Every test reverts to the clean snapshot, so whatever the guest was still doing when it
was taken replays at each revert. A NIC hot-plugged into a VM from the template (or an
e1000e that negotiates its link a second or two after it is up) may still be without
carrier when SSH already answers on the management NIC; a snapshot taken then makes every
test start with a NIC that cannot receive yet, and the first L2 probe of it fails as if
the transport did not answer. So provisioning waits here first (lab budget: the lab's
own VM is not ready, no driver is loaded yet).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from lab.budgets import NICS_SETTLED
from lab.guests.base import GuestHandle
from lab.plan import Nic
from lab.wait import wait_for


def unsettled(handle: GuestHandle, nics: Sequence[Nic]) -> list[str]:
    """What keeps ``nics`` from being settled now ("ua-test1: no carrier"), empty when
    every one is configured and none reports a missing carrier."""
    listed = {a.mac: a for a in handle.adapters()}
    missing: list[str] = []
    for nic in nics:
        adapter = listed.get(nic.mac.lower())
        if adapter is None:
            missing.append(f"{nic.alias}: not listed by the guest")
        elif not adapter.carries(nic.address):
            missing.append(f"{nic.alias}: not configured with {nic.address}")
        elif handle.carrier_of(adapter) is False:
            missing.append(f"{nic.alias}: no carrier")
    return missing


def wait_settled(handle: GuestHandle, nics: Sequence[Nic]) -> float:
    """Wait until :func:`unsettled` is empty; the seconds it took. Running out of
    :data:`NICS_SETTLED` is a lab failure (DeadlineExceeded) naming what was missing."""
    start = time.monotonic()
    last: list[str] = []

    def probe() -> bool | None:
        last[:] = unsettled(handle, nics)
        return True if not last else None

    wait_for(f"{handle.name}: its NICs configured with carrier ({NICS_SETTLED.what})",
             probe, NICS_SETTLED.seconds, last_seen=lambda: "; ".join(last) or None)
    return time.monotonic() - start
