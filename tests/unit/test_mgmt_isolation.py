"""The management NIC stays out of the driver under test's reach, and the micro
guest's kernel detects hangs (pure: argv, manifest, command line)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from lab.config import parse_config
from lab.drivers import DRIVERS_DIR, load_manifest
from lab.guests.linux_micro import HANG_PARAMS, PANIC_PARAMS, insmod_argv, micro_cmdline
from lab.plan import make_plan

MGMT = "52:54:00:AA:00:01"
GUEST = PurePosixPath("/tmp/lab-drivers/labtdi.ko")


def test_labtdi_is_loaded_with_the_management_mac_to_skip() -> None:
    twin = load_manifest(DRIVERS_DIR / "labtdi" / "driver.toml").linux
    assert twin is not None and twin.skip_macs_param == "skip_macs"
    argv = insmod_argv(twin, GUEST, ("block_unload",), (MGMT,))
    assert argv == ["insmod", str(GUEST), "block_unload=1", "skip_macs=52:54:00:aa:00:01"]
    assert insmod_argv(twin, GUEST) == ["insmod", str(GUEST)]


def test_a_twin_without_the_parameter_gets_no_macs() -> None:
    twin = load_manifest(DRIVERS_DIR / "wskecho" / "driver.toml").linux
    assert twin is not None and twin.skip_macs_param is None
    argv = insmod_argv(twin, PurePosixPath("/tmp/lab-drivers/kecho.ko"), (), (MGMT,))
    assert not any(a.startswith("skip_macs=") for a in argv)


def test_micro_cmdline_panics_on_oops_and_detects_hangs() -> None:
    vm = make_plan(parse_config({}, Path("/tmp/lab.toml"))).vms[0]
    words = micro_cmdline(vm).split()
    for param in PANIC_PARAMS + HANG_PARAMS:
        assert param in words
    assert "hung_task_panic=1" not in words  # a blocked rmmod is a hang, not a crash
