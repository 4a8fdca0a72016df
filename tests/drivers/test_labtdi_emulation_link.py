"""Drivers tier, EMULATION: labtdi.sys journals NDIS_STATUS_LINK_STATE and keeps its bindings.

THIS IS EMULATION, NOT WINDOWS (see test_labtdi_emulation.py). The harness plays NDIS
around a media disconnect/connect: it calls the protocol's StatusHandlerEx
([MSDOCS] nc-ndis-protocol_status_ex) with an NDIS_STATUS_INDICATION whose StatusCode is
NDIS_STATUS_LINK_STATE and whose StatusBuffer is an NDIS_LINK_STATE ([MSDOCS]
network/ndis-status-link-state). NDIS may repeat an unchanged state, and it may call at
DISPATCH_LEVEL, where the journal (a mutex, a file write) must not run: the driver must
journal exactly one LINK_DOWN / LINK_UP per change (drivers/events.txt), in order, at
PASSIVE_LEVEL, and tear nothing down -- the link flap scenario's contract.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tdiemu
from tdiemu import ADAPTER_A, ADAPTER_B

from lab import journal as lj

DOWN, UP = "MediaConnectStateDisconnected", "MediaConnectStateConnected"
UNKNOWN = "MediaConnectStateUnknown"


def _names(emu: tdiemu.LabTdiEmulator, adapter: tdiemu.FakeAdapter) -> list[str]:
    journal = lj.parse_journal(emu.journal_text(), lj.Vocabulary.load())
    mac = lj.Adapter.parse(adapter.journal_name).mac
    return [e.name for e in journal if e.adapter and e.adapter.mac == mac
            and e.name.startswith(("LINK_", "UNBIND", "QUERY_REMOVE", "NETADDR_DEREG",
                                   "DEVICE_DEREG"))]


def _bound(image: Path) -> tdiemu.LabTdiEmulator:
    emu = tdiemu.LabTdiEmulator(image)
    assert emu.driver_entry() == 0
    for adapter in (ADAPTER_A, ADAPTER_B):
        assert emu.bind(adapter) == 0
    emu.pnp(None, "NetEventBindsComplete")
    return emu


@pytest.mark.parametrize("irql", [0, tdiemu.DISPATCH_LEVEL], ids=["passive", "dispatch"])
def test_emulated_link_flap_is_journaled_once_per_change(windows_build: Path, irql: int) -> None:
    emu = _bound(windows_build / "labtdi.sys")
    emu.irql = irql
    # bound connected: a repeated "connected" and an "unknown" (low power) change nothing
    for state in (UP, UNKNOWN, DOWN, DOWN, UNKNOWN, UP, UP):
        emu.link_state(ADAPTER_A, state)
    emu.irql = 0
    emu.run_work_items()  # the system worker thread (PASSIVE_LEVEL)
    assert not emu.faults, emu.faults
    assert _names(emu, ADAPTER_A) == ["LINK_DOWN", "LINK_UP"]
    assert _names(emu, ADAPTER_B) == []  # the other adapter saw nothing
    emu.binding_of(ADAPTER_A)  # still open: a media disconnect is not a removal
    emu.unload()
    assert not emu.faults, emu.faults
    assert not [r for _, r in emu.open_resources() if r.kind == "IoAllocateWorkItem"]


def test_emulated_quick_flaps_at_dispatch_keep_their_order(windows_build: Path) -> None:
    """Several changes before the worker runs: every one is journaled, in order."""
    emu = _bound(windows_build / "labtdi.sys")
    emu.irql = tdiemu.DISPATCH_LEVEL
    for state in (DOWN, UP, DOWN, UP):
        emu.link_state(ADAPTER_B, state)
    queued = [c for c in emu.trace if c.name == "IoQueueWorkItem"]
    assert len(queued) == 1  # one drain for the burst
    assert _names(emu, ADAPTER_B) == []  # nothing journaled at DISPATCH_LEVEL
    emu.irql = 0
    emu.run_work_items()
    assert not emu.faults, emu.faults
    assert _names(emu, ADAPTER_B) == ["LINK_DOWN", "LINK_UP", "LINK_DOWN", "LINK_UP"]


def test_emulated_unbind_waits_for_a_queued_link_change(windows_build: Path) -> None:
    """A link change still queued when NDIS unbinds is journaled before the UNBIND's
    teardown frees the binding (the work item is never run on freed memory)."""
    emu = _bound(windows_build / "labtdi.sys")
    emu.irql = tdiemu.DISPATCH_LEVEL
    emu.link_state(ADAPTER_A, DOWN)
    emu.irql = 0
    assert emu.work_items  # not run yet
    assert emu.unbind(ADAPTER_A) == 0
    assert not emu.faults, emu.faults
    assert _names(emu, ADAPTER_A)[:2] == ["LINK_DOWN", "UNBIND"]
