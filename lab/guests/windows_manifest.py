"""The ``[windows]`` table of a driver manifest, typed (``drivers/<name>/driver.toml``).

``lab.drivers`` keeps that table as read; this module validates it once into a
frozen :class:`WindowsDriverSpec`. Names that end up in guest commands
(service, component ID, registry value names) must be plain identifiers; paths
and registry keys are always sent as PowerShell single-quoted literals.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lab.drivers import KNOWN_KNOBS, DriverManifest
from lab.errors import ConfigError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
#: Where the lab copies a driver's files in the guest (command contract: copy files).
GUEST_DIR = "C:\\lab\\drivers"
#: The same directory as an SFTP path.
GUEST_DIR_SFTP = "C:/lab/drivers"


@dataclass(frozen=True)
class WindowsKnob:
    """One fault knob: a REG_DWORD under the service's Parameters key."""

    name: str  #: the lab's knob name (a key of KNOWN_KNOBS)
    value: str  #: the registry value name (FaultBlockUnload)
    on: int  #: the DWORD that turns it on
    fault: str


@dataclass(frozen=True)
class WindowsDriverSpec:
    """How one driver is deployed into a Windows guest."""

    name: str  #: manifest name
    service: str  #: the kernel service name (sc.exe, journal driver field)
    sys_file: Path  #: the built, test-signed .sys on the host
    inf: Path | None  #: protocol drivers: the INF (netcfg install)
    catalog: Path | None
    component_id: str | None  #: protocol drivers: the INetCfg component ID (DL_labtdi)
    tool: Path  #: labctl.exe on the host
    ca_cert: Path  #: the lab test CA (DER) the image must trust
    params_key: str  #: HKLM\SYSTEM\CurrentControlSet\Services\<svc>\Parameters
    params: tuple[tuple[str, int], ...]  #: REG_DWORD values set before every load
    journal_file: str  #: Win32 path of the journal copy that survives the unload
    unload_deadline_s: float
    knobs: tuple[WindowsKnob, ...]

    @property
    def is_protocol(self) -> bool:
        return self.inf is not None

    def knob(self, name: str) -> WindowsKnob:
        for knob in self.knobs:
            if knob.name == name:
                return knob
        have = ", ".join(k.name for k in self.knobs) or "none"
        raise KeyError(f"{self.service} has no fault knob {name!r} (it has: {have})")

    def guest_path(self, local: Path) -> str:
        return f"{GUEST_DIR}\\{local.name}"

    def files(self) -> tuple[Path, ...]:
        """Every file the guest needs (driver, INF + catalog, labctl.exe)."""
        return tuple(p for p in (self.sys_file, self.inf, self.catalog, self.tool)
                     if p is not None)


def _fail(manifest: DriverManifest, key: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(str(manifest.path), f"windows.{key}", problem, fix)


def _text(manifest: DriverManifest, table: Mapping[str, object], key: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise _fail(manifest, key, "must be a non-empty string", f'set {key} = "..."')
    return value


def _ident(manifest: DriverManifest, key: str, value: str) -> str:
    if not _IDENT.match(value):
        raise _fail(manifest, key, f"{value!r} is not a plain name",
                    "use letters, digits and '_' only")
    return value


def _file(root: Path, text: str) -> Path:
    path = Path(text)
    return path if path.is_absolute() else root / path


def _dword(manifest: DriverManifest, key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
        raise _fail(manifest, key, f"{value!r} is not a DWORD", "use a whole number 0..2^32-1")
    return value


def _knobs(manifest: DriverManifest, raw: object) -> tuple[WindowsKnob, ...]:
    if not isinstance(raw, Mapping):
        raise _fail(manifest, "knobs", "must be a table", "write [windows.knobs.<name>]")
    knobs = []
    for name, body in raw.items():
        if name not in KNOWN_KNOBS or not isinstance(body, Mapping):
            raise _fail(manifest, f"knobs.{name}", "is not a known knob table",
                        f"use one of: {', '.join(KNOWN_KNOBS)}")
        value = _ident(manifest, f"knobs.{name}.value", _text(manifest, body, "value"))
        knobs.append(WindowsKnob(name=name, value=value,
                                 on=_dword(manifest, f"knobs.{name}.on", body.get("on")),
                                 fault=str(body.get("fault", KNOWN_KNOBS[name]))))
    return tuple(knobs)


def _component_id(manifest: DriverManifest, table: Mapping[str, object]) -> str | None:
    """``-i DL_labtdi`` of the manifest's install line (netcfg's component ID)."""
    if "inf" not in table:
        return None
    words = _text(manifest, table, "install").split()
    if "-i" not in words or words.index("-i") + 1 >= len(words):
        raise _fail(manifest, "install", "names no component ID (-i <ID>)",
                    "write it as 'netcfg -l <x>.inf -c p -i <ComponentID>'")
    return _ident(manifest, "install", words[words.index("-i") + 1])


def windows_spec(manifest: DriverManifest, root: Path | None = None) -> WindowsDriverSpec:
    """Validate the manifest's ``[windows]`` table (ConfigError naming the key); relative
    paths are taken from ``root`` (default: the root the manifest was loaded with)."""
    root = manifest.root if root is None else root
    table = manifest.windows
    if table is None:
        raise ConfigError(str(manifest.path), "windows", f"driver {manifest.name} has no "
                          "[windows] table", "add the Windows deployment table to the manifest")
    params_raw = table.get("params", {})
    if not isinstance(params_raw, Mapping):
        raise _fail(manifest, "params", "must be a table", "e.g. params = { Port = 7007 }")
    deadline = table.get("unload_deadline_s", 30)
    if isinstance(deadline, bool) or not isinstance(deadline, int | float) or deadline <= 0:
        raise _fail(manifest, "unload_deadline_s", "must be a positive number", "e.g. 30")
    inf = table.get("inf")
    catalog = table.get("catalog")
    return WindowsDriverSpec(
        name=manifest.name,
        service=_ident(manifest, "service", _text(manifest, table, "service")),
        sys_file=_file(root, _text(manifest, table, "file")),
        inf=_file(root, _text(manifest, table, "inf")) if inf is not None else None,
        catalog=_file(root, _text(manifest, table, "catalog")) if catalog is not None else None,
        component_id=_component_id(manifest, table),
        tool=_file(root, _text(manifest, table, "tool")),
        ca_cert=_file(root, _text(manifest, table, "ca_cert")),
        params_key=_text(manifest, table, "params_key"),
        params=tuple((_ident(manifest, f"params.{k}", k), _dword(manifest, f"params.{k}", v))
                     for k, v in params_raw.items()),
        journal_file=_text(manifest, table, "journal_file"),
        unload_deadline_s=float(deadline),
        knobs=_knobs(manifest, table.get("knobs", {})),
    )


__all__ = ["GUEST_DIR", "GUEST_DIR_SFTP", "WindowsDriverSpec", "WindowsKnob", "windows_spec"]
