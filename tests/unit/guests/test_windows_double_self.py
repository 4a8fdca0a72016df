"""Tests of the Windows guest TEST DOUBLE itself (tests/doubles/windows_guest.py).

They pin the double to the documented syntax and outputs, independently of the
lab's Windows guest code: PowerShell literals and exit semantics, sc.exe blocks and
error codes, netcfg/pnputil, adapters and bindings, the drivers' journals and fault
knobs, crashes with their dump header.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Literal

import pytest

from lab.errors import CommandFailed, CommandTimeout, GuestUnreachable
from lab.journal import Adapter, Vocabulary, check_adapter_removal, check_unload, parse_journal
from tests.doubles.windows_guest import AdapterSpec, ListArg, WindowsGuestDouble, Word, parse

REPO = Path(__file__).resolve().parents[3]
VOCAB = Vocabulary.load()
THUMB = "A1B2C3D4E5F60718293A4B5C6D7E8F9012345678"
MACS = ("52:54:00:ab:cd:00", "52:54:00:ab:cd:01", "52:54:00:ab:cd:02")
PARAMS = r"HKLM\SYSTEM\CurrentControlSet\Services\{}\Parameters"


def make(tmp_path: Path, stop_mode: Literal["returns-pending", "blocks"] = "returns-pending"
         ) -> WindowsGuestDouble:
    specs = [AdapterSpec(MACS[0], ipv4="192.168.213.10/24"), AdapterSpec(MACS[1]),
             AdapterSpec(MACS[2])]
    guest = WindowsGuestDouble("win1", specs, trusted_thumbprints=[THUMB], stop_mode=stop_mode)
    guest.run(r"New-Item -ItemType Directory -Force -Path 'C:\lab\drivers' | Out-Null")
    for name in ("wskecho.sys", "labtdi.sys", "labtdi.cat", "labctl.exe"):
        (tmp_path / name).write_bytes(b"MZ" + name.encode())
    (tmp_path / "labtdi.inf").write_bytes((REPO / "drivers/labtdi/windows/labtdi.inf").read_bytes())
    for name in ("wskecho.sys", "labtdi.sys", "labtdi.cat", "labctl.exe", "labtdi.inf"):
        guest.put(tmp_path / name, f"C:/lab/drivers/{name}")
    return guest


def native(guest: WindowsGuestDouble, command: str) -> tuple[int, str]:
    result = guest.run(f"{command}; exit $LASTEXITCODE", check=False)
    return result.exit_code, result.stdout


def create_wskecho(guest: WindowsGuestDouble, **knobs: int) -> None:
    assert native(guest, r"sc.exe create wskecho type= kernel start= demand error= normal "
                  r"binPath= 'C:\lab\drivers\wskecho.sys'")[0] == 0
    key = PARAMS.format("wskecho")
    for name, value in {"Port": 7007, **knobs}.items():
        assert native(guest, f"reg.exe add '{key}' /v {name} /t REG_DWORD /d {value} /f")[0] == 0
    assert native(guest, f"reg.exe add '{key}' /v JournalFile /t REG_SZ /d "
                  r"'\??\C:\Windows\Temp\wskecho.journal' /f")[0] == 0


def install_labtdi(guest: WindowsGuestDouble, **knobs: int) -> None:
    code, _ = native(guest, r"netcfg.exe -v -l 'C:\lab\drivers\labtdi.inf' -c p -i DL_labtdi")
    assert code == 0
    for name, value in knobs.items():
        assert native(guest, f"reg.exe add '{PARAMS.format('labtdi')}' /v {name} "
                      f"/t REG_DWORD /d {value} /f")[0] == 0


def journal(guest: WindowsGuestDouble, driver: str) -> str:
    return guest.run(rf"Get-Content -Raw 'C:\Windows\Temp\{driver}.journal'").stdout


def adapter_of(guest: WindowsGuestDouble, mac: str) -> Adapter:
    rows = json.loads(guest.run("Get-NetAdapter | Select-Object Name,ifIndex,MacAddress | "
                                "ConvertTo-Json -Compress").stdout)
    for row in rows:
        if row["MacAddress"] == mac.replace(":", "-").upper():
            return Adapter(mac, row["ifIndex"])
    raise AssertionError(mac)


# ---- syntax -------------------------------------------------------------------------


def test_double_parses_single_quoted_literals_lists_and_statements() -> None:
    (first, second) = parse("Get-Content -Raw 'C:\\it''s here'; exit $LASTEXITCODE")
    assert first[0].args[1] == Word("C:\\it's here", True)
    assert second[0].name == "exit"
    (pipe,) = parse("Get-NetAdapter | Select-Object Name,ifIndex | ConvertTo-Json -Compress")
    assert [e.name for e in pipe] == ["Get-NetAdapter", "Select-Object", "ConvertTo-Json"]
    assert pipe[1].args[0] == ListArg((Word("Name"), Word("ifIndex")))


@pytest.mark.parametrize("command", [
    'Write-Output "lab-alive"', "Get-Service wskecho", "sc query wskecho",
    "bcdedit.exe /enum {current}", "Write-Output 'x' 2>&1", "Get-Content -Raw 'unterminated",
])
def test_double_refuses_commands_outside_the_contract(tmp_path: Path, command: str) -> None:
    guest = make(tmp_path)
    with pytest.raises(AssertionError, match="test double"):
        guest.run(command)


def test_double_liveness_and_crlf(tmp_path: Path) -> None:
    guest = make(tmp_path)
    guest.close()  # like lab.guest.Guest: the next command reconnects
    result = guest.run("Write-Output lab-alive")
    assert (result.exit_code, result.stdout) == (0, "lab-alive\r\n")


def test_double_exit_status_is_1_without_exit_lastexitcode(tmp_path: Path) -> None:
    guest = make(tmp_path)
    assert guest.run("sc.exe query nosuch", check=False).exit_code == 1
    code, text = native(guest, "sc.exe query nosuch")
    assert code == 1060
    assert "[SC] OpenService FAILED 1060:" in text
    with pytest.raises(CommandFailed) as info:
        guest.run("sc.exe start nosuch; exit $LASTEXITCODE")
    assert info.value.exit_code == 1060


# ---- wskecho ------------------------------------------------------------------------


def test_double_wskecho_load_and_unload_journal(tmp_path: Path) -> None:
    guest = make(tmp_path)
    create_wskecho(guest)
    code, text = native(guest, "sc.exe start wskecho")
    assert code == 0 and "STATE              : 4  RUNNING" in text and "PID" in text
    assert native(guest, "sc.exe start wskecho")[0] == 1056
    live = guest.run(r"& 'C:\lab\drivers\labctl.exe' journal wskecho; exit $LASTEXITCODE")
    assert [line.split()[2] for line in live.stdout.splitlines()] == [
        "LOAD", "WSK_REGISTER", "WSK_CAPTURE_NPI", "LISTEN"]
    code, text = native(guest, "sc.exe stop wskecho")
    assert code == 0 and "1  STOPPED" in text
    assert native(guest, "sc.exe stop wskecho")[0] == 1062
    gone = guest.run(r"& 'C:\lab\drivers\labctl.exe' journal wskecho; exit $LASTEXITCODE",
                     check=False)
    assert gone.exit_code == 2 and "error 2" in gone.stderr
    check_unload(parse_journal(journal(guest, "wskecho"), VOCAB), "wskecho", VOCAB)


def test_double_wskecho_stop_waits_for_clients(tmp_path: Path) -> None:
    guest = make(tmp_path)
    create_wskecho(guest)
    native(guest, "sc.exe start wskecho")
    guest.open_clients(2)
    code, text = native(guest, "sc.exe stop wskecho")
    assert code == 0 and "3  STOP_PENDING" in text
    assert "3  STOP_PENDING" in native(guest, "sc.exe query wskecho")[1]
    assert native(guest, "sc.exe stop wskecho")[0] == 1061
    guest.close_clients()
    assert "1  STOPPED" in native(guest, "sc.exe query wskecho")[1]
    names = parse_journal(journal(guest, "wskecho"), VOCAB).names()
    assert names[-4:] == ["CLOSE", "CLOSE", "WSK_DEREGISTER", "UNLOAD"]
    check_unload(parse_journal(journal(guest, "wskecho"), VOCAB), "wskecho", VOCAB)


def test_double_blocking_stop_mode_keeps_started_stop_unfinished(tmp_path: Path) -> None:
    guest = make(tmp_path, stop_mode="blocks")
    create_wskecho(guest)
    native(guest, "sc.exe start wskecho")
    guest.open_clients(1)
    running = guest.start("sc.exe stop wskecho; exit $LASTEXITCODE")
    assert not running.finished()
    with pytest.raises(CommandTimeout):
        running.wait(0.05)
    guest.close_clients()
    assert running.finished()
    assert "1  STOPPED" in running.wait(1).stdout


def test_double_block_unload_and_skip_deregister(tmp_path: Path) -> None:
    guest = make(tmp_path)
    create_wskecho(guest, FaultBlockUnload=1)
    native(guest, "sc.exe start wskecho")
    assert "STOP_PENDING" in native(guest, "sc.exe stop wskecho")[1]
    guest.close_clients()
    assert guest.service_state("wskecho") == 3
    (tmp_path / "other").mkdir()
    other = make(tmp_path / "other")
    create_wskecho(other, FaultSkipDeregister=1)
    native(other, "sc.exe start wskecho")
    native(other, "sc.exe stop wskecho")
    assert "WSK_DEREGISTER" not in journal(other, "wskecho")


def test_double_refuses_unsigned_and_missing_images(tmp_path: Path) -> None:
    guest = make(tmp_path)
    create_wskecho(guest)
    guest.set_signed(r"C:\lab\drivers\wskecho.sys", False)
    code, text = native(guest, "sc.exe start wskecho")
    assert code == 577 and text.startswith("[SC] StartService FAILED 577:")
    assert "digital signature" in text
    native(guest, "sc.exe delete wskecho")
    native(guest, r"sc.exe create wskecho type= kernel start= demand error= normal "
           r"binPath= 'C:\lab\drivers\nothere.sys'")
    assert native(guest, "sc.exe start wskecho")[0] == 2


def test_double_delete_running_service_is_marked(tmp_path: Path) -> None:
    guest = make(tmp_path)
    create_wskecho(guest)
    native(guest, "sc.exe start wskecho")
    assert native(guest, "sc.exe delete wskecho")[0] == 0
    assert native(guest, "sc.exe start wskecho")[0] == 1072
    native(guest, "sc.exe stop wskecho")
    assert native(guest, "sc.exe query wskecho")[0] == 1060


def test_double_reg_delete_missing_value_exits_1(tmp_path: Path) -> None:
    guest = make(tmp_path)
    result = guest.run(f"reg.exe delete '{PARAMS.format('wskecho')}' /v FaultBlockUnload /f; "
                       "exit $LASTEXITCODE", check=False)
    assert result.exit_code == 1 and "unable to find" in result.stderr


# ---- labtdi, adapters, bindings -------------------------------------------------------


def test_double_adapters_json_and_addresses(tmp_path: Path) -> None:
    guest = make(tmp_path)
    rows = json.loads(guest.run(
        "Get-NetAdapter | Select-Object Name,ifIndex,MacAddress,Status,InterfaceDescription,"
        "PnPDeviceID | ConvertTo-Json -Compress").stdout)
    assert [r["Name"] for r in rows] == ["Ethernet", "Ethernet 2", "Ethernet 3"]
    assert rows[1]["MacAddress"] == "52-54-00-AB-CD-01"
    assert rows[0]["InterfaceDescription"] == "Intel(R) 82574L Gigabit Network Connection"
    assert rows[0]["PnPDeviceID"].startswith("PCI\\VEN_8086&DEV_10D3&SUBSYS_")
    raw = guest.run("Get-NetAdapter | Select-Object PnPDeviceID | ConvertTo-Json -Compress")
    assert "\\u0026" in raw.stdout  # Windows PowerShell 5.1 escapes '&'
    one = guest.run("Get-NetAdapter | Where-Object MacAddress -eq '52-54-00-ab-cd-02' | "
                    "Select-Object Name | ConvertTo-Json -Compress").stdout
    assert json.loads(one) == {"Name": "Ethernet 3"}  # -eq is case-insensitive
    addrs = json.loads(guest.run("Get-NetIPAddress -AddressFamily IPv4 | Select-Object "
                                 "InterfaceIndex,IPAddress,PrefixLength | ConvertTo-Json "
                                 "-Compress").stdout)
    assert {"InterfaceIndex": rows[0]["ifIndex"], "IPAddress": "192.168.213.10",
            "PrefixLength": 24} in addrs


def test_double_labtdi_start_unbind_rebind_stop(tmp_path: Path) -> None:
    guest = make(tmp_path)
    install_labtdi(guest)
    assert native(guest, "netcfg.exe -q DL_labtdi")[0] == 0
    assert native(guest, "sc.exe start labtdi")[0] == 0
    target = adapter_of(guest, MACS[1])
    guest.run("Get-NetAdapter | Where-Object MacAddress -eq '52-54-00-AB-CD-01' | "
              "Disable-NetAdapterBinding -ComponentID DL_labtdi")
    states = json.loads(guest.run("Get-NetAdapterBinding -ComponentID DL_labtdi | Select-Object "
                                  "Name,ComponentID,Enabled | ConvertTo-Json -Compress").stdout)
    assert [s["Enabled"] for s in states] == [True, False, True]
    parsed = parse_journal(journal(guest, "labtdi"), VOCAB)
    check_adapter_removal(parsed, "labtdi", target, with_query=False)
    assert len(parsed.of_adapter(adapter_of(guest, MACS[0]))) == 3
    guest.run("Get-NetAdapter | Where-Object MacAddress -eq '52-54-00-AB-CD-01' | "
              "Enable-NetAdapterBinding -ComponentID DL_labtdi")
    assert native(guest, "sc.exe stop labtdi")[0] == 0
    check_unload(parse_journal(journal(guest, "labtdi"), VOCAB), "labtdi", VOCAB)


def test_double_netcfg_codes_and_driver_store(tmp_path: Path) -> None:
    guest = make(tmp_path)
    assert native(guest, "netcfg.exe -q DL_labtdi")[0] == 1
    bad = guest.run(r"netcfg.exe -v -l 'C:\lab\drivers\labtdi.inf' -c p -i DL_nothing; "
                    "exit $LASTEXITCODE", check=False)
    assert bad.exit_code == 0x800F0203
    install_labtdi(guest)
    store = guest.run("pnputil.exe /enum-drivers").stdout
    blocks = [b for b in store.split("\r\n\r\n") if "labtdi.inf" in b]
    assert len(blocks) == 1 and "Published Name:     oem1.inf" in blocks[0]
    assert native(guest, "netcfg.exe -v -u DL_labtdi")[0] == 0
    assert native(guest, "pnputil.exe /delete-driver oem1.inf")[0] == 0
    assert "labtdi.inf" not in guest.run("pnputil.exe /enum-drivers").stdout


def test_double_unplug_removal_sequence_and_pnp(tmp_path: Path) -> None:
    guest = make(tmp_path)
    install_labtdi(guest)
    native(guest, "sc.exe start labtdi")
    target = adapter_of(guest, MACS[2])
    device = json.loads(guest.run("Get-NetAdapter | Where-Object MacAddress -eq "
                                  "'52-54-00-AB-CD-02' | Select-Object PnPDeviceID | "
                                  "ConvertTo-Json -Compress").stdout)["PnPDeviceID"]
    assert guest.unplug(MACS[2])
    check_adapter_removal(parse_journal(journal(guest, "labtdi"), VOCAB), "labtdi", target)
    quoted = device.replace("'", "''")
    pnp = json.loads(guest.run(f"Get-PnpDevice -InstanceId '{quoted}' | Select-Object "
                               "InstanceId,Present,Status | ConvertTo-Json -Compress").stdout)
    assert (pnp["Present"], pnp["Status"]) == (False, "Unknown")
    assert MACS[2] not in guest.adapter_names()
    guest.replug(MACS[2])
    assert MACS[2] in guest.adapter_names()


def test_double_leaked_adapter_ref_blocks_removal_and_stop(tmp_path: Path) -> None:
    guest = make(tmp_path)
    install_labtdi(guest, FaultLeakAdapterRef=1)
    native(guest, "sc.exe start labtdi")
    assert not guest.unplug(MACS[1])
    assert MACS[1] in guest.adapter_names()
    assert "STOP_PENDING" in native(guest, "sc.exe stop labtdi")[1]
    with pytest.raises(CommandTimeout):
        guest.run("Get-NetAdapter | Where-Object MacAddress -eq '52-54-00-AB-CD-02' | "
                  "Disable-NetAdapterBinding -ComponentID DL_labtdi", timeout=1)


def test_double_crash_on_unbind_dump_and_event(tmp_path: Path) -> None:
    guest = make(tmp_path)
    install_labtdi(guest, FaultCrashOnUnbind=1)
    native(guest, "sc.exe start labtdi")
    with pytest.raises(GuestUnreachable):
        guest.run("Get-NetAdapter | Where-Object MacAddress -eq '52-54-00-AB-CD-01' | "
                  "Disable-NetAdapterBinding -ComponentID DL_labtdi")
    with pytest.raises(GuestUnreachable):
        guest.run("Write-Output lab-alive")
    guest.reboot_after_crash()
    event = json.loads(guest.run("Get-WinEvent -FilterHashtable @{LogName='System'; Id=1001} "
                                 "-MaxEvents 1 | Select-Object TimeCreated,Id,Message | "
                                 "ConvertTo-Json -Compress").stdout)
    assert event["Id"] == 1001 and "0x000000e2 (0x00000000001ab7d1" in event["Message"]
    assert event["TimeCreated"].startswith("/Date(")
    dumps = json.loads(guest.run(r"Get-ChildItem -Path 'C:\Windows\MEMORY.DMP',"
                                 r"'C:\Windows\Minidump\*.dmp' -ErrorAction SilentlyContinue | "
                                 "Select-Object FullName,Length | ConvertTo-Json -Compress")
                       .stdout)
    assert dumps[0]["FullName"] == "C:\\Windows\\MEMORY.DMP"
    guest.get("C:/Windows/MEMORY.DMP", tmp_path / "MEMORY.DMP")
    header = (tmp_path / "MEMORY.DMP").read_bytes()
    assert header[:8] == b"PAGEDU64"
    code, = struct.unpack_from("<I", header, 0x38)
    params = struct.unpack_from("<4Q", header, 0x40)
    assert code == 0xE2 and params[0] == 0x1AB7D1
    assert guest.service_state("labtdi") == 1
    assert "UNBIND" in journal(guest, "labtdi").split()[-3:]


def test_double_missing_dump_paths_exit_1_even_when_silenced(tmp_path: Path) -> None:
    result = make(tmp_path).run(r"Get-ChildItem -Path 'C:\Windows\MEMORY.DMP',"
                                r"'C:\Windows\Minidump\*.dmp' -ErrorAction SilentlyContinue | "
                                "Select-Object FullName,Length | ConvertTo-Json -Compress",
                                check=False)
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", "")


def test_double_nmi_bugchecks_0x80(tmp_path: Path) -> None:
    guest = make(tmp_path)
    guest.inject_nmi()
    with pytest.raises(GuestUnreachable):
        guest.run("Write-Output lab-alive")
    guest.reboot_after_crash()
    message = json.loads(guest.run("Get-WinEvent -FilterHashtable @{LogName='System'; Id=1001} "
                                   "-MaxEvents 1 | Select-Object Message | ConvertTo-Json "
                                   "-Compress").stdout)["Message"]
    assert "The bugcheck was: 0x00000080" in message


def test_double_image_contract_outputs(tmp_path: Path) -> None:
    guest = make(tmp_path)
    assert "testsigning             Yes" in guest.run("bcdedit.exe /enum '{current}'").stdout
    certs = json.loads(guest.run(
        r"Get-ChildItem Cert:\LocalMachine\Root,Cert:\LocalMachine\TrustedPublisher | "
        f"Where-Object Thumbprint -eq '{THUMB}' | Select-Object PSParentPath,Thumbprint | "
        "ConvertTo-Json -Compress").stdout)
    assert len(certs) == 2
    crash = json.loads(guest.run(
        r"Get-ItemProperty 'HKLM:\SYSTEM\CurrentControlSet\Control\CrashControl' | "
        "Select-Object CrashDumpEnabled,NMICrashDump,AutoReboot,AlwaysKeepMemoryDump | "
        "ConvertTo-Json -Compress").stdout)
    assert crash == {"CrashDumpEnabled": 1, "NMICrashDump": 1, "AutoReboot": 1,
                     "AlwaysKeepMemoryDump": 1}
    off = WindowsGuestDouble("w", testsigning=False)
    assert "testsigning" not in off.run("bcdedit.exe /enum '{current}'").stdout
    assert native(guest, "verifier.exe /standard /driver wskecho.sys ndis.sys")[0] != 0
    guest.run("Restart-Computer -Force")
    settings = guest.run("verifier.exe /querysettings").stdout
    assert settings.split("Verified drivers:")[1].split() == ["wskecho.sys", "ndis.sys"]
