"""Driver manifests: ``drivers/<name>/driver.toml``.

A manifest tells the lab how to deploy one driver under test, where its
journal is, how to unbind it from an adapter and which fault knobs it has.
The ``[linux]`` table describes the Linux twin (a kernel module); the
``[windows]`` table belongs to the Windows side and is kept as read, untyped,
for that code to interpret.

Knob names are the lab's vocabulary (the scenario suite asks for
``corrupt_echo``, not for a module parameter); each manifest maps them to its
own module parameter and the value that turns the fault on.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from lab.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
DRIVERS_DIR = REPO_ROOT / "drivers"
MANIFEST_NAME = "driver.toml"

#: Fault knobs the scenario suite knows, and what each one means.
KNOWN_KNOBS: Mapping[str, str] = MappingProxyType({
    "leak_adapter_ref": "keep the adapter reference on unregister (unplug hangs)",
    "skip_deregister": "skip a deregistration at unload",
    "corrupt_echo": "corrupt one echoed byte every N KiB",
    "block_unload": "block forever in unload",
    "crash_on_unbind": "NULL dereference on unbind",
    "teardown_on_link_down": "unbind the adapter on a link down (media disconnect)",
    "no_rebind_after_resume": "release the bindings at suspend, never bind again after resume",
    "config_after_register": "apply the configuration only after registering (adapters present "
                             "at load, at boot every NIC, ignore it)",
})

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Module parameter values end up on a guest command line (quoted there too):
# only characters that never need quoting.
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.,:/+-]+$")
_TOP_KEYS = frozenset({"name", "description", "linux", "windows"})
_LINUX_KEYS = frozenset({"module", "file", "params", "journal", "control",
                         "unload_deadline_s", "knobs", "skip_macs_param"})
_KNOB_KEYS = frozenset({"param", "on", "fault"})


@dataclass(frozen=True)
class Knob:
    """One fault knob of a Linux twin."""

    name: str  #: the lab's knob name (a key of KNOWN_KNOBS)
    param: str  #: the module parameter that carries it
    on: str  #: the parameter value that turns the fault on
    fault: str  #: what the driver then does wrong, in one line


@dataclass(frozen=True)
class LinuxTwin:
    """The ``[linux]`` table: the driver's Linux kernel-module twin."""

    module: str  #: module name as lsmod/rmmod know it
    file: Path  #: the built .ko on the host
    params: tuple[tuple[str, str], ...]  #: insmod parameters for every load
    journal: PurePosixPath  #: live journal inside the guest
    control: PurePosixPath | None  #: bind/unbind control file, if any
    unload_deadline_s: float  #: how long rmmod may take once clients are closed
    knobs: tuple[Knob, ...]
    #: a mutant of this twin to deploy instead of the twin itself (the self-test's
    #: ``--lab-mutant``; see lab/selftest), or None for the real twin
    variant: str | None = None
    #: the module parameter taking a comma list of MACs the twin must never bind; the
    #: lab passes the management NIC's, so a broken binding cannot cut it off the guest
    skip_macs_param: str | None = None

    def knob(self, name: str) -> Knob:
        for knob in self.knobs:
            if knob.name == name:
                return knob
        have = ", ".join(k.name for k in self.knobs) or "none"
        raise KeyError(f"{self.module} has no fault knob {name!r} (it has: {have})")

    def load_params(self, knobs: Sequence[str] = (),
                    skip_macs: Sequence[str] = ()) -> tuple[tuple[str, str], ...]:
        """Module parameters for one load: the manifest's, plus each knob's ``param=on``,
        plus ``skip_macs`` (lower-case, comma-joined) when the twin takes them."""
        params = dict(self.params)
        for name in knobs:
            knob = self.knob(name)
            params[knob.param] = knob.on
        if skip_macs and self.skip_macs_param is not None:
            params[self.skip_macs_param] = ",".join(m.lower() for m in skip_macs)
        return tuple(params.items())


@dataclass(frozen=True)
class DriverManifest:
    """One ``drivers/<name>/driver.toml``."""

    name: str
    description: str
    path: Path
    linux: LinuxTwin | None
    #: the raw ``[windows]`` table, interpreted by the Windows side
    windows: Mapping[str, object] | None = field(default=None, compare=False, hash=False)
    #: where relative build-output paths (``file = "var/..."``) are taken from
    root: Path = field(default=REPO_ROOT, compare=False)

    def with_variant(self, mutant: str) -> DriverManifest:
        """This manifest, deploying mutant ``mutant`` of the Linux twin instead."""
        if self.linux is None:
            raise ConfigError(str(self.path), "linux", f"{self.name} has no Linux twin to mutate",
                              "mutants exist for drivers with a [linux] table")
        return replace(self, linux=replace(self.linux, variant=mutant))


def _table(path: Path, key: str, value: object) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise ConfigError(str(path), key, "must be a table", f"write it as [{key}]")
    return value


def _unknown(path: Path, key: str, table: Mapping[str, object], allowed: frozenset[str]) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ConfigError(
            str(path), key, f"unknown keys: {', '.join(extra)}",
            f"allowed keys are: {', '.join(sorted(allowed))}",
        )


def _string(path: Path, key: str, value: object, *, pattern: re.Pattern[str] | None = None
            ) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(str(path), key, "must be a non-empty string", f'set {key} = "..."')
    if pattern is not None and not pattern.match(value):
        raise ConfigError(str(path), key, f"{value!r} has characters the lab cannot pass on",
                          f"use only characters matching {pattern.pattern}")
    return value


def _param_value(path: Path, key: str, value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(value)
    return _string(path, key, value, pattern=_SAFE_VALUE)


def _guest_path(path: Path, key: str, value: object) -> PurePosixPath:
    text = _string(path, key, value, pattern=_SAFE_VALUE)
    if not text.startswith("/"):
        raise ConfigError(str(path), key, f"{text!r} is not an absolute guest path",
                          "give the full path inside the guest, e.g. /proc/kecho/journal")
    return PurePosixPath(text)


def _knobs(path: Path, raw: object) -> tuple[Knob, ...]:
    table = _table(path, "linux.knobs", raw)
    knobs = []
    for name, spec in table.items():
        key = f"linux.knobs.{name}"
        if name not in KNOWN_KNOBS:
            raise ConfigError(str(path), key, f"unknown fault knob {name!r}",
                              f"use one of: {', '.join(KNOWN_KNOBS)}")
        body = _table(path, key, spec)
        _unknown(path, key, body, _KNOB_KEYS)
        if "param" not in body or "on" not in body:
            raise ConfigError(str(path), key, "needs both 'param' and 'on'",
                              'e.g. param = "block_unload" and on = 1')
        fault = body.get("fault", KNOWN_KNOBS[name])
        knobs.append(Knob(
            name=name,
            param=_string(path, f"{key}.param", body["param"], pattern=_IDENT),
            on=_param_value(path, f"{key}.on", body["on"]),
            fault=_string(path, f"{key}.fault", fault),
        ))
    return tuple(knobs)


def _linux(path: Path, raw: object, root: Path) -> LinuxTwin:
    table = _table(path, "linux", raw)
    _unknown(path, "linux", table, _LINUX_KEYS)
    for required in ("module", "file", "journal"):
        if required not in table:
            raise ConfigError(str(path), f"linux.{required}", "is missing",
                              f"add {required} = ... to the [linux] table")
    params_raw = _table(path, "linux.params", table.get("params", {}))
    params = tuple(
        (_string(path, "linux.params", k, pattern=_IDENT),
         _param_value(path, f"linux.params.{k}", v))
        for k, v in params_raw.items()
    )
    deadline = table.get("unload_deadline_s", 30)
    if not isinstance(deadline, int | float) or isinstance(deadline, bool) or deadline <= 0:
        raise ConfigError(str(path), "linux.unload_deadline_s", "must be a positive number",
                          "e.g. unload_deadline_s = 30")
    control = table.get("control")
    file = Path(_string(path, "linux.file", table["file"]))
    return LinuxTwin(
        module=_string(path, "linux.module", table["module"], pattern=_IDENT),
        file=file if file.is_absolute() else root / file,
        params=params,
        journal=_guest_path(path, "linux.journal", table["journal"]),
        control=None if control is None else _guest_path(path, "linux.control", control),
        unload_deadline_s=float(deadline),
        knobs=_knobs(path, table.get("knobs", {})),
        skip_macs_param=None if "skip_macs_param" not in table else _string(
            path, "linux.skip_macs_param", table["skip_macs_param"], pattern=_IDENT),
    )


def load_manifest(path: Path, *, root: Path = REPO_ROOT) -> DriverManifest:
    """Load one manifest; relative ``file`` paths are taken from ``root``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), "-", f"cannot read the manifest: {exc}",
                          "check the driver directory has a driver.toml") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "-", f"not valid TOML: {exc}",
                          "fix the syntax at the position given") from exc
    _unknown(path, "-", data, _TOP_KEYS)
    name = data.get("name", path.parent.name)
    name = _string(path, "name", name, pattern=_IDENT)
    if name != path.parent.name:
        raise ConfigError(str(path), "name", f"{name!r} differs from the directory name",
                          f'set name = "{path.parent.name}" or move the manifest')
    windows = data.get("windows")
    return DriverManifest(
        root=root,
        name=name,
        description=_string(path, "description", data.get("description", name)),
        path=path,
        linux=_linux(path, data["linux"], root) if "linux" in data else None,
        windows=MappingProxyType(dict(_table(path, "windows", windows)))
        if windows is not None else None,
    )


def load_manifests(drivers_dir: Path = DRIVERS_DIR, *, root: Path = REPO_ROOT
                   ) -> dict[str, DriverManifest]:
    """Every ``<drivers_dir>/*/driver.toml``, by driver name."""
    manifests = [load_manifest(p, root=root)
                 for p in sorted(drivers_dir.glob(f"*/{MANIFEST_NAME}"))]
    return {m.name: m for m in manifests}


__all__ = [
    "DRIVERS_DIR",
    "KNOWN_KNOBS",
    "DriverManifest",
    "Knob",
    "LinuxTwin",
    "load_manifest",
    "load_manifests",
]
