"""Mutants of the Linux twins: one patch file each, with a header that says what it breaks.

A mutant file ``drivers/<driver>/linux/mutants/<name>.patch`` starts with header lines
(``patch`` ignores everything before the first ``---``)::

    Mutant: leak-ref-on-admin-unbind
    Driver: labtdi
    Breaks: an admin unbind keeps the adapter reference
    Expect: driver hung
    Scenarios: test_unbind_rebind_unplug
    Quick: yes                      (optional: part of the CI subset)

followed by a unified diff relative to ``drivers/<driver>/linux/`` (``patch -p1``).
``Expect: pass`` marks a negative control: healthy but slow, it must pass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lab.drivers import DRIVERS_DIR, DriverManifest
from lab.errors import ConfigError, LabFailure
from lab.guests.base import GuestKind

VERDICTS = ("driver failed", "driver hung", "driver crashed", "pass")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_TEST = re.compile(r"^test_[A-Za-z0-9_]+$")
_REQUIRED = ("Mutant", "Driver", "Breaks", "Expect", "Scenarios")
_OPTIONAL = ("Quick",)


@dataclass(frozen=True)
class Mutant:
    """One mutant (or negative control) of a twin."""

    name: str
    driver: str  #: manifest name of the mutated driver (labtdi, wskecho)
    breaks: str  #: the rule it breaks, in one line
    expect: str  #: the verdict a scenario must give (``pass`` for a control)
    scenarios: tuple[str, ...]  #: scenario test functions that must catch it
    quick: bool  #: part of the CI subset
    patch: Path

    @property
    def control(self) -> bool:
        return self.expect == "pass"


def _bad(path: Path, key: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(str(path), key, problem, fix)


def _header(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(path, "Mutant", f"cannot read the mutant: {exc}",
                   "restore it from the repository") from exc
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("--- "):
            break
        key, sep, value = line.partition(":")
        if sep and key.strip() in _REQUIRED + _OPTIONAL:
            fields[key.strip()] = value.strip()
    if "\n--- a/" not in text or "\n+++ b/" not in text:
        raise _bad(path, "diff", "no unified diff after the header",
                   "append `diff -u a/<file> b/<file>` output relative to the twin's directory")
    return fields


def parse_mutant(path: Path) -> Mutant:
    """Read one mutant's header (ConfigError naming the file, the key and the fix)."""
    fields = _header(path)
    for key in _REQUIRED:
        if not fields.get(key):
            raise _bad(path, key, f"header line `{key}:` is missing or empty",
                       f"add `{key}: ...` before the diff (see lab/selftest/mutants.py)")
    name, expect = fields["Mutant"], fields["Expect"]
    if not _NAME.match(name) or name != path.stem:
        raise _bad(path, "Mutant", f"name {name!r} is not the file's stem {path.stem!r}",
                   "use lowercase-with-dashes and name the file <name>.patch")
    if expect not in VERDICTS:
        raise _bad(path, "Expect", f"{expect!r} is not a verdict",
                   f"use one of: {', '.join(VERDICTS)}")
    scenarios = tuple(fields["Scenarios"].split())
    odd = [s for s in scenarios if not _TEST.match(s)]
    if odd:
        raise _bad(path, "Scenarios", f"{odd[0]!r} is not a test function name",
                   "list test_* functions of tests/scenarios, separated by spaces")
    driver = fields["Driver"]
    if path.parent.parent.parent.name != driver:
        raise _bad(path, "Driver", f"driver {driver!r} but the file is under "
                   f"drivers/{path.parent.parent.parent.name}/",
                   "keep the mutant beside the twin it mutates")
    quick = fields.get("Quick", "no").lower()
    if quick not in ("yes", "no"):
        raise _bad(path, "Quick", f"{quick!r} is neither yes nor no",
                   "write `Quick: yes` or drop the line")
    return Mutant(name, driver, fields["Breaks"], expect, scenarios, quick == "yes", path)


def load_mutants(root: Path = DRIVERS_DIR) -> tuple[Mutant, ...]:
    """Every mutant under ``root/*/linux/mutants``, sorted by driver and name."""
    mutants = [parse_mutant(p) for p in sorted(root.glob("*/linux/mutants/*.patch"))]
    seen: dict[str, Path] = {}
    for m in mutants:
        if m.name in seen:
            raise _bad(m.patch, "Mutant", f"name {m.name!r} is also used by {seen[m.name]}",
                       "give every mutant a unique name")
        seen[m.name] = m.patch
    return tuple(sorted(mutants, key=lambda m: (m.driver, m.name)))


def find_mutant(name: str, root: Path = DRIVERS_DIR) -> Mutant:
    for mutant in load_mutants(root):
        if mutant.name == name:
            return mutant
    have = ", ".join(m.name for m in load_mutants(root)) or "none"
    raise ConfigError("--lab-mutant", "mutant", f"no mutant named {name!r}",
                      f"pick one of: {have}")


def with_mutant(manifests: Mapping[str, DriverManifest], mutant: Mutant,
                kind: GuestKind) -> dict[str, DriverManifest]:
    """The manifests with ``mutant`` deployed in place of its twin."""
    if not kind.deploys_mutants:
        raise LabFailure(f"mutant {mutant.name} cannot run on a {kind.name} lab: mutants are "
                         "patches of the Linux twins",
                         hint="run the self-test against a linux-micro lab (./lab.toml)")
    if mutant.driver not in manifests:
        raise ConfigError(str(mutant.patch), "Driver", f"no driver manifest {mutant.driver!r}",
                          "name a driver with a drivers/<name>/driver.toml")
    out = dict(manifests)
    out[mutant.driver] = manifests[mutant.driver].with_variant(mutant.name)
    return out
