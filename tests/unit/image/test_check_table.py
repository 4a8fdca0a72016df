"""`lab image check`'s table and exit code (lab.image.check), and its one-VM config."""

from __future__ import annotations

from pathlib import Path

from lab.config import load_config
from lab.guests.base import ContractItem
from lab.image.check import exit_code, one_vm_config, render_table
from lab.plan import make_plan

GOOD = ContractItem("magic SysRq enabled", True, "kernel.sysrq = 438", "enable it")
BAD = ContractItem("pvpanic device with its driver", False, "no ACPI QEMU0001 device",
                   "add <panic model='isa'/>")


def test_table_has_one_row_per_item_and_a_fix_under_each_cross() -> None:
    text = render_table("t1", "linux-micro", [GOOD, BAD])
    lines = text.splitlines()
    assert lines[0] == "image contract of t1 (linux-micro)"
    assert lines[1] == "  \u2713 magic SysRq enabled             kernel.sysrq = 438"
    assert lines[2] == "  \u2717 pvpanic device with its driver  no ACPI QEMU0001 device"
    # the fix sits under the detail column of its row
    assert lines[3].index("fix:") == lines[2].index("no ACPI")
    assert lines[3].strip() == "fix: add <panic model='isa'/>"
    assert lines[4] == "1 of 2 items fail"
    assert len(lines) == 5


def test_table_without_failures_has_no_fix_lines() -> None:
    text = render_table("t1", "linux-micro", [GOOD, GOOD])
    assert "fix:" not in text
    assert text.splitlines()[-1] == "all 2 items pass"


def test_exit_code_is_zero_only_when_every_item_passes() -> None:
    assert exit_code([GOOD, GOOD]) == 0
    assert exit_code([GOOD, BAD]) == 1
    assert exit_code([]) == 1  # an empty contract proves nothing


def test_one_vm_config_keeps_the_first_vm_exactly(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text('[lab]\nname = "dlunit"\n[vms]\nnames = ["a", "b", "c"]\n')
    config = load_config(path)
    small = one_vm_config(config)
    assert small.vms.names == ["a"]
    assert config.vms.names == ["a", "b", "c"]
    assert small.network == config.network and small.lab == config.lab
    assert make_plan(small).vms[0] == make_plan(config).vms[0]
