"""`lab image check`: boot one VM from the golden image and check its contract over SSH.

Two ways to a VM, both leaving the lab as they found it:

* the lab is up (its inventory exists): the first VM, leased like a test leases it
  (so no test runs on it meanwhile), reverted to its clean snapshot, checked, and
  reverted again afterwards;
* the lab is down: a one-VM lab from the same config (`lab up`), checked, and taken
  down again (`lab down`) whatever happened.

The guest kind says what its contract is (:meth:`GuestKind.contract`); this module
only finds the VM and prints the ✓/✗ table with the fix of every ✗.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from lab import inventory
from lab.config import LabConfig, load_config
from lab.errors import LabError, LabFailure
from lab.guests import guest_kind
from lab.guests.base import ContractItem
from lab.host import open_host
from lab.leases import Lease
from lab.paths import StatePaths
from lab.progress import Progress
from lab.vm import Vm

#: How long to wait for a test to release the VM.
LEASE_TIMEOUT_S = 900.0
PASS, FAIL = "\u2713", "\u2717"


def render_table(vm: str, kind: str, items: Sequence[ContractItem]) -> str:
    """One row per item: mark, name, detail; under each ✗ its fix; then the verdict."""
    width = max((len(item.name) for item in items), default=0)
    rows = [f"image contract of {vm} ({kind})"]
    for item in items:
        rows.append(f"  {PASS if item.ok else FAIL} {item.name:<{width}}  {item.detail}")
        if not item.ok:
            rows.append(f"    {'':<{width}}  fix: {item.fix}")
    broken = sum(1 for item in items if not item.ok)
    rows.append(f"{broken} of {len(items)} items fail" if broken
                else f"all {len(items)} items pass")
    return "\n".join(rows)


def exit_code(items: Sequence[ContractItem]) -> int:
    """0 when every item passes (an empty contract proves nothing: 1)."""
    return 0 if items and all(item.ok for item in items) else 1


def cmd_check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        progress = Progress(log=StatePaths(config.state_dir).lab_log)
        if StatePaths(config.state_dir).inventory.exists():
            vm, items = check_running_lab(config, progress)
        else:
            vm, items = check_fresh_lab(config, progress)
    except LabError as exc:
        print(f"lab image check: {exc.kind}: {exc}", file=sys.stderr)
        return 1
    print(render_table(vm, str(config.image.kind), items))
    return exit_code(items)


def check_running_lab(config: LabConfig, progress: Progress) -> tuple[str, list[ContractItem]]:
    """The first VM of the running lab, leased, between two reverts to its clean snapshot."""
    inv = inventory.read(StatePaths(config.state_dir).inventory)
    return inv.vms[0].name, _leased_check(config, inv, progress, revert_first=True)


def _leased_check(config: LabConfig, inv: inventory.Inventory, progress: Progress,
                  revert_first: bool) -> list[ContractItem]:
    """Hold the first VM's lease (as a test would), check it, revert it to its snapshot."""
    name = inv.vms[0].name
    lease = Lease(StatePaths(config.state_dir).leases, [name], "lab image check", 0)
    progress(f"{name}: taking its lease (a running test keeps it up to "
             f"{LEASE_TIMEOUT_S:.0f}s)")
    lease.acquire(LEASE_TIMEOUT_S)
    try:
        hv = open_host(config, progress, start=False)
        if hv is None:
            raise LabFailure(f"lab {config.lab.name} has an inventory but its sandbox is not "
                             "running", hint="`lab down`, then `lab image check` again")
        with hv:
            kind = guest_kind(config)
            vm = Vm(inv, inv.vm(name), hv, kind)
            try:
                if revert_first:
                    progress(f"{name}: clean snapshot restored in {vm.revert():.1f}s")
                items = kind.contract(vm.handle)
                progress(f"{name}: clean snapshot restored in {vm.revert():.1f}s")
                return items
            finally:
                vm.close()
    finally:
        lease.release()


def one_vm_config(config: LabConfig) -> LabConfig:
    """The same lab with only its first VM (same names, subnets, MACs for that VM)."""
    return dataclasses.replace(config, vms=dataclasses.replace(
        config.vms, names=list(config.vms.names[:1])))


def check_fresh_lab(config: LabConfig, progress: Progress) -> tuple[str, list[ContractItem]]:
    """`lab up` with one VM, the contract, and `lab down` whatever happened."""
    from lab.provision import up
    from lab.teardown import down

    small = one_vm_config(config)
    progress(f"lab {config.lab.name} is down: bringing up one VM ({small.vms.names[0]}) "
             "to check the image; it is taken down afterwards")
    failed = True
    try:
        inv = up(small, progress, first_boot=False)  # the contract is reported below
        items = _leased_check(small, inv, progress, revert_first=False)
        failed = False
        return inv.vms[0].name, items
    finally:
        try:
            down(small, progress)
        except LabError as exc:
            if not failed:
                raise
            progress(f"`lab down` after the failure failed too: {exc.summary}")
