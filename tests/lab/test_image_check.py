"""Lab tier: `lab image check` for real, against micro Linux guests in a real libvirtd.

Its own lab ("dlchk", subnets 192.168.226-228.x, state in var/test-check), so it never
touches dlab, dle or dltest. In order:

1. the lab is down: `lab image check` brings up one VM, prints every item ✓, exits 0,
   and the lab is down again afterwards;
2. with the lab up, one thing broken over SSH (kernel.sysrq = 0) is exactly the one ✗;
3. `lab image check` on the running lab leases and reverts the first VM: the broken
   sysrq is gone with the revert, every item ✓, and the lab stays up.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from labtier import REPO, lab_cli, require_lab_host

from lab import host, inventory
from lab.commands import guest_address
from lab.config import LabConfig, load_config
from lab.guest import Guest
from lab.guests import guest_kind
from lab.guests.linux_micro import MICRO_CHECKS
from lab.paths import StatePaths

pytestmark = pytest.mark.lab

CHECK_LAB = REPO / "var" / "test-check"
CHECK_LAB_TOML = """\
[lab]
name = "dlchk"
state_dir = "."
acceleration = "auto"

[network]
management = "192.168.226.0/24"
test = ["192.168.227.0/24", "192.168.228.0/24"]

[vms]
names = ["c1", "c2"]
test_nics = ["virtio", "vmxnet3"]
boot_timeout_s = 300
"""

def _seed_kernel_cache(state: Path) -> None:
    """Reuse the kernel .deb the default lab already downloaded (saves a download)."""
    debs = state / "cache" / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    for deb in (REPO / "var" / "cache" / "debs").glob("linux-image-*.deb"):
        if not (debs / deb.name).exists():
            shutil.copy2(deb, debs / deb.name)


@pytest.fixture(scope="module")
def check_config() -> LabConfig:
    require_lab_host()
    CHECK_LAB.mkdir(parents=True, exist_ok=True)
    _seed_kernel_cache(CHECK_LAB)
    path = CHECK_LAB / "lab.toml"
    path.write_text(CHECK_LAB_TOML)
    return load_config(path)


def _rows(stdout: str) -> dict[str, str]:
    """Item name -> mark, from the table's item rows."""
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("  \u2713 ") or line.startswith("  \u2717 "):
            mark, rest = line[2], line[4:]
            rows[rest.split("  ")[0].strip()] = mark
    return rows


def test_check_brings_up_one_vm_passes_and_takes_the_lab_down(check_config: LabConfig) -> None:
    inv_path = StatePaths(check_config.state_dir).inventory
    assert not inv_path.exists(), "the dlchk lab must be down before this test"
    res = lab_cli(check_config.path, "image", "check")
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.splitlines()[0] == "image contract of c1 (linux-micro)"
    rows = _rows(res.stdout)
    items = len(MICRO_CHECKS)  # one row per check of the micro kind's contract
    assert set(rows.values()) == {"\u2713"} and len(rows) == items, res.stdout
    assert "magic SysRq enabled" in rows and "pvpanic device with its driver" in rows
    assert f"all {items} items pass" in res.stdout
    assert "bringing up 1 VMs" in res.stderr  # only the first VM of two was made
    assert "lab dlchk is down" in res.stderr
    assert not inv_path.exists()
    status = lab_cli(check_config.path, "status")
    assert "lab dlchk is down" in status.stdout


@pytest.fixture(scope="module")
def running_check_lab(check_config: LabConfig) -> Iterator[LabConfig]:
    res = lab_cli(check_config.path, "up")
    try:
        assert res.returncode == 0, f"lab up failed:\n{res.stderr[-3000:]}"
        yield check_config
    finally:
        _down(check_config)


def _down(config: LabConfig) -> None:
    """`lab down`, once more if the first run lost a race with another lab's objects
    (listing every lab's objects can fail while another lab removes a domain)."""
    if lab_cli(config.path, "down").returncode != 0:
        res = lab_cli(config.path, "down")
        assert res.returncode == 0, res.stderr[-2000:]
    assert not StatePaths(config.state_dir).inventory.exists()


def test_broken_sysrq_is_exactly_one_cross(running_check_lab: LabConfig) -> None:
    inv = inventory.read(StatePaths(running_check_lab.state_dir).inventory)
    kind = guest_kind(running_check_lab)
    with host.inside_lab(running_check_lab), Guest(guest_address(inv, "c1")) as guest:
        before = kind.contract(kind.handle(guest))
        assert [i.name for i in before if not i.ok] == []
        guest.run("echo 0 > /proc/sys/kernel/sysrq")
        after = kind.contract(kind.handle(guest))
    broken = [i for i in after if not i.ok]
    assert [(i.name, i.detail) for i in broken] == [("magic SysRq enabled", "kernel.sysrq = 0")]
    assert "/proc/sys/kernel/sysrq" in broken[0].fix


def test_check_on_the_running_lab_reverts_the_vm(running_check_lab: LabConfig) -> None:
    res = lab_cli(running_check_lab.path, "image", "check")
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    assert set(_rows(res.stdout).values()) == {"\u2713"}
    assert res.stderr.count("clean snapshot restored") == 2
    assert StatePaths(running_check_lab.state_dir).inventory.exists()  # still up
    inv = inventory.read(StatePaths(running_check_lab.state_dir).inventory)
    with host.inside_lab(running_check_lab), Guest(guest_address(inv, "c1")) as guest:
        assert guest.run("cat /proc/sys/kernel/sysrq").stdout.strip() != "0"
