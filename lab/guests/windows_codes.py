"""Windows status codes the lab decodes: Win32 errors, netcfg/SetupAPI HRESULTs, bug checks.

Pure tables and lookups, no I/O. Values are from Microsoft's documentation:

* Win32 errors: learn.microsoft.com "System Error Codes (0-499)", "(500-999)",
  "(1000-1299)" and "(1700-3999)" (winerror.h).
* netcfg results: ``NETCFG_S_REBOOT`` from netcfgx.h ("0x0004A020"), the SetupAPI
  HRESULT ``SPAPI_E_NO_DRIVER_SELECTED`` from winerror.h (0x800F0203), and the
  ``HRESULT_FROM_WIN32`` rule (0x8007xxxx) from winerror.h.
* Bug checks: learn.microsoft.com "Bug Check Code Reference"; the names also
  appear, with the same values, in ReactOS/NT ``bugcodes`` and rizin's dmp_specs.h.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: Win32 error codes the lab meets on sc.exe, reg.exe, netcfg.exe and pnputil.exe.
WIN32_ERRORS: Mapping[int, str] = MappingProxyType({
    0: "ERROR_SUCCESS",
    1: "ERROR_INVALID_FUNCTION",
    2: "ERROR_FILE_NOT_FOUND",
    3: "ERROR_PATH_NOT_FOUND",
    5: "ERROR_ACCESS_DENIED",
    31: "ERROR_GEN_FAILURE",
    87: "ERROR_INVALID_PARAMETER",
    193: "ERROR_BAD_EXE_FORMAT",
    577: "ERROR_INVALID_IMAGE_HASH",
    1052: "ERROR_INVALID_SERVICE_CONTROL",
    1053: "ERROR_SERVICE_REQUEST_TIMEOUT",
    1056: "ERROR_SERVICE_ALREADY_RUNNING",
    1058: "ERROR_SERVICE_DISABLED",
    1060: "ERROR_SERVICE_DOES_NOT_EXIST",
    1061: "ERROR_SERVICE_CANNOT_ACCEPT_CTRL",
    1062: "ERROR_SERVICE_NOT_ACTIVE",
    1072: "ERROR_SERVICE_MARKED_FOR_DELETE",
    1073: "ERROR_SERVICE_EXISTS",
    1275: "ERROR_DRIVER_BLOCKED",
    1450: "ERROR_NO_SYSTEM_RESOURCES",
    3010: "ERROR_SUCCESS_REBOOT_REQUIRED",
})

#: What each code means for the lab, in words a report can show.
WIN32_MEANINGS: Mapping[int, str] = MappingProxyType({
    2: "the driver file is not where the service points",
    5: "the lab's account is not an administrator",
    31: "DriverEntry failed (a device attached to the system is not functioning)",
    193: "the .sys is not a valid image for this Windows",
    577: "Windows cannot verify the digital signature (testsigning off or CA not trusted)",
    1052: "the driver has no Unload routine, so it cannot be stopped",
    1056: "the driver is already loaded",
    1058: "the service is disabled",
    1060: "the service is not installed",
    1062: "the driver is not loaded",
    1072: "the service is marked for deletion: reboot before reinstalling",
    1073: "the service already exists",
    1275: "Windows blocked the driver from loading (policy or memory integrity)",
})

#: Service errors that mean the lab, not the driver, is at fault on sc.exe start.
LAB_SIDE_START_ERRORS: frozenset[int] = frozenset({2, 3, 5, 577, 1056, 1058, 1060, 1072})

#: netcfg.exe results (exit codes are HRESULTs; PowerShell shows negative ones signed).
S_OK = 0
NETCFG_S_REBOOT = 0x0004A020
SPAPI_E_NO_DRIVER_SELECTED = 0x800F0203
FACILITY_WIN32_HRESULT = 0x80070000
ERROR_SERVICE_MARKED_FOR_DELETE = 1072
HRESULT_SERVICE_MARKED_FOR_DELETE = FACILITY_WIN32_HRESULT | ERROR_SERVICE_MARKED_FOR_DELETE

NETCFG_RESULTS: Mapping[int, str] = MappingProxyType({
    S_OK: "S_OK",
    NETCFG_S_REBOOT: "NETCFG_S_REBOOT",
    SPAPI_E_NO_DRIVER_SELECTED: "SPAPI_E_NO_DRIVER_SELECTED",
    HRESULT_SERVICE_MARKED_FOR_DELETE: "HRESULT_FROM_WIN32(ERROR_SERVICE_MARKED_FOR_DELETE)",
    ERROR_SERVICE_MARKED_FOR_DELETE: "ERROR_SERVICE_MARKED_FOR_DELETE",
})

#: Bug check codes a driver lab meets (Microsoft "Bug Check Code Reference").
BUGCHECK_NAMES: Mapping[int, str] = MappingProxyType({
    0x0A: "IRQL_NOT_LESS_OR_EQUAL",
    0x19: "BAD_POOL_HEADER",
    0x1A: "MEMORY_MANAGEMENT",
    0x1E: "KMODE_EXCEPTION_NOT_HANDLED",
    0x3B: "SYSTEM_SERVICE_EXCEPTION",
    0x4F: "NDIS_INTERNAL_ERROR",
    0x50: "PAGE_FAULT_IN_NONPAGED_AREA",
    0x7B: "INACCESSIBLE_BOOT_DEVICE",
    0x7C: "BUGCODE_NDIS_DRIVER",
    0x7E: "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED",
    0x7F: "UNEXPECTED_KERNEL_MODE_TRAP",
    0x80: "NMI_HARDWARE_FAILURE",
    0x8E: "KERNEL_MODE_EXCEPTION_NOT_HANDLED",
    0x9F: "DRIVER_POWER_STATE_FAILURE",
    0xC2: "BAD_POOL_CALLER",
    0xC4: "DRIVER_VERIFIER_DETECTED_VIOLATION",
    0xC5: "DRIVER_CORRUPTED_EXPOOL",
    0xC9: "DRIVER_VERIFIER_IOMANAGER_VIOLATION",
    0xCE: "DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS",
    0xD1: "DRIVER_IRQL_NOT_LESS_OR_EQUAL",
    0xD5: "DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL",
    0xD6: "DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION",
    0xE2: "MANUALLY_INITIATED_CRASH",
    0xEF: "CRITICAL_PROCESS_DIED",
    0x101: "CLOCK_WATCHDOG_TIMEOUT",
    0x124: "WHEA_UNCORRECTABLE_ERROR",
    0x133: "DPC_WATCHDOG_VIOLATION",
    0x139: "KERNEL_SECURITY_CHECK_FAILURE",
    0x1000007E: "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M",
    0x1000008E: "KERNEL_MODE_EXCEPTION_NOT_HANDLED_M",
})


def as_u32(code: int) -> int:
    """An exit code as the unsigned 32-bit value Windows meant (-2146434557 -> 0x800F0203)."""
    return code & 0xFFFFFFFF


def win32_name(code: int) -> str:
    """``1072 ERROR_SERVICE_MARKED_FOR_DELETE`` (or just the number when unknown)."""
    name = WIN32_ERRORS.get(code)
    return f"{code} {name}" if name else f"{code}"


def netcfg_name(code: int) -> str:
    """``0x800F0203 SPAPI_E_NO_DRIVER_SELECTED`` for a netcfg exit code (signed or not)."""
    value = as_u32(code)
    name = NETCFG_RESULTS.get(value)
    if name is None and value & 0xFFFF0000 == FACILITY_WIN32_HRESULT:
        name = f"HRESULT_FROM_WIN32({WIN32_ERRORS.get(value & 0xFFFF, value & 0xFFFF)})"
    return f"0x{value:08X} {name}" if name else f"0x{value:08X}"


def bugcheck_name(code: int) -> str | None:
    return BUGCHECK_NAMES.get(code)


def bugcheck_title(code: int) -> str:
    """``0x000000E2 MANUALLY_INITIATED_CRASH`` (the name only for codes listed above)."""
    name = bugcheck_name(code)
    return f"0x{code:08X} {name}" if name else f"0x{code:08X}"


__all__ = [
    "BUGCHECK_NAMES",
    "HRESULT_SERVICE_MARKED_FOR_DELETE",
    "LAB_SIDE_START_ERRORS",
    "NETCFG_RESULTS",
    "NETCFG_S_REBOOT",
    "SPAPI_E_NO_DRIVER_SELECTED",
    "WIN32_ERRORS",
    "WIN32_MEANINGS",
    "as_u32",
    "bugcheck_name",
    "bugcheck_title",
    "netcfg_name",
    "win32_name",
]
