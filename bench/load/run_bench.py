#!/usr/bin/env python3
"""Load-engine bench: iperf3, the C epoll echo server, the C streaming echo client and
`lab load`, side by side in one run on loopback. Writes the table to --out (default
artifacts/bench/load.md: bench/results/load.md is the tracked record the README quotes,
copied there by hand), prints it, then PASS or FAIL per goal; exits 1 when a goal is missed.

Usage: run_bench.py --bin DIR [--out FILE] [--seconds S] [--reps N] [--only NAMES] [--pin]
Each measurement runs N times (default 5), C reference and engine alternating. Each figure
is the median of its N runs, printed with its min-max spread; the ratio is the ratio of
the medians, with the spread of the N paired (back-to-back) ratios beside it, so one
noisy run on the shared host cannot decide a goal. LOAD_BENCH_SECONDS, LOAD_BENCH_REPS,
LOAD_BENCH_ONLY and LOAD_BENCH_PIN=1 set the defaults (for `make bench-load`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"  # loopback only
WINDOW = 256 * 1024  # bytes in flight per connection, the same for both clients
DEADLINE_SLACK = 30.0


@dataclass
class Row:
    what: str
    ref_name: str
    refs: list[float]
    """The reference's figure in each run (empty: not measured)."""
    engines: list[float]
    """The engine's figure in each run, paired with ``refs`` (run i back to back)."""
    unit: str
    goal: float | None = None
    """The ratio the engine must reach (``>= goal``), or None when there is no goal."""
    higher_is_better: bool = True

    @property
    def ref(self) -> float | None:
        return statistics.median(self.refs) if self.refs else None

    @property
    def engine(self) -> float | None:
        return statistics.median(self.engines) if self.engines else None

    @property
    def goal_text(self) -> str:
        return "" if self.goal is None else f">= {self.goal:g}x"

    def verdict(self) -> str:
        """PASS / FAIL against the goal ('' without a goal; FAIL when nothing was measured)."""
        if self.goal is None:
            return ""
        ratio = self.ratio()
        return "PASS" if ratio is not None and ratio >= self.goal else "FAIL"

    def ratio(self) -> float | None:
        """The ratio of the medians, oriented so that higher is better for the engine."""
        return _ratio(self.ref, self.engine, self.higher_is_better)

    def paired_ratios(self) -> list[float]:
        both = zip(self.refs, self.engines, strict=False)  # reference-only rows: no pairs
        pairs = (_ratio(r, e, self.higher_is_better) for r, e in both)
        return [x for x in pairs if x is not None]


def _ratio(ref: float | None, engine: float | None, higher_is_better: bool) -> float | None:
    if not ref or not engine:
        return None
    return engine / ref if higher_is_better else ref / engine


#: With --pin: the echo server (and iperf3 -s) runs on this CPU, every client on the other.
SERVER_CPU, CLIENT_CPU = 0, 1


def on_cpu(cpu: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child to ``cpu`` (None: no pinning)."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def run_json(cmd: list[str], timeout: float, cpu: int | None = None) -> dict[str, Any]:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                         preexec_fn=on_cpu(cpu))
    try:
        data: dict[str, Any] = json.loads(out.stdout)
    except json.JSONDecodeError:
        sys.exit(f"bench: {' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()[:400]}")
    return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def iperf3(seconds: float, pin: bool) -> float:
    port = free_port()
    server = subprocess.Popen(
        ["iperf3", "-s", "-B", HOST, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=on_cpu(SERVER_CPU if pin else None),
    )
    try:
        end = time.monotonic() + 10
        while True:  # no probe connect: it would count as a test; retry the client instead
            data = run_json(
                ["iperf3", "-c", HOST, "-p", str(port), "-t", str(seconds), "-J"],
                seconds + DEADLINE_SLACK, CLIENT_CPU if pin else None,
            )
            if "error" not in data:
                return float(data["end"]["sum_received"]["bits_per_second"]) / 8
            if time.monotonic() > end:
                sys.exit(f"bench: iperf3 failed: {data['error']}")
            time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)


class Bench:
    def __init__(self, bindir: Path, seconds: float, reps: int, pin: bool) -> None:
        self.bindir = bindir
        self.seconds = seconds
        self.reps = reps
        self.pin = pin
        self.client_cpu = CLIENT_CPU if pin else None
        self.python = sys.executable
        self.load_before = os.getloadavg()[0]

    def start_server(self) -> None:
        self.server = subprocess.Popen(
            [str(self.bindir / "echo_server"), HOST], stdout=subprocess.PIPE, text=True,
            preexec_fn=on_cpu(SERVER_CPU if self.pin else None),
        )
        assert self.server.stdout is not None
        line = self.server.stdout.readline()  # "PORT n", printed once listening
        if not line.startswith("PORT "):
            sys.exit(f"bench: echo_server did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop_server(self) -> None:
        self.server.send_signal(signal.SIGTERM)
        self.server.wait(10)

    def c_client(self, mode: str, conns: int) -> dict[str, Any]:
        cmd = [str(self.bindir / "echo_client"), "-m", mode, "-c", str(conns),
               "-t", str(self.seconds), "-w", str(WINDOW), "-s", "64", HOST, str(self.port)]
        data = run_json(cmd, self.seconds + DEADLINE_SLACK, self.client_cpu)
        if data["errors"]:
            sys.exit(f"bench: the C client saw {data['errors']} errors in {mode} x{conns}")
        return data

    def engine(self, mode: str, conns: int, *extra: str) -> dict[str, Any]:
        cmd = [self.python, "-m", "lab", "load", f"{HOST}:{self.port}", "-m", mode,
               "-c", str(conns), "-t", str(self.seconds), "-w", str(WINDOW), "-s", "64",
               "--no-progress", "--json", "-", *extra]
        data = run_json(cmd, self.seconds + DEADLINE_SLACK, self.client_cpu)
        if not data["ok"]:
            sys.exit(f"bench: the engine failed in {mode} x{conns}: {data['error_counts']}")
        return data

    def runs(
        self, mode: str, conns: int, extra: tuple[str, ...] = ()
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """``reps`` back-to-back pairs of (C client, engine) results."""
        pairs = []
        for _ in range(self.reps):
            pairs.append((self.c_client(mode, conns), self.engine(mode, conns, *extra)))
        return pairs


Key = Callable[[dict[str, Any]], float]
#: Goal ratio (engine/reference) per measurement that has one (issue 13).
STREAM_GOAL = 0.9
CONNECT_GOAL = 0.8
#: Measurements by the name --only selects them with.
MEASUREMENTS = ("iperf3", "stream1", "stream8", "stream64", "asyncio", "ping", "connect")


def throughput(d: dict[str, Any]) -> float:
    return float(d["throughput"])


def ops_rate(d: dict[str, Any]) -> float:
    return float(d["ops_per_second"])


def latency(name: str) -> Key:
    return lambda d: float(d[name] if name in d else d["latency"][name.removesuffix("_us")])


def row(what: str, pairs: list[tuple[dict[str, Any], dict[str, Any]]], key: Key, unit: str,
        goal: float | None = None, higher_is_better: bool = True) -> Row:
    r = Row(what, "C client", [key(c) for c, _ in pairs], [key(e) for _, e in pairs], unit,
            goal, higher_is_better)
    print(f"  {what}: C {spread(r.refs, unit)}   lab load {spread(r.engines, unit)}   "
          f"ratio {ratio_text(r)}", file=sys.stderr)
    return r


def measure(bench: Bench, only: set[str]) -> list[Row]:
    rows = []
    if "iperf3" in only:
        limits = [iperf3(bench.seconds, bench.pin) for _ in range(bench.reps)]
        rows.append(Row("loopback limit, 1 TCP stream", "iperf3", limits, [], "MB/s"))
    for conns in (1, 8, 64):
        if f"stream{conns}" in only:
            rows.append(row(f"echo stream, {conns} conn", bench.runs("stream", conns),
                            throughput, "MB/s", STREAM_GOAL))
    if "asyncio" in only:
        rows.append(row("echo stream, 8 conn, stock asyncio loop",
                        bench.runs("stream", 8, ("--no-uvloop",)), throughput, "MB/s"))
    if "ping" in only:
        pings = bench.runs("ping", 1)
        rows.append(row("ping 64 B, 1 conn: p99 latency", pings, latency("p99_us"), "us",
                        higher_is_better=False))
        rows.append(row("ping 64 B, 1 conn: p50 latency", pings, latency("p50_us"), "us",
                        higher_is_better=False))
        rows.append(row("ping 64 B, 1 conn: round trips", pings, ops_rate, "/s"))
    if "connect" in only:
        rows.append(row("connect-echo-close, 8 conn", bench.runs("connect", 8), ops_rate,
                        "conn/s", CONNECT_GOAL))
    return rows


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "MB/s":
        return f"{value / 1e6:,.0f} MB/s"
    if unit == "us":
        return f"{value:,.1f} us"
    return f"{value:,.0f} {unit}"


def spread(values: list[float], unit: str) -> str:
    """``median (min-max)`` of ``values``; '-' when there are none."""
    if not values:
        return "-"
    if len(values) == 1:
        return fmt(values[0], unit)
    low, high = fmt(min(values), unit).split()[0], fmt(max(values), unit).split()[0]
    return f"{fmt(statistics.median(values), unit)} ({low}-{high})"


def ratio_text(r: Row) -> str:
    ratio, pairs = r.ratio(), r.paired_ratios()
    if ratio is None:
        return "-"
    if len(pairs) < 2:
        return f"{ratio:.2f}x"
    return f"{ratio:.2f}x ({min(pairs):.2f}-{max(pairs):.2f})"


def table(rows: list[Row], bench: Bench) -> str:
    placement = (f"server pinned to CPU {SERVER_CPU}, clients to CPU {CLIENT_CPU}"
                 if bench.pin else "not pinned to CPUs")
    lines = [
        "# Load engine bench (loopback)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{bench.seconds:g} s per run, median of {bench.reps} runs (min-max in brackets), "
        f"window {WINDOW // 1024} KiB, "
        f"server: bench/load/echo_server (C, epoll, 1 thread), {placement}; "
        f"1-min load average {bench.load_before:.2f} before the bench, "
        f"{os.getloadavg()[0]:.2f} after (the bench itself keeps ~2 CPUs busy)",
        "",
        "| measurement | reference | reference | lab load | ratio (engine/ref) | goal | met |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.what} | {r.ref_name} | {spread(r.refs, r.unit)} | "
            f"{spread(r.engines, r.unit)} | {ratio_text(r)} | {r.goal_text} | {r.verdict()} |"
        )
    lines += [
        "",
        "Ratios are engine/reference for rates and reference/engine for latency, so higher "
        "is better for the engine everywhere; iperf3 shows the loopback limit for one stream.",
        "A ratio is the ratio of the two medians; in brackets, the lowest and highest of the "
        "ratios of the runs taken back to back (C client, then engine).",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", type=Path, required=True, help="directory of echo_server, echo_client")
    ap.add_argument("--out", type=Path, default=Path("artifacts/bench/load.md"))
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("LOAD_BENCH_SECONDS", 3)))
    ap.add_argument("--reps", type=int, default=int(os.environ.get("LOAD_BENCH_REPS", 5)),
                    help="runs per figure (median and min-max are reported)")
    ap.add_argument("--only", default=os.environ.get("LOAD_BENCH_ONLY", ",".join(MEASUREMENTS)),
                    help=f"comma-separated subset of: {', '.join(MEASUREMENTS)}")
    ap.add_argument("--pin", action="store_true",
                    default=os.environ.get("LOAD_BENCH_PIN", "") == "1",
                    help=f"run the server on CPU {SERVER_CPU} and each client on CPU "
                    f"{CLIENT_CPU}: the same placement for reference and engine on a quiet "
                    "host (unpinned, the scheduler's placement varies per run; pinned, a "
                    "busy neighbour on a CPU cannot be dodged)")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    if args.reps < 1 or not only or only - set(MEASUREMENTS):
        ap.error(f"--reps must be >= 1 and --only a subset of {', '.join(MEASUREMENTS)}")
    if args.pin and not {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0):
        ap.error(f"--pin needs CPUs {SERVER_CPU} and {CLIENT_CPU}")
    bench = Bench(args.bin, args.seconds, args.reps, args.pin)
    bench.start_server()
    try:
        rows = measure(bench, only)
    finally:
        bench.stop_server()
    text = table(rows, bench)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return report_goals(rows, args.out)


def goal_lines(rows: list[Row]) -> list[str]:
    """One line per goal: ``PASS echo stream, 1 conn: 0.94x (goal >= 0.5x)``."""
    lines = []
    for r in rows:
        if r.goal is not None:
            ratio = r.ratio()
            got = "not measured" if ratio is None else ratio_text(r)
            lines.append(f"{r.verdict()} {r.what}: {got} (goal {r.goal_text})")
    return lines


def report_goals(rows: list[Row], out: Path) -> int:
    lines = goal_lines(rows)
    missed = sum(line.startswith("FAIL") for line in lines)
    print("\n".join(lines))
    print(f"bench-load: {len(lines) - missed} of {len(lines)} goals met; table in {out}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
