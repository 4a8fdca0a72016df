"""Every command that finds its lab down says which lab, config file and state
directory it looked at (README: a copied lab.toml is a different lab).

Run through the real CLI on a copied lab.toml in a temporary directory (never up).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from make_targets import ROOT

from lab.cli import main

COMMANDS = (["status"], ["ssh", "vm1", "uname", "-r"], ["console", "vm1"],
            ["console", "vm1", "--follow", "--for", "1"], ["selftest", "--quick"])


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a))
def test_a_down_lab_is_named_with_its_config_and_state_dir(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    config = tmp_path / "copy" / "lab.toml"
    config.parent.mkdir()
    shutil.copyfile(ROOT / "lab.toml", config)
    code = main(["--config", str(config), *argv])
    out = capsys.readouterr()
    text = out.out + out.err
    assert f"(no inventory.json; config {config}, state dir {config.parent / 'var'})" in text
    assert code == (0 if argv == ["status"] else 1)
    assert not (config.parent / "var").exists()  # looking made nothing
