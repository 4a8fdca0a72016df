"""Pure parsers of what Windows prints, and the quoting of what the lab sends it.

Command forms follow the Windows command contract (every string runs as
``powershell.exe -Command <string>``; native programs end with
``; exit $LASTEXITCODE``; interpolated text is a single-quoted literal). Output
formats are Microsoft's: ``sc.exe`` query blocks and ``[SC] <Op> FAILED <n>:``
lines, ``pnputil /enum-drivers`` blocks, ``bcdedit /enum`` element lines,
``verifier /querysettings``, and ``ConvertTo-Json -Compress`` of the selected
properties (one object, an array, or nothing at all when the pipeline is empty).

A malformed output raises :class:`WindowsOutputError` (a LabFailure: the lab
could not read what the guest said).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from lab.errors import LabFailure
from lab.guests.base import AdapterInfo


class WindowsOutputError(LabFailure):
    """A Windows command printed something the lab cannot parse."""


# ---- quoting ---------------------------------------------------------------


def ps_quote(text: str) -> str:
    """A PowerShell single-quoted literal: no expansion inside, ``'`` doubled."""
    return "'" + text.replace("'", "''") + "'"


def native(command: str) -> str:
    """A native-program command whose exit code becomes PowerShell's exit status."""
    return f"{command}; exit $LASTEXITCODE"


_MAC_WIN = re.compile(r"^[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){5}$")
_MAC_LAB = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$")


def mac_from_windows(text: str) -> str:
    """``52-54-00-AB-CD-01`` -> ``52:54:00:ab:cd:01``."""
    if not _MAC_WIN.match(text):
        raise WindowsOutputError(f"{text!r} is not a Windows MAC address (XX-XX-XX-XX-XX-XX)")
    return text.replace("-", ":").lower()


def mac_to_windows(mac: str) -> str:
    """``52:54:00:ab:cd:01`` -> ``52-54-00-AB-CD-01`` (Get-NetAdapter's MacAddress)."""
    if not _MAC_LAB.match(mac.lower()):
        raise ValueError(f"{mac!r} is not a MAC address")
    return mac.replace(":", "-").upper()


# ---- JSON from ConvertTo-Json ----------------------------------------------


def json_rows(text: str, what: str) -> list[Mapping[str, object]]:
    """ConvertTo-Json output as a list of objects (empty output = no rows)."""
    body = text.strip().lstrip("\ufeff")
    if not body:
        return []
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise WindowsOutputError(f"{what}: not JSON ({exc}): {body[:200]!r}") from None
    rows = data if isinstance(data, list) else [data]
    if not all(isinstance(r, dict) for r in rows):
        raise WindowsOutputError(f"{what}: expected JSON objects, got {body[:200]!r}")
    return rows


def _int(row: Mapping[str, object], key: str, what: str) -> int:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise WindowsOutputError(f"{what}: {key} is {value!r}, not an integer")
    return value


def _str(row: Mapping[str, object], key: str, what: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise WindowsOutputError(f"{what}: {key} is {value!r}, not a string")
    return value


def parse_adapters(adapters_json: str, addresses_json: str) -> tuple[AdapterInfo, ...]:
    """Get-NetAdapter rows joined with Get-NetIPAddress rows on ifIndex."""
    by_index: dict[int, list[str]] = {}
    for row in json_rows(addresses_json, "Get-NetIPAddress"):
        index = _int(row, "InterfaceIndex", "Get-NetIPAddress")
        ip = _str(row, "IPAddress", "Get-NetIPAddress")
        prefix = _int(row, "PrefixLength", "Get-NetIPAddress")
        by_index.setdefault(index, []).append(f"{ip}/{prefix}")
    adapters = []
    for row in json_rows(adapters_json, "Get-NetAdapter"):
        index = _int(row, "ifIndex", "Get-NetAdapter")
        device = row.get("PnPDeviceID")
        adapters.append(AdapterInfo(
            mac=mac_from_windows(_str(row, "MacAddress", "Get-NetAdapter")),
            name=_str(row, "Name", "Get-NetAdapter"),
            index=index,
            addresses=tuple(by_index.get(index, ())),
            device_id=device if isinstance(device, str) and device else None,
        ))
    return tuple(adapters)


def pnp_present(text: str) -> bool | None:
    """Get-PnpDevice ``Present`` of one instance (None when the device is unknown)."""
    rows = json_rows(text, "Get-PnpDevice")
    if not rows:
        return None
    value = rows[0].get("Present")
    if not isinstance(value, bool):
        raise WindowsOutputError(f"Get-PnpDevice: Present is {value!r}, not a boolean")
    return value


def parse_bindings(text: str) -> dict[str, bool]:
    """Get-NetAdapterBinding rows: adapter name -> Enabled."""
    out: dict[str, bool] = {}
    for row in json_rows(text, "Get-NetAdapterBinding"):
        enabled = row.get("Enabled")
        if not isinstance(enabled, bool):
            raise WindowsOutputError(f"Get-NetAdapterBinding: Enabled is {enabled!r}")
        out[_str(row, "Name", "Get-NetAdapterBinding")] = enabled
    return out


def cert_stores(text: str) -> frozenset[str]:
    """Stores (``Root``, ``TrustedPublisher``) that hold the certificate asked for."""
    stores = set()
    for row in json_rows(text, "Get-ChildItem Cert:"):
        parent = _str(row, "PSParentPath", "Get-ChildItem Cert:")
        stores.add(parent.replace("/", "\\").rstrip("\\").rsplit("\\", 1)[-1])
    return frozenset(stores)


def parse_dump_files(text: str) -> tuple[tuple[str, int], ...]:
    """Get-ChildItem rows of crash dumps: (FullName, Length)."""
    return tuple((_str(r, "FullName", "dump list"), _int(r, "Length", "dump list"))
                 for r in json_rows(text, "dump list"))


def _when(value: object) -> str:
    """TimeCreated as Windows PowerShell 5.1 serializes it (``/Date(ms)/``) or ISO."""
    if isinstance(value, str):
        match = re.search(r"/Date\((-?\d+)", value)
        if match:
            stamp = datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)
            return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        return value
    return "?"


def format_events(text: str) -> str:
    """Get-WinEvent rows as one line each: time level provider id: message."""
    lines = []
    for row in json_rows(text, "Get-WinEvent"):
        message = str(row.get("Message") or "").replace("\r", " ").replace("\n", " ")
        lines.append(f"{_when(row.get('TimeCreated'))} {row.get('LevelDisplayName', '?')} "
                     f"{row.get('ProviderName', '?')} {row.get('Id', '?')}: {message.strip()}")
    return "\n".join(lines)


# ---- sc.exe ----------------------------------------------------------------

#: SERVICE_STATUS dwCurrentState values (winsvc.h).
SERVICE_STOPPED = 1
SERVICE_START_PENDING = 2
SERVICE_STOP_PENDING = 3
SERVICE_RUNNING = 4


@dataclass(frozen=True)
class ServiceStatus:
    """One ``sc.exe query`` block."""

    name: str
    state: int  #: SERVICE_STOPPED .. SERVICE_RUNNING
    state_name: str  #: "RUNNING", "STOP_PENDING", ...
    win32_exit_code: int
    service_exit_code: int


_SC_FIELD = re.compile(r"^\s*([A-Z_0-9]+)\s*:\s*(.*?)\s*$", re.MULTILINE)
_SC_FAILED = re.compile(r"\[SC\]\s+(\w+)\s+FAILED\s+(\d+):")


def parse_sc_query(text: str) -> ServiceStatus:
    fields = dict(_SC_FIELD.findall(text))
    state = fields.get("STATE", "").split()
    if "SERVICE_NAME" not in fields or len(state) < 2 or not state[0].isdigit():
        raise WindowsOutputError(f"sc.exe query: no SERVICE_NAME/STATE in {text[:300]!r}")

    def code(key: str) -> int:
        words = fields.get(key, "0").split()
        return int(words[0]) if words and words[0].isdigit() else 0

    return ServiceStatus(name=fields["SERVICE_NAME"], state=int(state[0]), state_name=state[1],
                         win32_exit_code=code("WIN32_EXIT_CODE"),
                         service_exit_code=code("SERVICE_EXIT_CODE"))


def parse_sc_failure(text: str) -> tuple[str, int] | None:
    """``[SC] StartService FAILED 577:`` -> ("StartService", 577)."""
    match = _SC_FAILED.search(text)
    return (match.group(1), int(match.group(2))) if match else None


# ---- pnputil, bcdedit, verifier, event 1001 --------------------------------


@dataclass(frozen=True)
class DriverPackage:
    """One block of ``pnputil /enum-drivers``."""

    published: str  #: oemNN.inf
    original: str  #: the INF's own name (labtdi.inf)
    provider: str = ""
    class_name: str = ""


_KEY_VALUE = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*:\s*(.*?)\s*$")


def parse_pnputil_drivers(text: str) -> tuple[DriverPackage, ...]:
    packages: list[DriverPackage] = []
    current: dict[str, str] = {}

    def flush() -> None:
        if "published name" in current and "original name" in current:
            packages.append(DriverPackage(current["published name"], current["original name"],
                                          current.get("provider name", ""),
                                          current.get("class name", "")))
        current.clear()

    for line in text.splitlines():
        match = _KEY_VALUE.match(line)
        if not match:
            if not line.strip():
                flush()
            continue
        key = match.group(1).lower()
        if key == "published name":
            flush()
        current[key] = match.group(2)
    flush()
    return tuple(packages)


def published_names(text: str, original: str) -> tuple[str, ...]:
    """The oemNN.inf names under which ``original`` (e.g. labtdi.inf) sits in the store."""
    return tuple(p.published for p in parse_pnputil_drivers(text)
                 if p.original.lower() == original.lower())


def testsigning_on(bcdedit_text: str) -> bool:
    """``bcdedit /enum {current}`` shows ``testsigning  Yes``."""
    return re.search(r"^\s*testsigning\s+Yes\s*$", bcdedit_text,
                     re.MULTILINE | re.IGNORECASE) is not None


def verified_drivers(text: str) -> frozenset[str]:
    """Driver names listed under ``Verified drivers:`` by ``verifier /querysettings``."""
    _, found, tail = text.partition("Verified drivers:")
    if not found:
        return frozenset()
    names = set()
    for line in tail.splitlines():
        word = line.strip()
        if word and re.match(r"^[\w.-]+\.sys$", word, re.IGNORECASE):
            names.add(word.lower())
    return frozenset(names)


@dataclass(frozen=True)
class BugcheckRecord:
    """The bug check as event 1001 (BugCheck) reports it after the reboot."""

    code: int
    parameters: tuple[int, int, int, int]
    dump_path: str | None
    message: str


_BUGCHECK = re.compile(r"(0x[0-9A-Fa-f]{1,8})\s*\(\s*(0x[0-9A-Fa-f]+)\s*,\s*(0x[0-9A-Fa-f]+)"
                       r"\s*,\s*(0x[0-9A-Fa-f]+)\s*,\s*(0x[0-9A-Fa-f]+)\s*\)")
_DUMP_SAVED = re.compile(r"([A-Za-z]:\\[^\s]*?\.(?:DMP|dmp))")


def parse_bugcheck_message(message: str) -> BugcheckRecord | None:
    """``... The bugcheck was: 0x000000e2 (0x0, 0x0, 0x0, 0x0). A dump was saved in: ...``.

    Only the numbers are read (code, then four parameters in parentheses), so a
    localized message parses the same way.
    """
    match = _BUGCHECK.search(message)
    if not match:
        return None
    code, *params = (int(g, 16) for g in match.groups())
    dump = _DUMP_SAVED.search(message)
    return BugcheckRecord(code=code, parameters=(params[0], params[1], params[2], params[3]),
                          dump_path=dump.group(1) if dump else None, message=message.strip())


def parse_bugcheck_event(text: str) -> BugcheckRecord | None:
    rows = json_rows(text, "Get-WinEvent 1001")
    if not rows:
        return None
    return parse_bugcheck_message(str(rows[0].get("Message") or ""))


__all__ = [
    "SERVICE_RUNNING",
    "SERVICE_STOPPED",
    "SERVICE_STOP_PENDING",
    "BugcheckRecord",
    "DriverPackage",
    "ServiceStatus",
    "WindowsOutputError",
    "cert_stores",
    "format_events",
    "json_rows",
    "mac_from_windows",
    "mac_to_windows",
    "native",
    "parse_adapters",
    "parse_bindings",
    "parse_bugcheck_event",
    "parse_bugcheck_message",
    "parse_dump_files",
    "parse_pnputil_drivers",
    "parse_sc_failure",
    "parse_sc_query",
    "pnp_present",
    "ps_quote",
    "published_names",
    "testsigning_on",
    "verified_drivers",
]
