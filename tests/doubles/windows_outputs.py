"""Sample outputs of a Windows guest, for the Windows guest test double.

This module belongs to a TEST DOUBLE: it renders the text a Windows Server 2022
guest prints for the commands of the lab's command contract, so that the double in
``tests.doubles.windows_guest`` answers in the documented formats. Every format has
a comment naming the Microsoft page or public source it follows; where a source
shows only a format (not a recorded session) the values are illustrative.

Line endings are CRLF everywhere: Windows programs and PowerShell write ``\\r\\n``
and OpenSSH for Windows passes the bytes through unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CRLF = "\r\n"


def lines(*rows: str) -> str:
    """Rows joined the Windows way, with a final CRLF (a test double helper)."""
    return "".join(f"{row}{CRLF}" for row in rows)


# ---- Win32 error texts ------------------------------------------------------
# FormatMessage texts of the Win32 error codes the double returns, as listed on
# learn.microsoft.com "System Error Codes (0-499)", "(500-999)" and "(1000-1299)"
# (windows/win32/debug/system-error-codes--0-499- etc.).
WIN32_MESSAGES: dict[int, str] = {
    2: "The system cannot find the file specified.",
    577: ("Windows cannot verify the digital signature for this file. A recent hardware or "
          "software change might have installed a file that is signed incorrectly or "
          "damaged, or that might be malicious software from an unknown source."),
    1052: "The requested control is not valid for this service.",
    1056: "An instance of the service is already running.",
    1060: "The specified service does not exist as an installed service.",
    1061: "The service cannot accept control messages at this time.",
    1062: "The service has not been started.",
    1072: "The specified service has been marked for deletion.",
    1073: "The specified service already exists.",
}

ERROR_FILE_NOT_FOUND = 2
ERROR_INVALID_IMAGE_HASH = 577
ERROR_SERVICE_ALREADY_RUNNING = 1056
ERROR_SERVICE_DOES_NOT_EXIST = 1060
ERROR_SERVICE_CANNOT_ACCEPT_CTRL = 1061
ERROR_SERVICE_NOT_ACTIVE = 1062
ERROR_SERVICE_MARKED_FOR_DELETE = 1072
ERROR_SERVICE_EXISTS = 1073

# ---- HRESULTs netcfg.exe exits with ------------------------------------------
# netcfg.exe returns the HRESULT of its INetCfg call as the process exit code
# (shared/windows-notes.md B2; NETCFG_S_REBOOT and SPAPI_E_NO_DRIVER_SELECTED are
# defined in netcfgx.h / setupapi.h, learn.microsoft.com "INetCfgClassSetup::Install").
S_FALSE = 0x00000001  # INetCfg::FindComponent: the component is not installed
NETCFG_S_REBOOT = 0x0004A020
SPAPI_E_NO_DRIVER_SELECTED = 0x800F0203
HRESULT_FILE_NOT_FOUND = 0x80070002  # HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)
HRESULT_MARKED_FOR_DELETE = 0x80070430  # HRESULT_FROM_WIN32(1072)


# ---- sc.exe ------------------------------------------------------------------
# Block layout of `sc.exe query` / `sc.exe start` / `sc.exe stop` as printed for a
# kernel driver: learn.microsoft.com windows-server/administration/windows-commands/
# sc-query (sample output), shared/windows-notes.md B2 (the `sc start` block printed
# by real drivers). `sc query` prints the SERVICE_STATUS fields; `sc start` prints
# the SERVICE_STATUS_PROCESS fields, i.e. also PID and FLAGS.
STATE_NAMES = {1: "STOPPED", 2: "START_PENDING", 3: "STOP_PENDING", 4: "RUNNING"}
_FLAGS_RUNNING = "(STOPPABLE, NOT_PAUSABLE, IGNORES_SHUTDOWN)"
_FLAGS_PENDING = "(NOT_STOPPABLE, NOT_PAUSABLE, IGNORES_SHUTDOWN)"


def sc_status_block(service: str, state: int, *, with_process: bool = False) -> str:
    """The SERVICE_NAME block of ``sc.exe`` for a kernel driver in ``state``."""
    rows = [
        f"SERVICE_NAME: {service} ",
        "        TYPE               : 1  KERNEL_DRIVER  ",
        f"        STATE              : {state}  {STATE_NAMES[state]} ",
    ]
    if state == 4:
        rows.append(" " * 32 + _FLAGS_RUNNING)
    elif state in (2, 3):
        rows.append(" " * 32 + _FLAGS_PENDING)
    rows += [
        "        WIN32_EXIT_CODE    : 0  (0x0)",
        "        SERVICE_EXIT_CODE  : 0  (0x0)",
        "        CHECKPOINT         : 0x0",
        "        WAIT_HINT          : 0x0",
    ]
    if with_process:
        rows += ["        PID                : 0", "        FLAGS              : "]
    return lines("", *rows, "")


def sc_failure(operation: str, code: int) -> str:
    """``[SC] <Operation> FAILED <code>:`` then the Win32 message (sc.exe's error form,
    e.g. ``[SC] StartService FAILED 577:``; windows-notes B2, command contract)."""
    return lines(f"[SC] {operation} FAILED {code}:", "", WIN32_MESSAGES[code], "")


def sc_success(operation: str) -> str:
    """``[SC] CreateService SUCCESS`` and friends (windows-notes B2; rgl/windows-vagrant
    checks the literal ``[SC] ChangeServiceConfig SUCCESS``)."""
    return lines(f"[SC] {operation} SUCCESS")


# ---- reg.exe -----------------------------------------------------------------
# learn.microsoft.com windows-commands/reg-add and reg-delete: exit 0 on success,
# 1 on failure; the texts are the ones reg.exe prints.
REG_OK = lines("The operation completed successfully.")
REG_NOT_FOUND = lines("ERROR: The system was unable to find the specified registry key or value.")


# ---- netcfg.exe ----------------------------------------------------------------
# netcfg's -v wording was not found in any source (windows-notes B2): these texts
# are illustrative; callers judge netcfg by its exit code.
def netcfg_query(component: str, installed: bool) -> str:
    """Sample output rendered by the Windows guest test double."""
    return lines(f"{component} is {'installed' if installed else 'not installed'}.")


def netcfg_install(component: str, code: int) -> str:
    """Sample output rendered by the Windows guest test double."""
    if code == 0:
        return lines(f"Trying to install {component} ...", f"... {component} was installed "
                     "successfully.")
    return lines(f"Trying to install {component} ...", f"... failed. Error code: 0x{code:08x}.")


def netcfg_uninstall(component: str, code: int) -> str:
    """Sample output rendered by the Windows guest test double."""
    if code in (0, NETCFG_S_REBOOT):
        tail = " (a reboot is required)" if code else ""
        return lines(f"Trying to remove {component} ...", f"... {component} was removed "
                     f"successfully{tail}.")
    return lines(f"Trying to remove {component} ...", f"... failed. Error code: 0x{code:08x}.")


# ---- pnputil.exe ---------------------------------------------------------------
# `pnputil /enum-drivers` on Windows 10 2004+/Server 2022: a "Microsoft PnP Utility"
# banner, then one block per driver package with "Published Name:" / "Original
# Name:" / "Provider Name:" / "Class Name:" / "Class GUID:" / "Driver Version:" /
# "Signer Name:", blocks separated by blank lines (learn.microsoft.com windows-
# hardware/drivers/devtest/pnputil-command-syntax; microsoft/xdp-for-windows
# tools/setup.ps1 parses "Published Name" and "Original Name" from it).
@dataclass(frozen=True)
class DriverPackage:
    """One package in the driver store of the test double."""

    published: str  # oemNN.inf
    original: str  # labtdi.inf
    provider: str
    class_name: str
    class_guid: str
    version: str  # "01/01/2025 1.0.0.0"
    signer: str


def pnputil_enum(packages: Iterable[DriverPackage]) -> str:
    """Sample output rendered by the Windows guest test double."""
    rows = ["Microsoft PnP Utility", ""]
    for p in packages:
        rows += [f"Published Name:     {p.published}", f"Original Name:      {p.original}",
                 f"Provider Name:      {p.provider}", f"Class Name:         {p.class_name}",
                 f"Class GUID:         {p.class_guid}", f"Driver Version:     {p.version}",
                 f"Signer Name:        {p.signer}", ""]
    return lines(*rows)


def pnputil_deleted(ok: bool) -> str:
    """Sample output rendered by the Windows guest test double."""
    if ok:
        return lines("Microsoft PnP Utility", "", "Driver package deleted successfully.")
    return lines("Microsoft PnP Utility", "", "Failed to delete driver package: The system "
                 "cannot find the file specified.")


# ---- bcdedit.exe ---------------------------------------------------------------
# `bcdedit /enum {current}` lists only the elements that are set, so "testsigning
# Yes" is present only when test signing is on (learn.microsoft.com windows-
# hardware/drivers/install/the-testsigning-boot-configuration-option; column layout
# of bcdedit /enum from the bcdedit command page). Values illustrative.
def bcdedit_current(testsigning: bool) -> str:
    """Sample output rendered by the Windows guest test double."""
    rows = ["", "Windows Boot Loader", "-------------------",
            "identifier              {current}",
            "device                  partition=C:",
            "path                    \\Windows\\system32\\winload.efi",
            "description             Windows Server",
            "locale                  en-US",
            "inherit                 {bootloadersettings}",
            "recoveryenabled         No"]
    if testsigning:
        rows.append("testsigning             Yes")
    rows += ["isolatedcontext         Yes",
             "osdevice                partition=C:",
             "systemroot              \\Windows",
             "nx                      OptOut",
             "bootmenupolicy          Standard"]
    return lines(*rows)


# ---- verifier.exe --------------------------------------------------------------
# learn.microsoft.com windows-hardware/drivers/devtest/verifier-command-line:
# /querysettings "displays a summary of the options that will be activated and
# drivers that will be verified after the next boot"; the layout follows the
# sample in windows-notes B2 (illustrative).
STANDARD_FLAGS = ("Special pool", "Force IRQL checking", "Pool tracking", "I/O verification",
                  "Deadlock detection", "DMA checking", "Security checks",
                  "Miscellaneous checks", "DDI compliance checking")
VERIFIER_REBOOT = lines("The system reboot is required for the changes to take effect.")


def verifier_querysettings(drivers: Sequence[str]) -> str:
    """Sample output rendered by the Windows guest test double."""
    if not drivers:
        return lines("Special pool: Disabled", "", "Verified drivers:", "", "None")
    rows = [f"{flag}: Enabled" for flag in STANDARD_FLAGS]
    return lines(*rows, "", "Verified drivers:", "", *drivers)


# ---- event log -----------------------------------------------------------------
# System log event 1001 (provider Microsoft-Windows-WER-SystemErrorReporting) after
# a bugcheck reboot; the message text is the one in the command contract and
# windows-notes B2 ("The computer has rebooted from a bugcheck.  The bugcheck was:
# 0x000000e2 (...). A dump was saved in: C:\\Windows\\MEMORY.DMP. Report Id: ...").
def bugcheck_message(code: int, params: Sequence[int], dump: str, report_id: str) -> str:
    """Sample output rendered by the Windows guest test double."""
    args = ", ".join(f"0x{p:016x}" for p in params)
    return (f"The computer has rebooted from a bugcheck.  The bugcheck was: 0x{code:08x} "
            f"({args}). A dump was saved in: {dump}. Report Id: {report_id}.")


# Kernel-Power 41 after an unclean reboot (learn.microsoft.com troubleshoot/windows-
# client/performance/event-id-41-restart); service install 7045 (Service Control
# Manager). Texts illustrative.
KERNEL_POWER_41 = ("The system has rebooted without cleanly shutting down first. This error "
                   "could be caused if the system stopped responding, crashed, or lost power "
                   "unexpectedly.")


def service_installed_message(name: str, path: str) -> str:
    """Sample output rendered by the Windows guest test double."""
    return (f"A service was installed in the system.\r\n\r\nService Name:  {name}\r\n"
            f"Service File Name:  {path}\r\nService Type:  kernel mode driver\r\n"
            "Service Start Type:  demand start\r\nService Account:  ")


# ---- cmd.exe -------------------------------------------------------------------
# An OpenSSH session whose DefaultShell is unset runs cmd.exe (learn.microsoft.com
# windows-server/administration/openssh/openssh-server-configuration). For a name it
# cannot find, cmd.exe prints MSG_DIR_BAD_COMMAND_OR_FILE and exits 9009 (the message
# and number as Microsoft's Error Lookup tool lists them for cmdmsg.h; quoted in
# stackoverflow.com/questions/23091906).
CMD_NOT_FOUND_EXIT = 9009


def cmd_not_recognized(name: str) -> str:
    """Sample output rendered by the Windows guest test double."""
    return lines(f"'{name}' is not recognized as an internal or external command,",
                 "operable program or batch file.")


# ---- .NET enums ------------------------------------------------------------------
# System.ServiceProcess.ServiceStartMode (learn.microsoft.com dotnet/api/
# system.serviceprocess.servicestartmode): Automatic 2, Manual 3, Disabled 4.
SERVICE_START_MODES = {"Automatic": 2, "Manual": 3, "Disabled": 4}


@dataclass(frozen=True)
class PsEnum:
    """An enum value in a PowerShell pipeline (test double value): shown by name, compared
    by name or number, and written by Windows PowerShell 5.1's ConvertTo-Json as its number
    (5.1 has no -EnumsAsStrings; PowerShell 7 added it, about ConvertTo-Json)."""

    name: str
    value: int


# ---- PowerShell 5.1 ------------------------------------------------------------
@dataclass(frozen=True)
class PsDate:
    """A .NET DateTime as Windows PowerShell 5.1 serialises it (test double value)."""

    when: dt.datetime

    @property
    def epoch_ms(self) -> int:
        return int(self.when.timestamp() * 1000)


# Windows PowerShell 5.1 ConvertTo-Json escapes < > & ' as \u003c \u003e \u0026 \u0027
# (JavaScriptSerializer HTML escaping; PowerShell/PowerShell#7693 shows 5.x output
# "\u0027def\u0027", mkht/pspm#52 lists the four characters) and writes DateTime as
# "\/Date(<ms since epoch>)\/". -Compress gives one line; otherwise 4-space indents
# with two spaces after each colon.
_PS51_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "'": "\\u0027"}


def _json_string(text: str) -> str:
    """Sample output rendered by the Windows guest test double."""
    out = json.dumps(text)
    for char, escaped in _PS51_ESCAPES.items():
        out = out.replace(char, escaped)
    return out


def _json_scalar(value: object) -> str:
    """Sample output rendered by the Windows guest test double."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, PsDate):
        return f'"\\/Date({value.epoch_ms})\\/"'
    if isinstance(value, PsEnum):
        return str(value.value)
    if isinstance(value, str):
        return _json_string(value)
    raise AssertionError(f"test double: no PowerShell 5.1 JSON form for {value!r}")


def ps51_json(value: object, *, compress: bool, indent: int = 0) -> str:
    """``ConvertTo-Json`` of Windows PowerShell 5.1 for dicts, lists and scalars."""
    pad, inner = " " * indent, " " * (indent + 4)
    if isinstance(value, dict):
        parts = [f"{_json_string(str(k))}:{'' if compress else '  '}"
                 f"{ps51_json(v, compress=compress, indent=indent + 4)}"
                 for k, v in value.items()]
        if compress:
            return "{" + ",".join(parts) + "}"
        return "{\r\n" + ",\r\n".join(inner + p for p in parts) + "\r\n" + pad + "}"
    if isinstance(value, list | tuple):
        items = [ps51_json(v, compress=compress, indent=indent + 4) for v in value]
        if compress:
            return "[" + ",".join(items) + "]"
        return "[\r\n" + ",\r\n".join(inner + i for i in items) + "\r\n" + pad + "]"
    return _json_scalar(value)


def ps_error(cmdlet: str, message: str, category: str, error_id: str) -> str:
    """A non-terminating error record as powershell.exe -Command writes it to stderr
    (about_Error_Handling / the ErrorRecord view of Windows PowerShell 5.1; the
    "At line:1 char:1" position lines are left out)."""
    return lines(f"{cmdlet} : {message}",
                 f"    + CategoryInfo          : {category}",
                 f"    + FullyQualifiedErrorId : {error_id}", "")


def not_recognized(name: str) -> str:
    """CommandNotFoundException text (about_Command_Precedence)."""
    return ps_error(name, f"The term '{name}' is not recognized as the name of a cmdlet, "
                    "function, script file, or operable program. Check the spelling of the "
                    "name, or if a path was included, verify that the path is correct and "
                    "try again.", f"ObjectNotFound: ({name}:String) [], "
                    "CommandNotFoundException", "CommandNotFoundException")


def ps_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """PowerShell's Format-Table view as used for Get-NetAdapterBinding (column layout
    from windows-notes B2; widths follow the longest cell)."""
    def cell(v: object) -> str:
        return str(v) if not isinstance(v, bool) else ("True" if v else "False")

    widths = [max([len(c)] + [len(cell(r[i])) for r in rows]) for i, c in enumerate(columns)]
    fmt = " ".join(f"{{:<{w}}}" for w in widths)
    body = [fmt.format(*[cell(v) for v in row]).rstrip() for row in rows]
    return lines("", fmt.format(*columns).rstrip(),
                 fmt.format(*["-" * len(c) for c in columns]).rstrip(), *body, "", "")


# ---- crash dumps -----------------------------------------------------------------
# DUMP_HEADER64 (the first 0x2000 bytes of a 64-bit MEMORY.DMP and of kernel
# minidumps): "PAGE" at 0x0, "DU64" at 0x4, MajorVersion 0x8, MinorVersion 0xC,
# DirectoryTableBase 0x10, PfnDataBase 0x18, PsLoadedModuleList 0x20,
# PsActiveProcessHead 0x28, MachineImageType 0x30, NumberProcessors 0x34,
# BugCheckCode (ULONG) 0x38, BugCheckParameter1..4 (ULONG64) 0x40/0x48/0x50/0x58,
# DumpType 0xF98, SystemTime 0xFA8. Layout as published in QEMU's
# include/qemu/win_dump_defs.h (WinDumpHeader64, used by dump-guest-memory -w) and
# volatility's crash64 profile.
DUMP_HEADER64_SIZE = 0x2000
DUMP_TYPE_FULL = 1  # complete memory dump
DUMP_TYPE_TRIAGE = 4  # kernel minidump
MACHINE_AMD64 = 0x8664


def dump_header64(code: int, params: Sequence[int], *, dump_type: int,
                  when: dt.datetime, processors: int = 2) -> bytes:
    """A DUMP_HEADER64 with ``code`` and its four parameters (written by the test double)."""
    if len(params) != 4:
        raise AssertionError("test double: a bugcheck has exactly four parameters")
    header = bytearray(b"PAGE" * (DUMP_HEADER64_SIZE // 4))  # unused fields read "PAGE"
    struct.pack_into("<4s4sII", header, 0x0, b"PAGE", b"DU64", 0xF, 20348)  # build 20348
    struct.pack_into("<QQQQ", header, 0x10, 0x1AD000, 0xFFFFFA8000000000,
                     0xFFFFF8005A22A2D0, 0xFFFFF8005A21F4C0)
    struct.pack_into("<II", header, 0x30, MACHINE_AMD64, processors)
    struct.pack_into("<II4Q", header, 0x38, code, 0, *params)
    # FILETIME: 100 ns ticks since 1601-01-01
    filetime = int((when.timestamp() + 11644473600) * 10_000_000)
    struct.pack_into("<IIQQ", header, 0xF98, dump_type, 0, DUMP_HEADER64_SIZE, filetime)
    return bytes(header)


__all__ = [
    "CRLF",
    "DUMP_HEADER64_SIZE",
    "DriverPackage",
    "PsDate",
    "PsEnum",
    "bcdedit_current",
    "bugcheck_message",
    "cmd_not_recognized",
    "dump_header64",
    "lines",
    "ps51_json",
    "ps_error",
    "ps_table",
    "sc_failure",
    "sc_status_block",
    "sc_success",
]
