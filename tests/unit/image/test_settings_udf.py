"""Installer ISOs whose files live in UDF (Microsoft's oscdimg -u2 media) are listed by 7-Zip."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lab.image.settings import _has_udf, _udf_names


@pytest.mark.skipif(shutil.which("genisoimage") is None or shutil.which("7z") is None,
                    reason="needs genisoimage and 7z (make setup installs them)")
def test_udf_tree_is_listed_with_7zip(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sources").mkdir(parents=True)
    (tree / "efi" / "boot").mkdir(parents=True)
    (tree / "sources" / "install.wim").write_bytes(b"MSWIM\0\0\0")
    (tree / "efi" / "boot" / "bootx64.efi").write_bytes(b"MZ")
    iso = tmp_path / "udf.iso"
    subprocess.run(["genisoimage", "-quiet", "-udf", "-o", str(iso), str(tree)], check=True,
                   timeout=60)
    assert _has_udf(iso)
    names = _udf_names(iso)
    assert names is not None
    assert {"/sources/install.wim", "/efi/boot/bootx64.efi"} <= names
