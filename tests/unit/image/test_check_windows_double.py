"""The Windows image contract (lab.guests.windows_contract) against the Windows guest
TEST DOUBLE (tests/doubles/windows_guest.py): a good image passes every item, and each
knob of a failing image gives exactly its own ✗ with its fix. Every test here runs
against the double, never a real Windows guest; their names say "double"."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from lab.guests.base import ContractItem
from lab.guests.windows import ImageContractBroken, WindowsGuest, check_contract
from lab.guests.windows_contract import WINDOWS_CHECKS, windows_contract
from tests.doubles.windows_guest import AdapterSpec, ImageState, WindowsGuestDouble

ECHO_PORT = 7007


def _thumbprint() -> str:
    """SHA-1 thumbprint of a throwaway CA (what ca_thumbprint computes for the lab CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "contract unit-test CA")])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=365)).sign(key, hashes.SHA256()))
    return hashlib.sha1(cert.public_bytes(Encoding.DER), usedforsecurity=False).hexdigest()


THUMB = _thumbprint()


def double(image: ImageState | None = None,
           crash_control: dict[str, int] | None = None, *, testsigning: bool = True,
           trusted: bool = True) -> WindowsGuestDouble:
    return WindowsGuestDouble("win1", [AdapterSpec("52:54:00:aa:00:01",
                                                   ipv4="192.168.213.10/24")],
                              testsigning=testsigning,
                              trusted_thumbprints=[THUMB.upper()] if trusted else [],
                              crash_control=crash_control, image=image)


def contract(guest: WindowsGuestDouble) -> list[ContractItem]:
    items = windows_contract(guest, THUMB, ECHO_PORT)
    guest.assert_no_violations()
    return items


def failing(items: list[ContractItem]) -> dict[str, ContractItem]:
    return {item.name: item for item in items if not item.ok}


def test_double_good_image_passes_every_item() -> None:
    items = contract(double())
    assert len(items) == len(WINDOWS_CHECKS) == 12
    assert failing(items) == {}
    by_name = {item.name: item.detail for item in items}
    assert by_name["testsigning on"] == "bcdedit: testsigning Yes"
    assert by_name["SSH shell is Windows PowerShell"].endswith(
        "\\WindowsPowerShell\\v1.0\\powershell.exe")
    assert by_name["pvpanic device with its driver"].endswith("driver service pvpanic")
    assert by_name["echo port 7007 open"] == "inbound allow rule: Driver Lab echo (TCP 7007)"
    assert by_name["Windows Update service disabled"] == "wuauserv StartType Disabled"
    assert by_name["crash dump type set"] == "CrashControl CrashDumpEnabled = 1"


def test_double_defender_absent_counts_as_off() -> None:
    items = contract(double(ImageState(defender_installed=False)))
    assert failing(items) == {}
    assert {i.name: i.detail for i in items}["Defender real-time protection off"] == \
        "Defender is not installed"


#: knob -> (the one item it breaks, a word of its fix)
IMAGE_KNOBS: dict[str, tuple[ImageState, str, str]] = {
    "defender_realtime": (ImageState(defender_realtime=True),
                          "Defender real-time protection off", "DisableRealtimeMonitoring"),
    "pvpanic_driver": (ImageState(pvpanic_driver=False),
                       "pvpanic device with its driver", "pvpanic.inf"),
    "pvpanic_device": (ImageState(pvpanic_device=False),
                       "pvpanic device with its driver", "<panic model='isa'/>"),
    "firewall": (ImageState(firewall_tcp_ports=(22,)), "echo port 7007 open",
                 "New-NetFirewallRule"),
    "wuauserv_manual": (ImageState(wuauserv_start="Manual"),
                        "Windows Update service disabled", "-StartupType Disabled"),
    "wuauserv_automatic": (ImageState(wuauserv_start="Automatic"),
                           "Windows Update service disabled", "-StartupType Disabled"),
    "ca_root_only": (ImageState(ca_stores=("Root",)), "lab CA in TrustedPublisher",
                     "Cert:\\LocalMachine\\TrustedPublisher"),
    "ca_publisher_only": (ImageState(ca_stores=("TrustedPublisher",)), "lab CA in Root",
                          "Cert:\\LocalMachine\\Root"),
}


@pytest.mark.parametrize("knob", IMAGE_KNOBS)
def test_double_failing_image_gives_exactly_its_item(knob: str) -> None:
    image, item, fix_word = IMAGE_KNOBS[knob]
    broken = failing(contract(double(image)))
    assert list(broken) == [item]
    assert fix_word in broken[item].fix


CRASH_KNOBS: dict[str, tuple[str, int, str]] = {
    "no dump": ("CrashDumpEnabled", 0, "crash dump type set"),
    "dump kept": ("AlwaysKeepMemoryDump", 0, "memory dump always kept"),
    "nmi": ("NMICrashDump", 0, "NMI crash dump on"),
    "auto reboot": ("AutoReboot", 0, "auto reboot after a bug check"),
}


@pytest.mark.parametrize("knob", CRASH_KNOBS)
def test_double_crash_control_value_gives_exactly_its_item(knob: str) -> None:
    value, bad, item = CRASH_KNOBS[knob]
    broken = failing(contract(double(crash_control={value: bad})))
    assert list(broken) == [item]
    assert broken[item].detail == f"CrashControl {value} = {bad}"
    assert f"-Name {value} -Value" in broken[item].fix


def test_double_testsigning_off_gives_exactly_its_item() -> None:
    broken = failing(contract(double(testsigning=False)))
    assert list(broken) == ["testsigning on"]
    assert "bcdedit /set testsigning on" in broken["testsigning on"].fix


def test_double_untrusted_ca_gives_both_store_items() -> None:
    broken = failing(contract(double(trusted=False)))
    assert list(broken) == ["lab CA in Root", "lab CA in TrustedPublisher"]


def test_double_cmd_shell_gives_only_the_shell_item() -> None:
    guest = double(ImageState(default_shell="cmd"))
    items = contract(guest)
    assert [(i.name, i.ok) for i in items] == [("SSH shell is Windows PowerShell", False)]
    assert "cmd.exe" in items[0].detail
    assert "DefaultShell" in items[0].fix
    assert len(guest.commands) == 1  # nothing else was sent to a cmd.exe session


def test_double_check_contract_names_every_broken_item() -> None:
    guest = WindowsGuest(double(ImageState(defender_realtime=True, wuauserv_start="Manual")))
    with pytest.raises(ImageContractBroken) as caught:
        check_contract(guest, THUMB, ECHO_PORT)
    assert "Defender real-time protection off" in caught.value.summary
    assert "Windows Update service disabled" in caught.value.summary
    assert caught.value.hint is not None and "Set-Service" in caught.value.hint
    items = check_contract(WindowsGuest(double()), THUMB, ECHO_PORT)
    assert all(item.ok for item in items)


def test_double_knobs_are_independent() -> None:
    """Two knobs at once give exactly their two items (no check leans on another)."""
    image = dataclasses.replace(ImageState(), pvpanic_driver=False, firewall_tcp_ports=())
    assert list(failing(contract(double(image)))) == [
        "pvpanic device with its driver", "echo port 7007 open"]
