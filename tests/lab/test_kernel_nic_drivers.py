"""The micro image's kernel must drive every test NIC model: checked on the real Debian
kernel packages (the cloud kernel has no e1000e, the generic one has), and a lab that
asks for e1000e on the cloud kernel stops at `lab images` with one line naming the key.
Without the check the guest simply never lists the NIC and `lab up` times out later."""

from __future__ import annotations

from pathlib import Path

import pytest
from labtier import REPO, lab_cli, require_lab_host, seed_cache

from lab.guests import micro_image

STATE = REPO / "var" / "test-kernel-drivers"
TOML = """\
[lab]
name = "dlkd"
state_dir = "."

[image]
kernel_package = "linux-image-cloud-amd64"

[network]
management = "192.168.226.0/24"
test = ["192.168.227.0/24"]

[vms]
names = ["k1"]
test_nics = ["e1000e"]
"""


@pytest.fixture(scope="module")
def cache() -> Path:
    """A kernel package cache; a lab tier run's template cache seeds it (no download)."""
    require_lab_host()
    root = seed_cache(STATE, REPO / "var" / "test-template" / "cache")
    root.mkdir(parents=True, exist_ok=True)
    return root


def test_the_cloud_kernel_lacks_only_e1000e_of_the_common_models(cache: Path) -> None:
    tree = micro_image.fetch_kernel("linux-image-cloud-amd64", cache, print)
    assert micro_image.missing_modules(tree, ("virtio_net", "vmxnet3", "e1000e")) == ["e1000e"]


def test_the_generic_kernel_has_e1000e(cache: Path) -> None:
    tree = micro_image.fetch_kernel("linux-image-amd64", cache, print)
    assert micro_image.missing_modules(tree, ("virtio_net", "vmxnet3", "e1000e")) == []


def test_e1000e_on_the_cloud_kernel_is_one_line_naming_the_key(cache: Path) -> None:
    del cache  # the fixture filled it: `lab images` downloads nothing more
    (STATE / "lab.toml").write_text(TOML)
    res = lab_cli(STATE / "lab.toml", "images")
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if "lab failed" in ln]
    assert len(lines) == 1 and "[image.kernel_package]" in lines[0], res.stderr
    assert "e1000e" in lines[0] and "Traceback" not in res.stderr
    assert not (STATE / "images" / "linux-micro" / "golden.qcow2").exists()
