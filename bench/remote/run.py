"""Benchmark: a VM on a second hypervisor host vs the same VM on the local one (issue 12).

Issue 12's target: a remote VM costs at most 1.2x the local figure. Two 1-VM labs of
the same image on this machine, brought up one after the other (never both up):

* ``bnl``: its VM on the local host (the lab's sandbox libvirtd);
* ``bnr``: its VM on a namespace host (lab/nshost.py: own network namespace, libvirtd
  and sshd, reached over qemu+ssh://), which `lab up` starts and `lab down` stops.

Measured: `lab up` wall time from down (N runs each, interleaved; the namespace host's
own start is part of the remote figure and also shown alone), `Guest(...).run("true")`
on a fresh and on a reused SSH connection (through the host's sshd as gateway vs
direct), and the instrument round trips of bench/instruments/round_trip.py (run as it
is). Table to artifacts/bench/remote.md (never bench/results/), then PASS/FAIL per
goal; exits 1 when a goal of this bench is missed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench" / "remote"))

from ssh_times import SshTimes, measure  # noqa: E402

from lab.config import load_config  # noqa: E402
from lab.errors import LabError  # noqa: E402

STATE = REPO / "var" / "bench-remote"
OUT = REPO / "artifacts" / "bench" / "remote.md"
TARGET = 1.2
VM = "r1"
HOST = "bnrhost2"  # its /30 (192.168.200.36/30, chosen by name) is used by no other lab
LAB_TIMEOUT_S = 900
CONFIG = """\
[lab]
name = "{name}"
state_dir = "{name}"
pool_path = "{pool}"
acceleration = "tcg"

[image]
kind = "linux-micro"

[network]
management = "192.168.{mgmt}.0/24"
test = ["192.168.{test}.0/24"]

[vms]
names = ["{vm}"]
test_nics = ["virtio"]
# both VMs boot: this bench measures what the second host costs, not the template
# (issue 13), which would hide the boot both sides share
template = false
"""
HOSTS = f'\n[[hosts]]\nname = "{HOST}"\nkind = "namespace"\nvms = ["{VM}"]\n'
LINE = re.compile(r"^\[\s*([0-9.]+)s\] (\S+): (.*)$", re.MULTILINE)
ROUND_TRIP = re.compile(r"instrument round trip, (.+?)\s+local\s+([0-9.]+) ms\s+remote\s+"
                        r"([0-9.]+) ms\s+ratio\s+([0-9.]+)x \(target <= ([0-9.]+)x\) (PASS|FAIL)")


@dataclass
class Side:
    """One of the two labs and what its runs measured."""

    name: str
    remote: bool
    up: list[float] = field(default_factory=list)
    down: list[float] = field(default_factory=list)
    boot: list[float] = field(default_factory=list)  # VM started -> SSH answers
    host_start: list[float] = field(default_factory=list)  # namespace host start
    sandbox_starts: int = 0  # runs whose `lab up` started the shared sandbox
    ssh: SshTimes | None = None

    @property
    def config(self) -> Path:
        return STATE / f"{self.name}.toml"

    def write(self) -> None:
        STATE.mkdir(parents=True, exist_ok=True)
        # each its own subnets: both labs are up at once while SSH is timed
        mgmt = 238 if self.remote else 220
        text = CONFIG.format(name=self.name, vm=VM, pool=STATE / f"{self.name}-pool",
                             mgmt=mgmt, test=mgmt + 1)
        self.config.write_text(text + (HOSTS if self.remote else ""))
        seed(STATE / self.name)


def seed(state: Path) -> None:
    """Hard-link a package cache into ``state`` (no download for a fresh state dir):
    var/cache if there is one, else the first lab state dir's cache under var/."""
    dst = state / "cache"
    found = [REPO / "var" / "cache", *sorted((REPO / "var").glob("*/cache"))]
    src = next((p for p in found if (p / "debs").is_dir() and p != dst), None)
    if src is not None and not dst.exists():
        state.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst, copy_function=os.link)


def lab(side: Side, *args: str) -> tuple[float, str]:
    """`lab -c <side's config> ARGS`: (wall seconds, its progress lines). Exits on failure."""
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "lab", "-c", str(side.config), *args],
                         capture_output=True, text=True, timeout=LAB_TIMEOUT_S, cwd=REPO)
    took = time.monotonic() - t0
    if res.returncode != 0:
        tail = "\n".join(res.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"lab {side.name} {' '.join(args)} failed (exit {res.returncode}):\n"
                         f"{tail}")
    return took, res.stderr


def after(lines: list[tuple[float, str, str]], needle: str) -> float | None:
    """Seconds from the progress line containing ``needle`` to the next line."""
    for i, (t, _subject, text) in enumerate(lines[:-1]):
        if needle in text:
            return lines[i + 1][0] - t
    return None


def record_up(side: Side, wall: float, log: str) -> None:
    lines = [(float(t), subject, text) for t, subject, text in LINE.findall(log)]
    side.up.append(wall)
    side.boot += [float(m.group(1)) for _t, subject, text in lines if subject == VM
                  for m in [re.match(r"SSH answers after ([0-9.]+)s", text)] if m]
    host = after(lines, f"starting namespace host {HOST}")
    if side.remote:
        if host is None:
            raise SystemExit(f"lab {side.name} up did not start namespace host {HOST}:\n{log}")
        side.host_start.append(host)
    side.sandbox_starts += any("starting the lab's own libvirtd" in t for _, _, t in lines)


def one_round(side: Side) -> None:
    """`lab up` from down (timed), then `lab down` (timed)."""
    wall, log = lab(side, "up")
    record_up(side, wall, log)
    took, _ = lab(side, "down")
    side.down.append(took)


def time_ssh(local: Side, remote: Side, rounds: int) -> None:
    """Both labs up at once, SSH rounds to each interleaved, both down again."""
    for side in (local, remote):
        lab(side, "up")
    local.ssh, remote.ssh = measure(load_config(local.config), load_config(remote.config),
                                    VM, rounds)
    for side in (local, remote):
        lab(side, "down")


def provision(sides: list[Side], runs: int, ssh_rounds: int) -> None:
    """Images first (untimed), one untimed up/down each, then ``runs`` rounds with the
    order of the two labs alternating; then SSH, with both labs up."""
    for side in sides:
        side.write()
        lab(side, "down")
        lab(side, "images")
    try:
        for side in sides:  # warm-up: keys, pool directory, page cache
            lab(side, "up")
            lab(side, "down")
        for i in range(runs):
            for side in (sides if i % 2 == 0 else sides[::-1]):
                print(f"round {i + 1}/{runs}: {side.name} ({'remote' if side.remote else 'local'})",
                      file=sys.stderr, flush=True)
                one_round(side)
        time_ssh(sides[0], sides[1], ssh_rounds)
    finally:
        for side in sides:
            subprocess.run([sys.executable, "-m", "lab", "-c", str(side.config), "down"],
                           capture_output=True, text=True, timeout=LAB_TIMEOUT_S, cwd=REPO)


def instruments() -> tuple[list[str], str]:
    """The round trips of bench/instruments/round_trip.py, run as it is (its own
    namespace host), as table rows; or no rows and why."""
    res = subprocess.run([sys.executable, str(REPO / "bench" / "instruments" / "round_trip.py")],
                         capture_output=True, text=True, timeout=LAB_TIMEOUT_S, cwd=REPO)
    rows = [f"| instrument round trip: {m.group(1).strip()} | {m.group(2)} ms | {m.group(3)} ms "
            f"| {m.group(4)}x | <= {m.group(5)}x | {m.group(6)} |"
            for m in ROUND_TRIP.finditer(res.stdout)]
    if res.returncode != 0 or not rows:
        tail = (res.stderr.strip() or res.stdout.strip()).splitlines()[-1:] or ["no output"]
        return [], f"bench/instruments/round_trip.py failed: {tail[0]}"
    return rows, ""


def spread(values: list[float], unit: str, scale: float = 1.0) -> str:
    """``median (min-max)`` of ``values`` times ``scale``, in ``unit``."""
    v = [x * scale for x in values]
    digits = 1 if unit == "s" or statistics.median(v) >= 10 else 2
    return (f"{statistics.median(v):.{digits}f} {unit} "
            f"({min(v):.{digits}f}-{max(v):.{digits}f})")


@dataclass(frozen=True)
class Row:
    what: str
    local: list[float]
    remote: list[float]
    unit: str
    goal: bool  # a goal of this bench (PASS/FAIL); else shown for information

    @property
    def ratio(self) -> float:
        return statistics.median(self.remote) / statistics.median(self.local)

    @property
    def verdict(self) -> str:
        if not self.goal:
            return "(information)"
        return "PASS" if self.ratio <= TARGET else "FAIL"

    def markdown(self) -> str:
        scale = 1000.0 if self.unit == "ms" else 1.0
        target = f"<= {TARGET}x" if self.goal else ""
        return (f"| {self.what} | {spread(self.local, self.unit, scale)} | "
                f"{spread(self.remote, self.unit, scale)} | {self.ratio:.2f}x | {target} | "
                f"{self.verdict} |")


def rows(local: Side, remote: Side) -> list[Row]:
    assert local.ssh is not None and remote.ssh is not None

    def rest(side: Side) -> list[float]:
        return [up - boot for up, boot in zip(side.up, side.boot, strict=True)]

    return [
        Row("`lab up` from down, wall", local.up, remote.up, "s", True),
        Row("`lab up`: VM boot (started -> SSH answers)", local.boot, remote.boot, "s", False),
        Row("`lab up`: the rest (wall - boot)", rest(local), rest(remote), "s", False),
        Row("`lab down`, wall", local.down, remote.down, "s", False),
        Row('SSH `run("true")`, fresh connection', local.ssh.fresh, remote.ssh.fresh, "ms",
            True),
        Row('SSH `run("true")`, reused connection', local.ssh.reused, remote.ssh.reused, "ms",
            True),
        Row('SSH `run("true")`, fresh incl. gateway login', local.ssh.cold, remote.ssh.cold,
            "ms", False),
    ]


def report(local: Side, remote: Side, runs: int, ssh_rounds: int) -> tuple[str, list[Row]]:
    table = rows(local, remote)
    inst, inst_note = instruments()
    head = [
        "# Remote VM vs local VM (issue 12)", "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, TCG, "
        f"1 micro VM; local = lab `{local.name}` (sandbox libvirtd), remote = lab "
        f"`{remote.name}` (namespace host `{HOST}`, same machine, same image). Each figure: "
        f"median (min-max); `lab up`/`down`: {runs} runs each from down, interleaved; SSH: "
        f"{ssh_rounds} rounds each, local and remote alternating with both labs up.", "",
        "| measurement | local | remote | ratio remote/local | target | verdict |",
        "|---|---:|---:|---:|---|---|",
    ]
    body = [row.markdown() for row in table] + inst
    notes = [
        "", f"- The namespace host's own start (network namespace, veth, libvirtd, virtlogd, "
        f"sshd until it answers) is part of the remote `lab up` figure: "
        f"{spread(remote.host_start, 's')} (from `lab up`'s progress lines, 0.1 s steps).",
        f"- `lab up` started the shared sandbox libvirtd in {local.sandbox_starts}/{runs} local "
        f"and {remote.sandbox_starts}/{runs} remote runs (it is kept while another lab uses it).",
        "- SSH fresh: a new guest connection (through the gateway: a direct-tcpip channel of "
        "the host's already open SSH transport) + `run(\"true\")`; incl. gateway login: the "
        "gateway's transport closed first (once per process and host).",
        "- Instrument rows: `bench/instruments/round_trip.py` (`make bench-instruments`) run "
        "as it is, medians of interleaved local/remote rounds (41 for the 1 MiB load, 21 "
        "for the answered probe, 7 for the silent one, 3 for the 2 s loads), its own "
        "verdicts.",
    ]
    if inst_note:
        notes.append(f"- {inst_note}")
    return "\n".join(head + body + notes) + "\n", table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="`lab up` runs per side")
    parser.add_argument("--ssh-rounds", type=int, default=30, help="SSH rounds per figure")
    parser.add_argument("--out", type=Path, default=OUT, help="the table (markdown)")
    args = parser.parse_args()
    if args.out.resolve().is_relative_to(REPO / "bench" / "results"):
        parser.error("bench/results/ holds recorded runs; write elsewhere")
    local, remote = Side("bnl", remote=False), Side("bnr", remote=True)
    try:
        provision([local, remote], max(args.runs, 1), max(args.ssh_rounds, 1))
    except LabError as exc:  # SSH timing failed: one line (both labs are down again)
        print(f"bench-remote: {exc}", file=sys.stderr)
        return 1
    text, table = report(local, remote, max(args.runs, 1), max(args.ssh_rounds, 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    goals = [row for row in table if row.goal]
    for row in goals:
        print(f"{row.verdict} remote/local, {row.what}: {row.ratio:.2f}x (goal <= {TARGET}x)")
    # the instrument rows are goals too (round_trip.py's own verdicts, last column)
    missed = [line.split(" | ")[0].lstrip("| ") for line in text.splitlines()
              if line.startswith("| instrument round trip") and line.endswith("| FAIL |")]
    for what in missed:
        print(f"FAIL remote/local, {what} (goal <= {TARGET}x; see the table)")
    return 1 if missed or any(row.verdict == "FAIL" for row in goals) else 0


if __name__ == "__main__":
    sys.exit(main())
