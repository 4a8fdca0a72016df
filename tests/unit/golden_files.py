"""Golden files of the pure XML functions (tests/unit/golden/).

Regenerate with `UPDATE_GOLDEN=1 pytest tests/unit` and review the diff.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"


def check_golden(name: str, text: str) -> None:
    """``text`` must equal golden file ``name`` (rewritten first with UPDATE_GOLDEN=1)."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
    assert text == path.read_text()


def check_schema(text: str, schema: str, tmp_path: Path, name: str = "doc.xml") -> None:
    """``text`` must be valid against libvirt's RNG ``schema`` (virt-xml-validate)."""
    doc = tmp_path / name
    doc.write_text(text)
    res = subprocess.run(["virt-xml-validate", str(doc), schema], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr + res.stdout
