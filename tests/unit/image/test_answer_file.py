"""autounattend.xml: well-formed, and every setting is where Windows Setup reads it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

from lab.image.answer import BYPASS_VALUES, COMPONENT_ATTRS, NS, WCM, answer_file
from lab.image.markers import CONFIG_MEDIA_LABEL
from lab.image.settings import WindowsImageSettings

N = {"u": NS, "wcm": WCM}
SETTINGS = WindowsImageSettings(
    iso=Path("/isos/win.iso"), virtio_win=Path("/isos/virtio-win.iso"),
    edition="Windows Server 2022 SERVERSTANDARD", locale="de-DE", admin_user="Administrator",
    product_key="VDYBN-27WPP-V4HQT-9VMD4-VMK7H", openssh_zip=None, disk_size_gib=64,
    disk_bus="virtio", tpm=False, install_timeout_s=7200, echo_port=7007)
PASSWORD = "S3cret-'<&>\"pw"


def parse(settings: WindowsImageSettings = SETTINGS, drivers: bool = True) -> ET.Element:
    return ET.fromstring(answer_file(settings, PASSWORD, drivers))


def component(root: ET.Element, pass_name: str, name: str) -> ET.Element:
    found = root.find(f"u:settings[@pass='{pass_name}']/u:component[@name='{name}']", N)
    assert found is not None, f"{pass_name}/{name} missing"
    return found


def text(el: ET.Element, path: str) -> str:
    found = el.find(path, N)
    assert found is not None and found.text is not None, f"{path} missing"
    return found.text


def test_well_formed_with_unattend_namespace_and_amd64_components() -> None:
    raw = answer_file(SETTINGS, PASSWORD, True)
    assert raw.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.fromstring(raw)
    assert root.tag == f"{{{NS}}}unattend"
    passes = [s.get("pass") for s in root.findall("u:settings", N)]
    assert passes == ["windowsPE", "offlineServicing", "specialize", "oobeSystem"]
    components = root.findall("u:settings/u:component", N)
    assert len(components) == 7
    for comp in components:
        assert {k: comp.get(k) for k in COMPONENT_ATTRS} == COMPONENT_ATTRS


def test_windows_pe_locale() -> None:
    intl = component(parse(), "windowsPE", "International-Core-WinPE")
    for tag in ("InputLocale", "SystemLocale", "UILanguage", "UserLocale",
                "SetupUILanguage/u:UILanguage"):
        assert text(intl, f"u:{tag}") == "de-DE"


def test_uefi_disk_layout_wipes_disk_0() -> None:
    setup = component(parse(), "windowsPE", "Microsoft-Windows-Setup")
    disk = setup.find("u:DiskConfiguration/u:Disk", N)
    assert disk is not None and disk.get(f"{{{WCM}}}action") == "add"
    assert (text(disk, "u:DiskID"), text(disk, "u:WillWipeDisk")) == ("0", "true")
    created = [(text(p, "u:Order"), text(p, "u:Type"), p.findtext("u:Size", None, N),
                p.findtext("u:Extend", None, N))
               for p in disk.findall("u:CreatePartitions/u:CreatePartition", N)]
    assert created == [("1", "EFI", "100", None), ("2", "MSR", "16", None),
                       ("3", "Primary", None, "true")]
    formats = {text(p, "u:PartitionID"): text(p, "u:Format")
               for p in disk.findall("u:ModifyPartitions/u:ModifyPartition", N)}
    assert formats == {"1": "FAT32", "3": "NTFS"}


def test_image_name_install_target_eula_and_product_key() -> None:
    setup = component(parse(), "windowsPE", "Microsoft-Windows-Setup")
    meta = setup.find("u:ImageInstall/u:OSImage/u:InstallFrom/u:MetaData", N)
    assert meta is not None
    assert text(meta, "u:Key") == "/IMAGE/NAME"
    assert text(meta, "u:Value") == "Windows Server 2022 SERVERSTANDARD"
    target = "u:ImageInstall/u:OSImage/u:InstallTo/u:"
    assert (text(setup, target + "DiskID"), text(setup, target + "PartitionID")) == ("0", "3")
    assert text(setup, "u:UserData/u:AcceptEula") == "true"
    assert text(setup, "u:UserData/u:ProductKey/u:Key") == SETTINGS.product_key


def test_edition_index_and_no_product_key() -> None:
    setup = component(parse(replace(SETTINGS, edition="4", product_key="")), "windowsPE",
                      "Microsoft-Windows-Setup")
    assert text(setup, "u:ImageInstall/u:OSImage/u:InstallFrom/u:MetaData/u:Key") == \
        "/IMAGE/INDEX"
    assert text(setup, "u:ImageInstall/u:OSImage/u:InstallFrom/u:MetaData/u:Value") == "4"
    assert setup.find("u:UserData/u:ProductKey", N) is None


def test_driver_paths_only_with_virtio_win() -> None:
    pnp = component(parse(), "windowsPE", "Microsoft-Windows-PnpCustomizationsWinPE")
    paths = [p.text for p in pnp.findall("u:DriverPaths/u:PathAndCredentials/u:Path", N)]
    assert paths and all(p and p.endswith(":\\$WinPEDriver$") for p in paths)
    root = parse(replace(SETTINGS, virtio_win=None, disk_bus="sata"), drivers=False)
    assert root.find(".//u:component[@name='Microsoft-Windows-PnpCustomizationsWinPE']",
                     N) is None


def test_windows_11_checks_bypassed_without_tpm() -> None:
    setup = component(parse(), "windowsPE", "Microsoft-Windows-Setup")
    commands = [text(c, "u:Path")
                for c in setup.findall("u:RunSynchronous/u:RunSynchronousCommand", N)]
    assert len(commands) == len(BYPASS_VALUES)
    for value, command in zip(BYPASS_VALUES, commands, strict=True):
        assert command == (f"reg add HKLM\\SYSTEM\\Setup\\LabConfig /v {value} "
                           "/t REG_DWORD /d 1 /f")


def test_no_bypass_with_tpm() -> None:
    raw = answer_file(replace(SETTINGS, tpm=True), PASSWORD, True)
    root = ET.fromstring(raw)
    assert root.find(".//u:RunSynchronous", N) is None
    assert b"LabConfig" not in raw and not any(v.encode() in raw for v in BYPASS_VALUES)


def test_specialize_keeps_server_manager_closed() -> None:
    comp = component(parse(), "specialize", "Microsoft-Windows-ServerManager-SvrMgrNc")
    assert text(comp, "u:DoNotOpenServerManagerAtLogon") == "true"


def test_oobe_admin_autologon_once_hidden_oobe() -> None:
    shell = component(parse(), "oobeSystem", "Microsoft-Windows-Shell-Setup")
    assert text(shell, "u:UserAccounts/u:AdministratorPassword/u:Value") == PASSWORD
    assert shell.find("u:UserAccounts/u:LocalAccounts", N) is None
    assert text(shell, "u:AutoLogon/u:Username") == "Administrator"
    assert text(shell, "u:AutoLogon/u:LogonCount") == "1"
    assert text(shell, "u:AutoLogon/u:Enabled") == "true"
    assert text(shell, "u:AutoLogon/u:Password/u:Value") == PASSWORD
    for tag in ("HideEULAPage", "HideOEMRegistrationScreen", "HideOnlineAccountScreens"):
        assert text(shell, f"u:OOBE/u:{tag}") == "true"
    intl = component(parse(), "oobeSystem", "International-Core")
    assert text(intl, "u:UserLocale") == "de-DE"


def test_other_admin_user_is_a_local_administrator() -> None:
    shell = component(parse(replace(SETTINGS, admin_user="labadmin")), "oobeSystem",
                      "Microsoft-Windows-Shell-Setup")
    account = shell.find("u:UserAccounts/u:LocalAccounts/u:LocalAccount", N)
    assert account is not None
    assert (text(account, "u:Name"), text(account, "u:Group")) == ("labadmin", "Administrators")
    assert text(account, "u:Password/u:Value") == PASSWORD
    assert text(shell, "u:AutoLogon/u:Username") == "labadmin"


def test_first_logon_runs_the_script_from_the_labelled_volume() -> None:
    shell = component(parse(), "oobeSystem", "Microsoft-Windows-Shell-Setup")
    command = shell.find("u:FirstLogonCommands/u:SynchronousCommand", N)
    assert command is not None and command.get(f"{{{WCM}}}action") == "add"
    line = text(command, "u:CommandLine")
    assert f"Label -eq '{CONFIG_MEDIA_LABEL}'" in line
    assert "powershell.exe -NoProfile -ExecutionPolicy Bypass -File" in line
    assert "'provision.ps1'" in line
    assert len(line) <= 1024  # CommandLine's documented maximum
