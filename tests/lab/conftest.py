"""Lab tier: a real libvirtd + QEMU lab of micro guests (software emulation is enough).

The lab under test is separate from a user's default lab: its own name, subnets
and state directory (var/test-lab), so running the tests never touches `dlab`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.config import LabConfig, load_config

REPO = Path(__file__).resolve().parents[2]
TEST_LAB = REPO / "var" / "test-lab"

TEST_LAB_TOML = """\
[lab]
name = "dltest"
state_dir = "."
acceleration = "auto"

[network]
management = "192.168.223.0/24"
test = ["192.168.224.0/24", "192.168.225.0/24"]

[vms]
names = ["t1", "t2"]
test_nics = ["virtio", "vmxnet3"]
boot_timeout_s = 300
"""


def lab_cli(config: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run the real `lab` CLI (python -m lab) and echo its output into the test log."""
    res = subprocess.run([sys.executable, "-m", "lab", "-c", str(config), *args],
                         capture_output=True, text=True, timeout=timeout, cwd=REPO)
    sys.stdout.write(f"$ lab {' '.join(args)} -> {res.returncode}\n{res.stdout}{res.stderr}")
    return res


def _host_can_run_lab() -> str | None:
    if os.geteuid() != 0:
        return "the lab tier needs root (sandboxed libvirtd, network namespace)"
    for tool in ("libvirtd", "qemu-system-x86_64", "ip", "busybox", "dropbear"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} is not installed (run `make setup`)"
    return None


LabCli = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="session")
def cli() -> LabCli:
    """The real `lab` CLI as a function: cli(config_path, *args)."""
    return lab_cli


@pytest.fixture(scope="session")
def test_lab_config() -> LabConfig:
    reason = _host_can_run_lab()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"lab tier cannot run in CI: {reason}")
        pytest.skip(reason)
    TEST_LAB.mkdir(parents=True, exist_ok=True)
    path = TEST_LAB / "lab.toml"
    path.write_text(TEST_LAB_TOML)
    return load_config(path)


@pytest.fixture(scope="module")
def running_lab(test_lab_config: LabConfig) -> Iterator[LabConfig]:
    """`lab up` for the module; `lab down` afterwards whatever happened."""
    res = lab_cli(test_lab_config.path, "up")
    try:
        assert res.returncode == 0, f"lab up failed:\n{res.stderr[-3000:]}"
        yield test_lab_config
    finally:
        lab_cli(test_lab_config.path, "down")
