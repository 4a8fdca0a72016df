"""Drivers tier, EMULATION: labtdi.sys journals NetEventSetPower and keeps its bindings.

THIS IS EMULATION, NOT WINDOWS (see test_labtdi_emulation.py). The harness plays NDIS
around a system sleep: after both bindings are up it sends each binding
NetEventSetPower with NET_PNP_EVENT.Buffer pointing to NetDeviceStateD3, then to
NetDeviceStateD0 ([MSDOCS] ns-ndis-_net_pnp_event: "NetEventSetPower ... Buffer points
to a NET_DEVICE_POWER_STATE value"). The driver must journal SET_POWER_LOW then
SET_POWER_ON per adapter (drivers/events.txt), answer NDIS_STATUS_SUCCESS, and tear
nothing down -- the sleep/resume scenario's "binding survives" outcome.
"""

from __future__ import annotations

import struct
from pathlib import Path

import ndislayout as L
import tdiemu
from tdiemu import ADAPTER_A, ADAPTER_B, GuestCall

from lab import journal as lj
from lab.plan import Nic
from lab.scenarios.sleep import power_outcome

NET_DEVICE_STATE_D0, NET_DEVICE_STATE_D3 = 1, 4


def _set_power(emu: tdiemu.LabTdiEmulator, adapter: tdiemu.FakeAdapter, state: int) -> int:
    """NetEventSetPower for ``adapter``'s binding with the target device power state."""
    context = emu._bindings[emu.binding_of(adapter)].context
    n = emu._notification(tdiemu.NET_EVENT["NetEventSetPower"])
    buf = emu.alloc(4)
    emu.write(buf, struct.pack("<I", state))
    emu.put64(n + L.NOTIFY_EVENT + L.PNP_BUFFER, buf)
    emu.write(n + L.NOTIFY_EVENT + L.PNP_BUFFER_LENGTH, struct.pack("<I", 4))
    return emu.call(GuestCall(emu.handler("NetPnPEventHandler"), (context, n),
                              "NetPnPEvent.NetEventSetPower", adapter.label))


def test_emulated_set_power_is_journaled_and_keeps_the_bindings(windows_build: Path) -> None:
    emu = tdiemu.LabTdiEmulator(windows_build / "labtdi.sys")
    assert emu.driver_entry() == 0
    for adapter in (ADAPTER_A, ADAPTER_B):
        assert emu.bind(adapter) == 0
    emu.pnp(None, "NetEventBindsComplete")
    for state in (NET_DEVICE_STATE_D3, NET_DEVICE_STATE_D0):
        for adapter in (ADAPTER_A, ADAPTER_B):
            assert _set_power(emu, adapter, state) == 0  # NDIS_STATUS_SUCCESS
    journal = lj.parse_journal(emu.journal_text(), lj.Vocabulary.load())
    for adapter in (ADAPTER_A, ADAPTER_B):
        mac = lj.Adapter.parse(adapter.journal_name).mac
        nic = Nic(alias=adapter.label, role="test", model="e1000e", mac=mac, network="n",
                  bridge="b", address="192.0.2.1", prefix=24)
        own = lj.Journal(tuple(e for e in journal if e.adapter and e.adapter.mac == mac
                               and e.name not in ("BIND", "NETADDR_REGISTERED",
                                                  "DEVICE_REGISTERED")))
        assert own.names() == ["SET_POWER_LOW", "SET_POWER_ON"]
        assert power_outcome(own, "labtdi", nic) == "kept"
        emu.binding_of(adapter)  # still open: nothing was torn down
