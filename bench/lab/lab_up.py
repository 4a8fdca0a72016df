"""Benchmark: `lab up` wall time for 1, 2 and 4 micro VMs, and the provisioning overhead.

Reference, run side by side in the same invocation: the same micro guest booted
by bare QEMU (no libvirt, no networks, no SSH) until its console says it is
ready. Results are printed and written to artifacts/bench/lab-up.md as ratios to
that reference. Uses its own lab (name "dlbench", subnets 192.168.233-235.x) so a
running user lab is untouched.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / "var" / "bench-lab"
#: Untracked output; bench/results/lab-up.md is the recorded run the README quotes.
RESULTS = REPO / "artifacts" / "bench" / "lab-up.md"
SSH_RE = re.compile(r"\] (\S+): SSH answers after ([0-9.]+)s")

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
"""


def lab(config: Path, *args: str) -> tuple[float, str]:
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "lab", "-c", str(config), *args],
                         capture_output=True, text=True, timeout=1200, cwd=REPO)
    took = time.monotonic() - t0
    if res.returncode != 0:
        sys.exit(f"lab {' '.join(args)} failed:\n{res.stderr}")
    return took, res.stderr


def bare_qemu_boot() -> float:
    """Seconds for bare QEMU (TCG) to boot the golden image until the guest is ready."""
    img = STATE / "images" / "linux-micro"
    with tempfile.TemporaryDirectory() as tmp:
        overlay = Path(tmp) / "o.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                        str(img / "golden.qcow2"), str(overlay)], check=True)
        t0 = time.monotonic()
        proc = subprocess.Popen(
            ["qemu-system-x86_64", "-accel", "tcg", "-M", "q35", "-m", "256", "-nodefaults",
             "-display", "none", "-no-reboot", "-serial", "stdio", "-nic", "none",
             "-kernel", str(img / "vmlinuz"), "-initrd", str(img / "initrd.img"),
             "-drive", f"file={overlay},if=virtio,format=qcow2",
             "-append", "console=ttyS0 root=/dev/vda rw lab.hostname=bare"],
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


def run(n: int) -> dict[str, float]:
    config = STATE / "lab.toml"
    names = "[" + ", ".join(f'"b{i}"' for i in range(1, n + 1)) + "]"
    config.write_text(CONFIG.format(names=names))
    lab(config, "down")
    wall, log = lab(config, "up")
    boots = [float(m.group(2)) for m in SSH_RE.finditer(log)]
    lab(config, "down")
    overhead = wall - max(boots)
    return {"vms": n, "wall": wall, "boot_max": max(boots), "boot_mean": statistics.mean(boots),
            "overhead": overhead, "overhead_per_vm": overhead / n}


def main() -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "lab.toml").write_text(CONFIG.format(names='["b1"]'))
    lab(STATE / "lab.toml", "images")  # build once, outside the timings
    run(1)  # warm-up: caches the acceleration probe and the pool's image volumes path
    rows = [run(n) for n in (1, 2, 4)]
    ref = bare_qemu_boot()
    lines = [
        "# lab up benchmark", "",
        f"Reference: bare QEMU (TCG, no libvirt) boots the same micro guest to "
        f"'ready' in **{ref:.1f}s**.", "",
        "| VMs | lab up wall (s) | x bare boot | slowest SSH-ready (s) | "
        "overhead excl. boot (s) | overhead per VM (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['vms']:.0f} | {r['wall']:.1f} | {r['wall'] / ref:.2f}x | "
                     f"{r['boot_max']:.1f} | {r['overhead']:.1f} | {r['overhead_per_vm']:.2f} |")
    lines += ["", "Overhead = wall time minus the slowest VM's wait for SSH (image check, "
              "acceleration decision from cache, networks, pool uploads, define/start, "
              "snapshots, inventory). Measured on "
              f"{time.strftime('%Y-%m-%d')}, {subprocess.getoutput('nproc')} cores, TCG."]
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
