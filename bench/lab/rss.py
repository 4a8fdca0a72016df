"""Benchmark: QEMU resident memory (RSS) per micro VM, after boot and after a load run.

One 1-VM lab (name "dlrss", subnets 192.168.202-204.x, state under var/bench-rss),
brought up three times, one after the other: booted with the lab's memory settings (TCG
translation cache cap, free page reporting balloon: lab.guests.base.BootChoices), booted
with QEMU's defaults (LAB_MEMORY_SAVING=off), and made from the lab's template with the
lab's settings (what `lab up` does by default). Each time: `lab up`, RSS after the guest
settled, then the load scenarios (tests/scenarios, load_every_nic and capacity), RSS
again. RSS is read from /proc/PID/smaps and split into guest RAM,
translation cache, the kernel QEMU keeps for direct boot, QEMU's own files and the rest.
The table goes to artifacts/bench/rss.md (RSS_BENCH_OUT= elsewhere; bench/results/rss.md
is the recorded run), then PASS/FAIL against the goal; exits 1 when it is missed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests import proctree  # noqa: E402  (the tests' /proc helpers)

STATE = REPO / "var" / "bench-rss"
RESULTS = Path(os.environ.get("RSS_BENCH_OUT", REPO / "artifacts" / "bench" / "rss.md"))
GOAL_MIB = 160
SETTLE_S = 15  # free page reporting waits 2 s after frees; the guest settles after boot
MAP_RE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")
MIB = 1024

CONFIG = """\
[lab]
name = "dlrss"
state_dir = "{state}"
pool_path = "{state}/pool"
[network]
management = "192.168.202.0/24"
test = ["192.168.203.0/24", "192.168.204.0/24"]
[vms]
names = ["r1"]
template = {template}
"""


@dataclass(frozen=True)
class Rss:
    """One reading of the VM's QEMU process, in KiB."""

    total: int
    guest: int
    tb: int
    kernel: int
    files: int

    @property
    def other(self) -> int:
        return self.total - self.guest - self.tb - self.kernel - self.files


def qemu_pid(domain: str) -> int:
    pid = proctree.qemu_pid(domain)
    if pid is None:
        sys.exit(f"no QEMU process for domain {domain}")
    return pid


def read_rss(pid: int, memory_mib: int, kernel_bytes: int) -> Rss:
    """Classify each mapping: the guest RAM block (its size), the TCG buffer (rwx anon),
    the direct-boot kernel copy (anon, the kernel file's size rounded to pages)."""
    total = guest = tb = kernel = files = 0
    size = rss = 0
    perm = name = ""

    def close() -> None:
        nonlocal total, guest, tb, kernel, files
        total += rss
        if name.startswith("/"):
            files += rss
        elif size == memory_mib * MIB and not guest:
            guest += rss
        elif "x" in perm and not name:
            tb += rss
        elif not name and abs(size - kernel_bytes // 1024) < 64:
            kernel += rss

    started = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        m = MAP_RE.match(line)
        if m:
            if started:
                close()
            started = True
            size = (int(m[2], 16) - int(m[1], 16)) // 1024
            perm, name, rss = m[3], m[4].strip(), 0
        elif line.startswith("Rss:"):
            rss = int(line.split()[1])
    if started:
        close()
    return Rss(total, guest, tb, kernel, files)


def lab(config: Path, env: dict[str, str], *args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "lab", "-c", str(config), *args],
                         capture_output=True, text=True, timeout=1200, cwd=REPO, env=env)
    if res.returncode != 0:
        sys.exit(f"lab {' '.join(args)} failed:\n{res.stderr}")
    return res.stderr + res.stdout


def load_run(config: Path, env: dict[str, str]) -> float:
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/scenarios/test_scenarios.py", "-k",
                          "load_every_nic or capacity", "--lab-config", str(config)],
                         capture_output=True, text=True, timeout=1200, cwd=REPO, env=env)
    if res.returncode != 0:
        sys.exit(f"load scenarios failed:\n{res.stdout[-3000:]}")
    return time.monotonic() - t0


def measure(saving: bool, template: bool = False) -> dict[str, object]:
    """`lab up`, RSS after boot, load scenarios, RSS after load, `lab down`."""
    config = STATE / "lab.toml"
    config.write_text(CONFIG.format(state=STATE, template=str(template).lower()))
    env = dict(os.environ)
    env.pop("LAB_MEMORY_SAVING", None)
    if not saving:
        env["LAB_MEMORY_SAVING"] = "off"
    lab(config, env, "down")
    t0 = time.monotonic()
    lab(config, env, "up")
    up_s = time.monotonic() - t0
    try:
        pid = qemu_pid("dlrss-r1")
        kernel = max((p.stat().st_size for p in (STATE / "pool").glob("kernel-*")), default=0)
        time.sleep(SETTLE_S)
        boot = read_rss(pid, 256, kernel)
        load_s = load_run(config, env)
        time.sleep(SETTLE_S)
        pid = qemu_pid("dlrss-r1")  # each scenario reverts to the clean snapshot
        loaded = read_rss(pid, 256, kernel)
    finally:
        lab(config, env, "down")
    return {"up": up_s, "boot": boot, "load": loaded,
            "load_s": load_s}


def mib(kib: int) -> str:
    return f"{kib / MIB:.0f} MiB"


def table(new: dict[str, object], old: dict[str, object], tpl: dict[str, object]) -> str:
    rows = ["| measurement | booted, QEMU defaults | booted, lab settings | saved | "
            "from the template, lab settings (default) |", "|---|---:|---:|---:|---:|"]
    for phase, label in (("boot", "after `lab up`"), ("load", "after load scenarios")):
        a, b, c = old[phase], new[phase], tpl[phase]
        assert isinstance(a, Rss) and isinstance(b, Rss) and isinstance(c, Rss)
        for part, what in (("total", f"**RSS {label}**"), ("guest", "guest RAM"),
                           ("tb", "TCG translation cache"), ("kernel", "direct-boot kernel copy"),
                           ("files", "QEMU binary + libraries (shared)"), ("other", "other")):
            x, y, z = getattr(a, part), getattr(b, part), getattr(c, part)
            rows.append(f"| {what if part == 'total' else f'{label}: {what}'} | {mib(x)} | "
                        f"{mib(y)} | {mib(x - y)} | {mib(z)} |")
    rows.append(f"| `lab up`, wall | {old['up']:.1f} s | {new['up']:.1f} s | | "
                f"{tpl['up']:.1f} s |")
    rows.append(f"| load scenarios, wall | {old['load_s']:.1f} s | {new['load_s']:.1f} s | | "
                f"{tpl['load_s']:.1f} s |")
    return "\n".join(rows) + "\n"


def main() -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    cache = REPO / "var" / "cache"
    if cache.is_dir() and not (STATE / "cache").exists():
        subprocess.run(["cp", "-al", str(cache), str(STATE / "cache")], check=True)
    new = measure(saving=True)
    old = measure(saving=False)
    tpl = measure(saving=True, template=True)
    text = (f"QEMU RSS of one 256 MiB micro VM (TCG), {time.strftime('%Y-%m-%d')}; "
            f"read {SETTLE_S} s after `lab up` and after the load scenarios.\n\n"
            + table(new, old, tpl) + "\n")
    failed = False
    for what, run in (("booted", new), ("from the template", tpl)):
        worst = max(r.total for r in (run["boot"], run["load"]) if isinstance(r, Rss))
        verdict = "PASS" if worst <= GOAL_MIB * MIB else "FAIL"
        failed |= verdict == "FAIL"
        text += (f"{verdict}: RSS per VM {what} {mib(worst)} at worst "
                 f"(goal <= {GOAL_MIB} MiB)\n")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text, end="")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
