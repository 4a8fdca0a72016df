"""Parsers of Windows command output and the code tables (formats: windows-notes B2/B3)."""

from __future__ import annotations

import pytest

from lab.guests import windows_text as wt
from lab.guests.windows_codes import bugcheck_title, netcfg_name, win32_name

SC_RUNNING = """
SERVICE_NAME: wskecho
        TYPE               : 1  KERNEL_DRIVER
        STATE              : 4  RUNNING
                                (STOPPABLE, NOT_PAUSABLE, IGNORES_SHUTDOWN)
        WIN32_EXIT_CODE    : 0  (0x0)
        SERVICE_EXIT_CODE  : 0  (0x0)
        CHECKPOINT         : 0x0
        WAIT_HINT          : 0x0
"""

PNPUTIL = """Microsoft PnP Utility

Published Name:     oem3.inf
Original Name:      netkvm.inf
Provider Name:      Red Hat, Inc.
Class Name:         Network adapters

Published Name:     oem7.inf
Original Name:      labtdi.inf
Provider Name:      Driver Lab
Class Name:         Network Protocol
Signer Name:        Driver Lab Test CA

Published Name:     oem9.inf
Original Name:      LABTDI.INF
Provider Name:      Driver Lab
"""


def test_powershell_quoting_doubles_single_quotes() -> None:
    assert wt.ps_quote("C:\\lab\\it's") == "'C:\\lab\\it''s'"
    assert wt.native("sc.exe start x") == "sc.exe start x; exit $LASTEXITCODE"


def test_mac_conversions() -> None:
    assert wt.mac_from_windows("52-54-00-AB-CD-01") == "52:54:00:ab:cd:01"
    assert wt.mac_to_windows("52:54:00:ab:cd:01") == "52-54-00-AB-CD-01"
    with pytest.raises(wt.WindowsOutputError):
        wt.mac_from_windows("52:54:00:ab:cd:01")


def test_adapters_join_addresses_on_ifindex() -> None:
    adapters = ('[{"Name":"Ethernet","ifIndex":4,"MacAddress":"52-54-00-9E-00-00","Status":"Up",'
                '"InterfaceDescription":"Intel(R) 82574L Gigabit Network Connection",'
                '"PnPDeviceID":"PCI\\\\VEN_8086&DEV_10D3\\\\3&1"},'
                '{"Name":"Ethernet 2","ifIndex":7,"MacAddress":"52-54-00-9E-00-01",'
                '"Status":"Up","InterfaceDescription":"x","PnPDeviceID":null}]')
    addresses = ('[{"InterfaceIndex":4,"IPAddress":"192.168.213.11","PrefixLength":24},'
                 '{"InterfaceIndex":1,"IPAddress":"127.0.0.1","PrefixLength":8}]')
    first, second = wt.parse_adapters(adapters, addresses)
    assert (first.mac, first.name, first.index) == ("52:54:00:9e:00:00", "Ethernet", 4)
    assert first.addresses == ("192.168.213.11/24",)
    assert first.device_id == "PCI\\VEN_8086&DEV_10D3\\3&1"
    assert second.addresses == () and second.device_id is None
    assert second.journal_adapter.ifindex == 7


def test_single_object_and_empty_json() -> None:
    one = '{"Name":"E","ifIndex":3,"MacAddress":"52-54-00-00-00-01","PnPDeviceID":"X"}'
    assert len(wt.parse_adapters(one, "")) == 1
    assert wt.parse_adapters("", "") == ()
    with pytest.raises(wt.WindowsOutputError):
        wt.parse_adapters("not json", "")


def test_sc_query_and_failure_lines() -> None:
    status = wt.parse_sc_query(SC_RUNNING)
    assert (status.name, status.state, status.state_name) == ("wskecho", 4, "RUNNING")
    stopping = wt.parse_sc_query(SC_RUNNING.replace("4  RUNNING", "3  STOP_PENDING"))
    assert stopping.state == wt.SERVICE_STOP_PENDING
    assert wt.parse_sc_failure("[SC] StartService FAILED 577:\n\nWindows cannot verify") == (
        "StartService", 577)
    assert wt.parse_sc_failure("[SC] DeleteService SUCCESS") is None
    with pytest.raises(wt.WindowsOutputError):
        wt.parse_sc_query("[SC] OpenService FAILED 1060:")


def test_pnputil_published_names_by_original_name() -> None:
    assert wt.published_names(PNPUTIL, "labtdi.inf") == ("oem7.inf", "oem9.inf")
    packages = wt.parse_pnputil_drivers(PNPUTIL)
    assert packages[1].class_name == "Network Protocol"


def test_bcdedit_verifier_pnp_bindings_certs() -> None:
    assert wt.testsigning_on("identifier {current}\ntestsigning             Yes\n")
    assert not wt.testsigning_on("testsigning             No\n")
    assert not wt.testsigning_on("description Windows\n")
    settings = ("Special pool: Enabled\nForce IRQL checking: Enabled\n\n"
                "Verified drivers:\n\nwskecho.sys\nndis.sys\n")
    assert wt.verified_drivers(settings) == {"wskecho.sys", "ndis.sys"}
    assert wt.verified_drivers("No drivers are currently verified.") == frozenset()
    assert wt.pnp_present('{"InstanceId":"PCI\\\\X","Present":false,"Status":"Unknown"}') is False
    assert wt.pnp_present("") is None
    assert wt.parse_bindings('[{"Name":"Ethernet 2","ComponentID":"DL_labtdi","Enabled":false}]'
                             ) == {"Ethernet 2": False}
    stores = wt.cert_stores(
        '[{"PSParentPath":"Microsoft.PowerShell.Security\\\\Certificate::LocalMachine\\\\Root",'
        '"Thumbprint":"AB"}]')
    assert stores == {"Root"}


def test_bugcheck_event_message() -> None:
    msg = ("The computer has rebooted from a bugcheck.  The bugcheck was: 0x000000e2 "
           "(0x0000000000000000, 0x0000000000000001, 0x0000000000000002, 0x0000000000000003). "
           "A dump was saved in: C:\\Windows\\MEMORY.DMP. Report Id: 1234.")
    record = wt.parse_bugcheck_message(msg)
    assert record is not None
    assert record.code == 0xE2 and record.parameters == (0, 1, 2, 3)
    assert record.dump_path == "C:\\Windows\\MEMORY.DMP"
    assert wt.parse_bugcheck_event("") is None


def test_event_log_lines() -> None:
    text = wt.format_events('[{"TimeCreated":"/Date(1767225600000)/","Id":7000,'
                            '"ProviderName":"Service Control Manager",'
                            '"LevelDisplayName":"Error","Message":"The x\\r\\nservice failed"}]')
    assert text == ("2026-01-01T00:00:00Z Error Service Control Manager 7000: "
                    "The x  service failed")


def test_code_tables() -> None:
    assert win32_name(577) == "577 ERROR_INVALID_IMAGE_HASH"
    assert netcfg_name(-2146500093) == "0x800F0203 SPAPI_E_NO_DRIVER_SELECTED"
    assert netcfg_name(0x0004A020) == "0x0004A020 NETCFG_S_REBOOT"
    assert netcfg_name(0x80070430).endswith("(ERROR_SERVICE_MARKED_FOR_DELETE)")
    assert netcfg_name(0x80070005) == "0x80070005 HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED)"
    assert bugcheck_title(0x80) == "0x00000080 NMI_HARDWARE_FAILURE"
