"""The answer file (autounattend.xml) of an unattended Windows install, built as an XML tree.

Element names, passes and component names are Microsoft's Unattended Windows Setup
Reference (learn.microsoft.com/windows-hardware/customize/desktop/unattend/). The UEFI
layout (EFI 100 MB FAT32, MSR 16 MB, NTFS rest), the Windows 11 LabConfig bypass and the
first-logon command shape follow the public peers gathered in windows-notes B1
(rgl/windows-vagrant windows-2022-uefi/autounattend.xml, dockur/windows
assets/win11x64.xml).

The config media (volume label CONFIG_MEDIA_LABEL) carries the drivers in
``$WinPEDriver$``, a folder Windows Setup scans on every attached media by itself; the
DriverPaths below name the same folder on the drive letters the media usually gets.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from lab.guests.windows_text import ps_quote
from lab.image.markers import CONFIG_MEDIA_LABEL
from lab.image.provision_script import SCRIPT_NAME
from lab.image.settings import WindowsImageSettings

NS = "urn:schemas-microsoft-com:unattend"
WCM = "http://schemas.microsoft.com/WMIConfig/2002/State"
#: The attributes every component of an amd64 answer file carries (Windows SIM output).
COMPONENT_ATTRS = {"processorArchitecture": "amd64", "publicKeyToken": "31bf3856ad364e35",
                   "language": "neutral", "versionScope": "nonSxS"}
#: Folder on the config media Windows Setup loads drivers from without being told.
WINPE_DRIVER_DIR = "$WinPEDriver$"
#: Drive letters the config media gets in WinPE (X: is WinPE itself, the ISOs follow C:).
_MEDIA_LETTERS = ("D", "E", "F", "G")
#: Windows 11 setup checks a lab VM fails without a TPM (dockur/windows win11x64.xml).
BYPASS_VALUES = ("BypassTPMCheck", "BypassSecureBootCheck", "BypassRAMCheck")
#: Partitions of disk 0: (type, size MB or None = rest, format, label).
UEFI_LAYOUT = (("EFI", 100, "FAT32", "System"), ("MSR", 16, None, None),
               ("Primary", None, "NTFS", "Windows"))
#: The NTFS partition Windows goes to.
INSTALL_PARTITION = 3

ET.register_namespace("", NS)
ET.register_namespace("wcm", WCM)


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _sub(parent: ET.Element, tag: str, text: str | None = None,
         add: bool = False) -> ET.Element:
    """A child element; ``add`` marks a list item (wcm:action="add")."""
    child = ET.SubElement(parent, _q(tag))
    if add:
        child.set(f"{{{WCM}}}action", "add")
    if text is not None:
        child.text = text
    return child


def _make_component(settings_el: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(settings_el, _q("component"), {"name": name, **COMPONENT_ATTRS})


def first_logon_command() -> str:
    """Find the volume labelled CONFIG_MEDIA_LABEL, run its script (-File, Bypass)."""
    finder = ("Get-CimInstance -ClassName Win32_Volume | Where-Object Label -eq "
              f"{ps_quote(CONFIG_MEDIA_LABEL)} | Select-Object -First 1")
    return ("powershell.exe -NoProfile -ExecutionPolicy Bypass -Command \"$v = " + finder +
            "; powershell.exe -NoProfile -ExecutionPolicy Bypass -File "
            f"(Join-Path $v.DriveLetter {ps_quote(SCRIPT_NAME)})\"")


def answer_file(settings: WindowsImageSettings, admin_password: str, drivers: bool) -> bytes:
    """autounattend.xml for ``settings`` (``drivers``: the media has ``$WinPEDriver$``)."""
    root = ET.Element(_q("unattend"))
    _windows_pe(_pass(root, "windowsPE"), settings, drivers)
    _offline_servicing(_pass(root, "offlineServicing"))
    _specialize(_pass(root, "specialize"))
    _oobe(_pass(root, "oobeSystem"), settings, admin_password)
    ET.indent(root)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"


def _pass(root: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(root, _q("settings"), {"pass": name})


def _international(parent: ET.Element, name: str, locale: str) -> ET.Element:
    comp = _make_component(parent, name)
    for tag in ("InputLocale", "SystemLocale", "UILanguage", "UserLocale"):
        _sub(comp, tag, locale)
    return comp


def _windows_pe(parent: ET.Element, settings: WindowsImageSettings, drivers: bool) -> None:
    intl = _international(parent, "International-Core-WinPE", settings.locale)
    _sub(_sub(intl, "SetupUILanguage"), "UILanguage", settings.locale)
    if drivers:
        paths = _sub(_make_component(parent, "Microsoft-Windows-PnpCustomizationsWinPE"),
                     "DriverPaths")
        for key, letter in enumerate(_MEDIA_LETTERS, start=1):
            item = _sub(paths, "PathAndCredentials", add=True)
            item.set(f"{{{WCM}}}keyValue", str(key))
            _sub(item, "Path", f"{letter}:\\{WINPE_DRIVER_DIR}")
    setup = _make_component(parent, "Microsoft-Windows-Setup")
    _disk_layout(setup)
    image = _sub(setup, "ImageInstall")
    os_image = _sub(image, "OSImage")
    meta = _sub(_sub(os_image, "InstallFrom"), "MetaData", add=True)
    index = settings.edition_index
    _sub(meta, "Key", "/IMAGE/INDEX" if index is not None else "/IMAGE/NAME")
    _sub(meta, "Value", settings.edition)
    install_to = _sub(os_image, "InstallTo")
    _sub(install_to, "DiskID", "0")
    _sub(install_to, "PartitionID", str(INSTALL_PARTITION))
    user = _sub(setup, "UserData")
    _sub(user, "AcceptEula", "true")
    _sub(user, "FullName", settings.admin_user)
    _sub(user, "Organization", "Driver Lab")
    if settings.product_key:
        product = _sub(user, "ProductKey")
        _sub(product, "Key", settings.product_key)
        _sub(product, "WillShowUI", "Never")
    if not settings.tpm:
        _bypass_checks(setup)


def _disk_layout(setup: ET.Element) -> None:
    disk = _sub(_sub(setup, "DiskConfiguration"), "Disk", add=True)
    _sub(disk, "DiskID", "0")
    _sub(disk, "WillWipeDisk", "true")
    create = _sub(disk, "CreatePartitions")
    modify = _sub(disk, "ModifyPartitions")
    for order, (kind, size, fmt, label) in enumerate(UEFI_LAYOUT, start=1):
        part = _sub(create, "CreatePartition", add=True)
        _sub(part, "Order", str(order))
        _sub(part, "Type", kind)
        if size is None:
            _sub(part, "Extend", "true")
        else:
            _sub(part, "Size", str(size))
        if fmt is None:
            continue
        mod = _sub(modify, "ModifyPartition", add=True)
        _sub(mod, "Order", str(len(modify)))
        _sub(mod, "PartitionID", str(order))
        _sub(mod, "Format", fmt)
        if label:
            _sub(mod, "Label", label)
        if order == INSTALL_PARTITION:
            _sub(mod, "Letter", "C")


def _bypass_checks(setup: ET.Element) -> None:
    """reg add HKLM\\SYSTEM\\Setup\\LabConfig /v Bypass*Check = 1 (no TPM, Secure Boot off)."""
    run = _sub(setup, "RunSynchronous")
    for order, value in enumerate(BYPASS_VALUES, start=1):
        cmd = _sub(run, "RunSynchronousCommand", add=True)
        _sub(cmd, "Order", str(order))
        _sub(cmd, "Path", f"reg add HKLM\\SYSTEM\\Setup\\LabConfig /v {value} "
                          "/t REG_DWORD /d 1 /f")


def _offline_servicing(parent: ET.Element) -> None:
    """UAC off, so the first-logon script and SSH sessions run with a full token (rgl)."""
    _sub(_make_component(parent, "Microsoft-Windows-LUA-Settings"), "EnableLUA", "false")


def _specialize(parent: ET.Element) -> None:
    comp = _make_component(parent, "Microsoft-Windows-ServerManager-SvrMgrNc")
    _sub(comp, "DoNotOpenServerManagerAtLogon", "true")


def _password(parent: ET.Element, tag: str, password: str) -> None:
    el = _sub(parent, tag)
    _sub(el, "Value", password)
    _sub(el, "PlainText", "true")


def _oobe(parent: ET.Element, settings: WindowsImageSettings, password: str) -> None:
    _international(parent, "International-Core", settings.locale)
    shell = _make_component(parent, "Microsoft-Windows-Shell-Setup")
    accounts = _sub(shell, "UserAccounts")
    _password(accounts, "AdministratorPassword", password)
    if settings.admin_user.lower() != "administrator":
        account = _sub(_sub(accounts, "LocalAccounts"), "LocalAccount", add=True)
        _password(account, "Password", password)
        _sub(account, "Group", "Administrators")
        _sub(account, "Name", settings.admin_user)
        _sub(account, "DisplayName", settings.admin_user)
    logon = _sub(shell, "AutoLogon")
    _password(logon, "Password", password)
    _sub(logon, "Enabled", "true")
    _sub(logon, "LogonCount", "1")
    _sub(logon, "Username", settings.admin_user)
    oobe = _sub(shell, "OOBE")
    for tag in ("HideEULAPage", "HideLocalAccountScreen", "HideOEMRegistrationScreen",
                "HideOnlineAccountScreens", "HideWirelessSetupInOOBE"):
        _sub(oobe, tag, "true")
    _sub(oobe, "ProtectYourPC", "3")
    command = _sub(_sub(shell, "FirstLogonCommands"), "SynchronousCommand", add=True)
    _sub(command, "Order", "1")
    _sub(command, "CommandLine", first_logon_command())
    _sub(command, "Description", "Driver Lab provisioning")
    _sub(command, "RequiresUserInput", "false")


__all__ = ["BYPASS_VALUES", "COMPONENT_ATTRS", "NS", "WCM", "WINPE_DRIVER_DIR", "answer_file",
           "first_logon_command"]
