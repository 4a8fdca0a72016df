"""Benchmark: `lab up` from the template vs booting, and revert-to-ready (issue 13).

Reference, run side by side in the same invocation: the same micro guest booted by
bare QEMU (no libvirt, no networks, no SSH) until its console says it is ready.
Measured, each as a ratio to that reference:

* `lab up` of 4 VMs that boot (``template = false``): what the lab did before;
* `lab up` of 4 VMs with a cold template (its cache emptied: built in the same run);
* `lab up` of 4 VMs with a warm template (cached), RUNS times: median and spread;
* `lab up` of 1 VM with a warm template;
* revert-to-ready: each VM reverted to its clean snapshot until SSH answers again,
  REVERTS times per VM.

Goals (issue 13): warm 4 VMs <= 1.0x a bare boot (stretch 0.5x), cold <= 1.5x,
revert-to-ready <= 0.2x. Results are printed and written to artifacts/bench/lab-up.md
(bench/results/lab-up.md is the recorded run the README quotes). Uses its own lab
("dlbench", subnets 192.168.233-235.x, state under var/bench-lab): a running user lab
is untouched.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / "var" / "bench-lab"
RESULTS = REPO / "artifacts" / "bench" / "lab-up.md"
RESTORED_RE = re.compile(r"\] (\S+): restored from the template")
RUNS = 3
REVERTS = 5

CONFIG = """\
[lab]
name = "dlbench"
state_dir = "."
[network]
management = "192.168.233.0/24"
test = ["192.168.234.0/24", "192.168.235.0/24"]
[vms]
names = {names}
test_nics = ["virtio", "vmxnet3"]
template = {template}
"""


@dataclass(frozen=True)
class Up:
    wall: float
    restored: int  #: VMs made from the template (the rest booted)


#: `lab` as users run it: with Python's bytecode cache (PYTHONDONTWRITEBYTECODE=1 in
#: the caller's environment makes every `lab up` compile its modules again: +0.3 s)
LAB_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def lab(config: Path, *args: str) -> tuple[float, str]:
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "lab", "-c", str(config), *args],
                         capture_output=True, text=True, timeout=1200, cwd=REPO, env=LAB_ENV)
    took = time.monotonic() - t0
    if res.returncode != 0:
        sys.exit(f"lab {' '.join(args)} failed:\n{res.stderr}")
    return took, res.stderr


def write_config(n: int, template: bool) -> Path:
    config = STATE / "lab.toml"
    names = "[" + ", ".join(f'"b{i}"' for i in range(1, n + 1)) + "]"
    config.write_text(CONFIG.format(names=names, template=str(template).lower()))
    return config


def up(n: int, template: bool = True, cold: bool = False, keep: bool = False) -> Up:
    config = write_config(n, template)
    lab(config, "down")
    if cold:
        shutil.rmtree(STATE / "images" / "templates", ignore_errors=True)
    wall, log = lab(config, "up")
    if not keep:
        lab(config, "down")
    return Up(wall, len(RESTORED_RE.findall(log)))


def revert_times() -> list[float]:
    """Each VM of the running bench lab reverted REVERTS times (seconds to SSH)."""
    sys.path.insert(0, str(REPO))
    from lab import host, inventory
    from lab.config import load_config
    from lab.guests import guest_kind
    from lab.hypervisor import Hypervisor
    from lab.vm import Vm

    config = load_config(STATE / "lab.toml")
    inv = inventory.read(STATE / "inventory.json")
    times: list[float] = []
    with host.inside_lab(config), Hypervisor(inv.uri) as hv:
        for entry in inv.vms:
            vm = Vm(inv, entry, hv, guest_kind(config))
            try:
                times += [vm.revert() for _ in range(REVERTS)]
            finally:
                vm.guest.close()
    return times


def bare_qemu_boot() -> float:
    """Seconds for bare QEMU (TCG) to boot the golden image until the guest is ready."""
    sys.path.insert(0, str(REPO))
    from lab import no_thp

    img = STATE / "images" / "linux-micro"
    with tempfile.TemporaryDirectory() as tmp:
        overlay = Path(tmp) / "o.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                        str(img / "golden.qcow2"), str(overlay)], check=True)
        t0 = time.monotonic()
        # without transparent huge pages, as the lab's own libvirtd starts QEMU (lab.no_thp)
        proc = subprocess.Popen(no_thp.argv(
            ["qemu-system-x86_64", "-accel", "tcg", "-M", "q35", "-m", "256", "-nodefaults",
             "-display", "none", "-no-reboot", "-serial", "stdio", "-nic", "none",
             "-kernel", str(img / "vmlinuz"), "-initrd", str(img / "initrd.img"),
             "-drive", f"file={overlay},if=virtio,format=qcow2",
             "-append", "console=ttyS0 root=/dev/vda rw lab.hostname=bare"]),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        try:
            deadline = t0 + 300
            for raw in proc.stdout:
                if b"lab-guest: ready" in raw:
                    return time.monotonic() - t0
                if time.monotonic() > deadline:
                    break
            raise SystemExit("bare QEMU boot never reached 'lab-guest: ready'")
        finally:
            proc.kill()
            proc.wait(timeout=30)


def spread(values: list[float]) -> str:
    return (f"{statistics.median(values):.2f}s (min {min(values):.2f}, max {max(values):.2f},"
            f" n={len(values)})")


def verdict(ratio: float, goal: float) -> str:
    return f"{'PASS' if ratio <= goal else 'FAIL'} (goal <= {goal}x)"


def main() -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    lab(write_config(1, True), "images")  # build once, outside the timings
    up(1)  # warm-up: acceleration probe cached, template built
    booted = up(4, template=False)
    cold = up(4, cold=True)
    warm = [up(4) for _ in range(RUNS - 1)] + [up(4, keep=True)]
    reverts = revert_times()
    lab(STATE / "lab.toml", "down")
    single = up(1)
    refs = [bare_qemu_boot() for _ in range(RUNS)]
    ref = statistics.median(refs)
    warm_wall = [w.wall for w in warm]
    rows = [
        ("4 VMs, booting (template = false)", [booted.wall], None, booted.restored),
        ("4 VMs, cold template (built in this run)", [cold.wall], 1.5, cold.restored),
        ("4 VMs, warm template", warm_wall, 1.0, min(w.restored for w in warm)),
        ("1 VM, warm template", [single.wall], None, single.restored),
        ("revert-to-ready, per revert", reverts, 0.2, None),
    ]
    lines = ["# lab up and revert benchmark", "",
             f"Reference: bare QEMU (TCG, no libvirt) boots the same micro guest to 'ready' "
             f"in **{spread(refs)}**.", "",
             "| measurement | time | x bare boot | VMs restored | goal |",
             "|---|---|---|---|---|"]
    for label, values, goal, restored in rows:
        ratio = statistics.median(values) / ref
        lines.append(f"| {label} | {spread(values)} | {ratio:.2f}x | "
                     f"{'-' if restored is None else restored} | "
                     f"{verdict(ratio, goal) if goal else '-'} |")
    lines += ["", "VMs restored: how many VMs of that `lab up` were made from the template "
              "(the others booted: the fallback). Measured on "
              f"{time.strftime('%Y-%m-%d')}, {subprocess.getoutput('nproc')} cores, TCG."]
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
