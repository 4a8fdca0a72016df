"""Benchmark: scenario suite wall time with 1, 2 and 4 workers on the same 4-VM lab,
and the lab's unplug confirmation latency against libvirt's device-removed event.

Needs the default lab up (`make lab-up`). Writes artifacts/bench/scenarios.md.
The reference for the suite is the 1-worker run (ratios are speed-ups); the
reference for the unplug is libvirt's own device-removed event, timed from the
detach request, beside the lab's confirmation (the guest no longer lists the NIC).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Untracked output; bench/results/scenarios.md is the recorded run the README quotes.
RESULTS = REPO / "artifacts" / "bench" / "scenarios.md"
UNPLUGS = 10


def suite(workers: int) -> float:
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-n", str(workers), "tests/scenarios/test_scenarios.py"],
                         cwd=REPO, capture_output=True, text=True, timeout=3600)
    took = time.monotonic() - t0
    if res.returncode != 0:
        sys.exit(f"suite with {workers} workers failed:\n{res.stdout[-3000:]}")
    return took


def unplug_latency() -> tuple[list[float], list[float]]:
    from lab import host, inventory
    from lab.config import load_config
    from lab.guests import guest_kind
    from lab.hypervisor import Hypervisor
    from lab.paths import StatePaths
    from lab.vm import Vm

    cfg = load_config(REPO / "lab.toml")
    host.enter_existing(cfg)
    inv = inventory.read(StatePaths(cfg.state_dir).inventory)
    events: list[float] = []
    confirms: list[float] = []
    with Hypervisor(inv.uri) as hv:
        vm = Vm(inv, inv.vms[0], hv, guest_kind(cfg))
        vm.revert()
        nic = vm.entry.test_nics[0]
        for _ in range(UNPLUGS):
            t0 = time.monotonic()
            events.append(vm.unplug(nic))
            confirms.append(time.monotonic() - t0)
            vm.replug(nic)
        vm.revert()
        vm.close()
    return events, confirms


def main() -> None:
    walls = {n: suite(n) for n in (1, 2, 4)}
    events, confirms = unplug_latency()
    ms = [1000 * x for x in events]
    cms = [1000 * x for x in confirms]
    lines = [
        "# Scenario suite benchmark", "",
        "| workers | suite wall (s) | speed-up vs 1 worker |", "|---|---|---|",
        *[f"| {n} | {w:.1f} | {walls[1] / w:.2f}x |" for n, w in walls.items()],
        "",
        f"Unplug of a virtio test NIC, {UNPLUGS} times (ms from the detach request):", "",
        "| | median | max |", "|---|---|---|",
        f"| libvirt device-removed event (reference) | {statistics.median(ms):.0f} | "
        f"{max(ms):.0f} |",
        f"| lab confirmation (event + guest no longer lists the MAC) | "
        f"{statistics.median(cms):.0f} | {max(cms):.0f} |",
        f"| ratio lab / event | {statistics.median(cms) / statistics.median(ms):.2f}x | |",
        "", f"Measured {time.strftime('%Y-%m-%d')} on 2 cores, TCG, 4 micro VMs.",
    ]
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
