"""The make targets of the tree: the Makefile and every ``*.mk`` fragment it includes.

Only rules whose name is a plain word count (no file targets, pattern rules or
special targets such as ``.PHONY``). Shared by test_make_help and test_nightly_workflow.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULE = re.compile(r"^([A-Za-z][\w-]*(?:[ \t]+[A-Za-z][\w-]*)*)[ \t]*::?(?!=)")


def make_files() -> list[Path]:
    return [ROOT / "Makefile", *sorted(ROOT.glob("*/*.mk"))]


def targets() -> set[str]:
    names: set[str] = set()
    for path in make_files():
        for line in path.read_text().splitlines():
            match = RULE.match(line)
            if match:
                names.update(match.group(1).split())
    return names
