"""Device disable/enable and sleep/resume: the Windows handle against the Windows guest
test double, the micro guest's commands, and the sleep scenario's pure checks (journal
outcome, open-connection outcome against a local echo server)."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guests.test_windows_guest_double import (
    MANIFESTS,
    MGMT,
    NIC1,
    NIC2,
    THUMBPRINT,
    deploy,
    make_double,
)
from lab.config import load_config
from lab.echo_clients import round_trip
from lab.errors import DriverCrash, DriverFailure, DriverHang, LabFailure
from lab.guests.base import AdapterInfo
from lab.guests.linux_micro import (
    PCI_RESCAN_COMMAND,
    LinuxMicro,
    pci_function,
    pci_remove_command,
)
from lab.guests.windows import WindowsGuest
from lab.journal import Journal, Vocabulary, check_adapter_removal, parse_journal
from lab.plan import Nic
from lab.scenarios.reboot import check_boot_order, check_clean_load
from lab.scenarios.sleep import power_outcome
from lab.vm import boot_verdict
from tests.doubles.windows_guest import AdapterSpec, WindowsGuestDouble

VOCAB = Vocabulary.load()
ROOT = Path(__file__).resolve().parents[3]
A = "52:54:00:ab:cd:01@5"
NIC = Nic(alias="ua-test0", role="test", model="virtio", mac="52:54:00:ab:cd:01",
          network="pwr-test0", bridge="pwr-t0", address="192.168.237.11", prefix=24)


def journal(*rows: str) -> Journal:
    return parse_journal([f"{1000 + i} labtdi {row} ok" for i, row in enumerate(rows)], VOCAB)


# ---- Windows: Disable-NetAdapter / Enable-NetAdapter on the double -------------------

def test_windows_disable_tears_down_like_a_removal_and_enable_rebinds() -> None:
    double = make_double()
    guest, dep = deploy(double, "labtdi")
    dep.load()
    target = guest.adapter(NIC1)
    guest.disable_adapter(target, deadline=30)
    assert double.commands[-1] == "Disable-NetAdapter -Name 'Ethernet 2' -Confirm:$false"
    check_adapter_removal(dep.journal(), "labtdi", target.journal_adapter)
    assert guest.lists_mac(NIC1)  # Windows keeps listing a disabled adapter
    assert not any(a.addresses for a in guest.adapters() if a.mac == NIC1)
    guest.enable_adapter(guest.adapter(NIC1), deadline=30)
    assert double.commands[-1] == "Enable-NetAdapter -Name 'Ethernet 2'"
    names = dep.journal().of_adapter(target.journal_adapter).names()
    assert names[-3:] == ["BIND", "NETADDR_REGISTERED", "DEVICE_REGISTERED"]
    for other in (MGMT, NIC2):
        assert "UNBIND" not in dep.journal().of_adapter(guest.adapter(other).journal_adapter)\
            .names()
    double.assert_no_violations()


def test_windows_disable_that_never_lets_go_is_a_hang() -> None:
    double = make_double()
    guest, dep = deploy(double, "labtdi")
    dep.load(knobs=["leak_adapter_ref"])
    with pytest.raises(DriverHang, match="Disable-NetAdapter of Ethernet 2"):
        guest.disable_adapter(guest.adapter(NIC1), deadline=30)


def test_windows_disable_of_an_unknown_adapter_is_a_lab_failure() -> None:
    guest, _ = deploy(make_double(), "labtdi")
    ghost = AdapterInfo(mac="52:54:00:ff:ff:ff", name="Ethernet 9", index=42)
    for action in (guest.disable_adapter, guest.enable_adapter):
        with pytest.raises(LabFailure, match="No MSFT_NetAdapter objects found") as info:
            action(ghost, 30)
        assert not isinstance(info.value, DriverHang)


# ---- micro guest: PCI remove and rescan ----------------------------------------------

def test_micro_disable_removes_the_nics_pci_function() -> None:
    virtio = "/sys/devices/pci0000:00/0000:00:01.1/0000:03:00.0/virtio0\n"
    conventional = "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:01.0"
    assert pci_function(virtio) == "0000:03:00.0"
    assert pci_function(conventional) == "0000:02:01.0"
    assert pci_remove_command("0000:03:00.0") == \
        "echo 1 > /sys/bus/pci/devices/0000:03:00.0/remove"
    assert PCI_RESCAN_COMMAND == "echo 1 > /sys/bus/pci/rescan"
    with pytest.raises(LabFailure):
        pci_function("/sys/devices/virtual/net/lo")
    with pytest.raises(ValueError):
        pci_remove_command("0000:03:00.0; reboot")


# ---- sleep: the transport's power events ----------------------------------------------

def test_power_outcome_kept_rebound_pending() -> None:
    assert power_outcome(journal(f"SET_POWER_LOW {A}", f"SET_POWER_ON {A}"), "labtdi",
                         NIC) == "kept"
    assert power_outcome(journal(f"SET_POWER_LOW {A}"), "labtdi", NIC) is None
    assert power_outcome(journal(), "labtdi", NIC) is None
    removal = [f"QUERY_REMOVE {A}", f"PNP_FORWARDED {A}", f"UNBIND {A}",
               f"NETADDR_DEREGISTERED {A}", f"DEVICE_DEREGISTERED {A}"]
    assert power_outcome(journal(f"SET_POWER_LOW {A}", *removal), "labtdi", NIC) is None
    assert power_outcome(journal(f"SET_POWER_LOW {A}", *removal, f"BIND {A}",
                                 f"NETADDR_REGISTERED {A}", f"DEVICE_REGISTERED {A}"),
                         "labtdi", NIC) == "rebound"


def test_power_outcome_broken_orders() -> None:
    with pytest.raises(DriverFailure, match="without SET_POWER_LOW first"):
        power_outcome(journal(f"SET_POWER_ON {A}"), "labtdi", NIC)
    with pytest.raises(DriverFailure, match="out of order"):
        power_outcome(journal(f"SET_POWER_LOW {A}", f"UNBIND {A}"), "labtdi", NIC)


# ---- sleep: connections opened before it (a local echo server stands in) --------------

def _serve(handler: Callable[[socket.socket], None]) -> Iterator[socket.socket]:
    srv = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=lambda: handler(srv.accept()[0]), daemon=True)
    thread.start()
    client = socket.create_connection(srv.getsockname(), timeout=5)
    try:
        yield client
    finally:
        client.close()
        srv.close()
        thread.join(5)


def _echo(conn: socket.socket) -> None:
    with conn:
        data = conn.recv(4096)
        conn.sendall(data)


def _reset(conn: socket.socket) -> None:
    conn.recv(4096)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # linger 0: RST


def _corrupt(conn: socket.socket) -> None:
    with conn:
        data = bytearray(conn.recv(4096))
        data[3] ^= 0xFF
        conn.sendall(bytes(data))


@pytest.mark.parametrize(("handler", "expected"), [(_echo, "echoed"), (_reset, "reset")])
def test_round_trip_outcomes(handler: Callable[[socket.socket], None], expected: str) -> None:
    for client in _serve(handler):
        assert round_trip(client, b"after the wake\n", 5.0) == expected


def test_round_trip_corrupt_byte_is_a_driver_failure() -> None:
    for client in _serve(_corrupt):
        with pytest.raises(DriverFailure, match="corrupt byte on a held connection at offset 3"):
            round_trip(client, b"after the wake\n", 5.0)


# ---- reboot with the drivers installed --------------------------------------------------

def test_windows_persistent_install_comes_back_in_order_after_a_reboot() -> None:
    double = WindowsGuestDouble("win1", [AdapterSpec(MGMT, ipv4="192.168.213.10/24"),
                                         AdapterSpec(NIC1, ipv4="192.168.214.11/24"),
                                         AdapterSpec(NIC2)], trusted_thumbprints=[THUMBPRINT])
    guest = WindowsGuest(double)
    guest.management_mac = MGMT
    deps = [guest.deployment(MANIFESTS[name], VOCAB) for name in ("labtdi", "wskecho")]
    for dep in deps:
        dep.install_persistent()
        dep.load()
    assert [c for c in double.commands if c.startswith("sc.exe config")] == [
        "sc.exe config labtdi start= system; exit $LASTEXITCODE",
        "sc.exe config wskecho start= auto; exit $LASTEXITCODE"]
    guest.reboot(deadline=30)
    assert all(dep.loaded() for dep in deps)
    check_boot_order([(dep.module, check_clean_load(dep.journal(), dep.module))
                      for dep in deps])
    bound = {e.adapter.mac for e in deps[0].journal() if e.name == "BIND" and e.adapter}
    assert bound == {NIC1, NIC2}  # the management NIC's disabled binding persisted
    double.assert_no_violations()


def test_boot_checks() -> None:
    clean = journal("LOAD -", "PROVIDER_REGISTERED -", "PROVIDER_READY -")
    assert check_clean_load(clean, "labtdi") == 1000
    with pytest.raises(DriverFailure, match="one clean load at boot"):
        check_clean_load(journal("LOAD -", "UNLOAD -", "LOAD -"), "labtdi")
    failed = parse_journal(["1 labtdi LOAD - ok", "2 labtdi PROTOCOL_REGISTERED - err:-12"],
                           VOCAB)
    with pytest.raises(DriverFailure, match="PROTOCOL_REGISTERED failed at boot"):
        check_clean_load(failed, "labtdi")
    check_boot_order([("labtdi", 1), ("kecho", 2)])
    with pytest.raises(DriverFailure, match="kecho loaded before labtdi"):
        check_boot_order([("labtdi", 2), ("kecho", 1)])


def test_a_reboot_that_never_answers_is_judged_from_the_console() -> None:
    kind = LinuxMicro(load_config(ROOT / "lab.toml"))
    lab = LabFailure("pw1 did not answer SSH after the reboot")
    assert boot_verdict(kind, "lab-drivers: loading labtdi.ko\nlab-drivers: loaded labtdi.ko\n",
                        lab) is lab
    hung = boot_verdict(kind, "lab-drivers: loading labtdi.ko\nlab-drivers: loaded labtdi.ko\n"
                        "lab-drivers: loading kecho.ko\n", lab)
    assert isinstance(hung, DriverHang) and "loading kecho.ko at boot" in str(hung)
    crashed = boot_verdict(kind, "[ 5.1] Kernel panic - not syncing: Fatal exception\n", lab)
    assert isinstance(crashed, DriverCrash) and "Kernel panic" in str(crashed)
