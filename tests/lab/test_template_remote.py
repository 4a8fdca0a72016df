"""A VM on another hypervisor host made from that host's own template (issue 12 with
issue 13), on a real lab: the template is booted and saved in the namespace host's pool,
downloaded through libvirt's storage stream into the cache, and the VM's overlay is
streamed back from the cached file (no shared path: the host's pool directory is a
private mount of its own). A second `lab up` takes it from the cache.

Its own lab (dltr, 192.168.229-230.x, var/test-template-remote), one VM on the
namespace host ``hostq``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from labtier import REPO, lab_cli, require_lab_host, seed_cache

from lab import host, inventory, template
from lab.config import LabConfig, load_config
from lab.guest import Guest, GuestAddress
from lab.paths import StatePaths

STATE = REPO / "var" / "test-template-remote"
TOML = """\
[lab]
name = "dltr"
state_dir = "."

[network]
management = "192.168.229.0/24"
test = ["192.168.230.0/24"]

[vms]
names = ["q1"]
test_nics = ["virtio"]

[[hosts]]
name = "hostq"
kind = "namespace"
vms = ["q1"]
"""


@pytest.fixture(scope="module")
def remote_lab() -> Iterator[LabConfig]:
    require_lab_host("sshd", "nsenter")
    STATE.mkdir(parents=True, exist_ok=True)
    seed_cache(STATE)
    (STATE / "lab.toml").write_text(TOML)
    config = load_config(STATE / "lab.toml")
    lab_cli(config.path, "down")
    shutil.rmtree(template.TemplateCache(config.state_dir, "hostq").root, ignore_errors=True)
    try:
        yield config
    finally:
        lab_cli(config.path, "down")


def _hostname(config: LabConfig) -> str:
    inv = inventory.read(StatePaths(config.state_dir).inventory)
    vm = inv.vm("q1")
    assert vm.host == "hostq" and vm.gateway is not None
    with host.inside_lab(config), Guest(GuestAddress.of(inv, vm), connect_timeout=10) as guest:
        return guest.run("cat /proc/sys/kernel/hostname", timeout=20).stdout.strip()


def test_a_remote_vm_is_made_from_its_hosts_template_then_from_the_cache(
        remote_lab: LabConfig) -> None:
    cold = lab_cli(remote_lab.path, "up")
    assert cold.returncode == 0, f"lab up failed:\n{cold.stderr[-3000:]}"
    assert "template: booting (no NICs, no identity)" in cold.stderr
    assert "cached for the next `lab up`" in cold.stderr
    assert "q1: restored from the template:" in cold.stderr, cold.stderr[-3000:]
    assert "booting instead" not in cold.stderr
    cache = template.TemplateCache(remote_lab.state_dir, "hostq")
    (cached,) = cache.root.glob("*.json")
    assert cache.lookup(cached.stem) is not None  # complete: file and record agree
    assert not list(template.TemplateCache(remote_lab.state_dir).root.glob("*.json")), \
        "the remote host's template landed in the local host's cache"
    assert _hostname(remote_lab) == "q1"  # its own identity, not the template's

    assert lab_cli(remote_lab.path, "down").returncode == 0
    warm = lab_cli(remote_lab.path, "up")
    assert warm.returncode == 0, f"lab up failed:\n{warm.stderr[-3000:]}"
    assert f"template {cached.stem[:12]}: from the cache" in warm.stderr
    assert "template: booting" not in warm.stderr
    assert "q1: restored from the template:" in warm.stderr, warm.stderr[-3000:]
    assert _hostname(remote_lab) == "q1"
