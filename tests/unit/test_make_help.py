"""`make help` and the README's targets table list every make target, and nothing else.

The targets come from the Makefile and every ``*.mk`` fragment it includes (rules
whose name is a plain word: no file targets, no pattern rules, no special targets).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from make_targets import ROOT, targets


def help_targets() -> set[str]:
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    out = subprocess.run(["make", "--no-print-directory", "-s", "help"], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return {m.group(1) for m in re.finditer(r"^  ([a-z][\w-]*) ", out, re.MULTILINE)}


def readme_targets() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text.split("## Make targets", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in table.splitlines():
        cells = line.split("|")
        if len(cells) > 2:
            names.update(re.findall(r"`([a-z][\w-]*)`", cells[1]))
    return names


def test_the_parser_finds_targets_of_the_makefile_and_its_fragments() -> None:
    found = targets()
    assert {"lab", "test", "help", "bench", "bench-load", "drivers-linux",
            "drivers-windows", "selftest-quick"} <= found
    assert not any(name.startswith(".") or "$" in name for name in found)


def test_make_help_lists_every_target() -> None:
    listed = help_targets()
    assert sorted(targets() - listed) == [], "targets missing from `make help`"
    assert sorted(listed - targets()) == [], "`make help` lists targets that do not exist"


def test_readme_table_lists_every_target() -> None:
    listed = readme_targets()
    assert sorted(targets() - listed) == [], "targets missing from the README's targets table"
    assert sorted(listed - targets()) == [], "README's targets table names unknown targets"
