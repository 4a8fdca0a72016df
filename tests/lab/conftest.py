"""Lab tier: a real libvirtd + QEMU lab of micro guests (software emulation is enough).

The lab under test is separate from a user's default lab: its own name, subnets
and state directory (var/test-lab), so running the tests never touches `dlab`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest
from labtier import REPO, lab_cli, require_lab_host

from lab.config import LabConfig, load_config

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


LabCli = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="session")
def cli() -> LabCli:
    """The real `lab` CLI as a function: cli(config_path, *args)."""
    return lab_cli


@pytest.fixture(scope="session")
def test_lab_config() -> LabConfig:
    require_lab_host()
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
