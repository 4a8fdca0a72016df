"""Every mutant of the self-test still applies to today's twins, exactly (no fuzz).

A change to a twin's source that a patch no longer fits would turn that mutant
into a "lab failed" row of `lab selftest`; this catches it in seconds. Refresh such
a patch by applying it to the old source and diffing again (`diff -u a/x.c b/x.c`).
The builds themselves run in `lab selftest` (kbuild, W=1, no warnings).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lab.selftest.mutants import Mutant, load_mutants

MUTANTS = load_mutants()


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_applies_exactly(tmp_path: Path, mutant: Mutant) -> None:
    src = tmp_path / "src"
    shutil.copytree(mutant.patch.parent.parent, src, ignore=shutil.ignore_patterns("mutants"))
    res = subprocess.run(["patch", "-p1", "--batch", "--forward", "-F0", "-i", str(mutant.patch)],
                         cwd=src, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "offset" not in res.stdout and "fuzz" not in res.stdout, res.stdout
    changed = [p.name for p in src.iterdir()
               if p.is_file() and p.read_bytes() != (mutant.patch.parent.parent / p.name)
               .read_bytes()]
    assert changed, f"{mutant.name} changes nothing"
