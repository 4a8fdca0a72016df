"""NIC reset through the guest interface (Windows handle against the Windows guest test
double; the micro guest's command) and the link scenarios' journal checks."""

from __future__ import annotations

import pytest

from guests.test_windows_guest_double import MGMT, NIC1, NIC2, deploy, make_double
from lab.errors import DriverFailure, DriverHang, LabFailure
from lab.guests.base import AdapterInfo
from lab.guests.linux_micro import reset_command
from lab.journal import Journal, Vocabulary, parse_journal
from lab.plan import Nic
from lab.scenarios.link import (
    check_bound_again,
    check_kept,
    check_link_events,
    check_reset_teardown,
)

VOCAB = Vocabulary.load()
A = "52:54:00:ab:cd:01@5"
NIC = Nic(alias="ua-test0", role="test", model="virtio", mac="52:54:00:ab:cd:01",
          network="lnk-test0", bridge="lnk-t0", address="192.168.252.11", prefix=24)


def journal(*rows: str) -> Journal:
    return parse_journal([f"{1000 + i} labtdi {row} ok" for i, row in enumerate(rows)], VOCAB)


def test_windows_reset_is_restart_netadapter_and_rebinds_in_order() -> None:
    double = make_double()
    guest, dep = deploy(double, "labtdi")
    dep.load()
    target = guest.adapter(NIC1)
    mark = max(e.t_ns for e in dep.journal())
    guest.reset_adapter(target, deadline=30)
    assert double.commands[-1] == "Restart-NetAdapter -Name 'Ethernet 2'"
    own = Journal(tuple(e for e in dep.journal().of_adapter(target.journal_adapter)
                        if e.t_ns > mark))
    torn = check_reset_teardown(own, "labtdi", NIC)
    assert torn is not None
    check_bound_again(own, "labtdi", NIC, torn)
    for other in (MGMT, NIC2):
        assert len(dep.journal().of_adapter(guest.adapter(other).journal_adapter)) == 3
    double.assert_no_violations()


def test_windows_reset_of_an_unknown_adapter_is_a_lab_failure() -> None:
    guest, _ = deploy(make_double(), "labtdi")
    ghost = AdapterInfo(mac="52:54:00:ff:ff:ff", name="Ethernet 9", index=42)
    with pytest.raises(LabFailure, match="No MSFT_NetAdapter objects found") as info:
        guest.reset_adapter(ghost, deadline=30)
    assert not isinstance(info.value, DriverHang)


def test_windows_reset_that_never_lets_go_is_a_hang() -> None:
    double = make_double()
    guest, dep = deploy(double, "labtdi")
    dep.load(knobs=["leak_adapter_ref"])
    with pytest.raises(DriverHang, match="Restart-NetAdapter of Ethernet 2"):
        guest.reset_adapter(guest.adapter(NIC1), deadline=30)


def test_micro_reset_command_bounces_mtu_then_link() -> None:
    assert reset_command("eth2", 1500) == (
        "ip link set dev eth2 mtu 1400 && ip link set dev eth2 mtu 1500 && "
        "ip link set dev eth2 down && ip link set dev eth2 up")
    assert "mtu 1300 && ip link set dev eth2 mtu 1400" in reset_command("eth2", 1400)
    for bad in ("eth2; reboot", "", "x" * 16):
        with pytest.raises(ValueError):
            reset_command(bad, 1500)


def test_link_flap_checks() -> None:
    flap = journal(f"LINK_DOWN {A}", f"LINK_UP {A}")
    check_kept(flap, "labtdi", NIC)
    check_link_events(flap, "labtdi", NIC)
    with pytest.raises(DriverFailure, match="tore down its binding to ua-test0"):
        check_kept(journal(f"LINK_DOWN {A}", f"UNBIND {A}"), "labtdi", NIC)
    for rows in ((f"LINK_UP {A}",), (f"LINK_UP {A}", f"LINK_DOWN {A}"), ()):
        with pytest.raises(DriverFailure, match="link events of ua-test0"):
            check_link_events(journal(*rows), "labtdi", NIC)


def test_reset_checks() -> None:
    assert check_reset_teardown(journal(f"LINK_DOWN {A}", f"LINK_UP {A}"), "labtdi",
                                NIC) is None
    with pytest.raises(DriverFailure, match="out of order"):
        check_reset_teardown(journal(f"LINK_DOWN {A}", f"UNBIND {A}",
                                     f"NETADDR_DEREGISTERED {A}",
                                     f"DEVICE_DEREGISTERED {A}"), "labtdi", NIC)
    removal = [f"QUERY_REMOVE {A}", f"PNP_FORWARDED {A}", f"UNBIND {A}",
               f"NETADDR_DEREGISTERED {A}", f"DEVICE_DEREGISTERED {A}"]
    torn = check_reset_teardown(journal(*removal), "labtdi", NIC)
    assert torn == 1004
    with pytest.raises(DriverFailure, match="not bound again"):
        check_bound_again(journal(*removal), "labtdi", NIC, 1004)
    check_bound_again(journal(*removal, f"BIND {A}", f"DEVICE_REGISTERED {A}",
                              f"NETADDR_REGISTERED {A}"), "labtdi", NIC, 1004)


def test_windows_double_journals_a_link_flap_as_labtdi_sys_does() -> None:
    """The Windows double's labtdi answers a media disconnect/connect as labtdi.sys's
    StatusHandlerEx does (NDIS_STATUS_LINK_STATE: one LINK_DOWN / LINK_UP per change, a
    repeated state journals nothing, the binding stays), so the link flap's checks pass
    on it and see nothing on the other adapters."""
    double = make_double()
    guest, dep = deploy(double, "labtdi")
    dep.load()
    target = guest.adapter(NIC1)
    mark = max(e.t_ns for e in dep.journal())
    for connected in (False, False, True, True):
        double.set_media(NIC1, connected)
    own = Journal(tuple(e for e in dep.journal().of_adapter(target.journal_adapter)
                        if e.t_ns > mark))
    assert own.names() == ["LINK_DOWN", "LINK_UP"]
    nic = Nic(alias="ua-test1", role="test", model="e1000e", mac=NIC1, network="n",
              bridge="b", address="192.0.2.2", prefix=24)
    check_link_events(own, "labtdi", nic)
    check_kept(own, "labtdi", nic)
    for other in (MGMT, NIC2):
        assert not [e for e in dep.journal().of_adapter(guest.adapter(other).journal_adapter)
                    if e.t_ns > mark]
    double.assert_no_violations()
